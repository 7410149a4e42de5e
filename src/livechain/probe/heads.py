"""The probed provider's head beside the heads of a configured chain's providers (`--config FILE --chain NAME`):
one eth_blockNumber to each, all at once, so the heads are compared at one moment. Providers are named by
their config id; their URLs are never shown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from livechain.config.schema import ChainConfig
from livechain.errors import ProviderError
from livechain.evm.events import hex_number
from livechain.jsonrpc.replies import NotJsonRpc, parse_reply
from livechain.probe.client import Calls, ProbeClient
from livechain.transport.http import HttpPool

_BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


async def _head_of(pool: HttpPool, timeout: float) -> tuple[int | None, str | None, float]:
    """(its head, what went wrong, milliseconds)."""
    started = time.perf_counter()
    try:
        reply = parse_reply((await pool.post(_BODY, timeout=timeout)).body)
    except ProviderError as exc:
        return None, exc.kind, 0.0
    except NotJsonRpc:
        return None, "bad_response", 0.0
    ms = round((time.perf_counter() - started) * 1000, 2)
    number = hex_number(reply.result) if reply.error is None else None
    return number, None if number is not None else "no head in the answer", ms


async def compare_heads(client: ProbeClient, chain: ChainConfig, calls: Calls) -> dict[str, Any]:
    pools = [HttpPool(p.http_url, name=p.id, max_connections=1, headers=p.headers) for p in chain.providers]
    try:
        calls.other_providers += len(pools)
        mine, *others = await asyncio.gather(client.call("eth_blockNumber"),
                                             *(_head_of(pool, client.timeout) for pool in pools))
    finally:
        for pool in pools:
            await pool.close()
    head = hex_number(mine.result) if mine.ok else None
    rows: list[dict[str, Any]] = []
    for provider, (its_head, error, ms) in zip(chain.providers, others, strict=True):
        row: dict[str, Any] = {"id": provider.id, "head": its_head}
        if error is not None:
            row["error"] = error
        else:
            row["ms"] = ms
            row["probed_minus_it"] = None if head is None or its_head is None else head - its_head
        rows.append(row)
    heads = [r["head"] for r in rows if r["head"] is not None]
    best = max(heads) if heads else None
    return {
        "chain": chain.name,
        "probed_head": head,
        "best_configured_head": best,
        "behind_best": None if head is None or best is None else max(0, best - head),
        "ahead_of_best": None if head is None or best is None else max(0, head - best),
        "providers": rows,
    }
