"""Stall detection against a real anvil (1 s blocks) behind three fault proxies, with a newHeads subscriber:
every provider goes silent → the chain is `stalled` in /api/health (HTTP 503), /api/chains, /metrics, the
event feed and the log; heads come back → `ok` by itself, and the subscriber got every block exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from livechain.devnet import Anvil
from livechain.faults import Fault, FaultProxy
from tests.conftest import FAKE_KEY, Livechain, chain_yaml, config_text, provider_yaml
from tests.ws.client import WsClient

BLOCK_TIME = 1.0
#: how long a state change may take to show on a busy 2-core machine: generous, never a performance bound
PATIENCE = 3 * BLOCK_TIME + 20.0


@pytest.fixture
async def node() -> AsyncIterator[Anvil]:
    async with Anvil(block_time=BLOCK_TIME) as anvil:
        yield anvil


@pytest.fixture
async def silent_able(node: Anvil) -> AsyncIterator[list[FaultProxy]]:
    made = [FaultProxy(node.host, node.port, name=f"p{i}") for i in range(3)]
    for proxy in made:
        await proxy.start()
    yield made
    for proxy in made:
        await proxy.stop()


def stall_chain(proxies: list[FaultProxy]) -> str:
    providers = "".join(
        provider_yaml(f"p{i}", f"{p.url}/?apikey={FAKE_KEY}{i}", ws_url=f"{p.ws_url}/?apikey={FAKE_KEY}{i}", priority=i)
        for i, p in enumerate(proxies)
    )
    return config_text(chain_yaml(
        "dev", 31337, providers, health_interval="300ms", attempt_timeout="600ms", ws_liveness="1s",
        breaker="{failure_threshold: 3, recovery_timeout: 1s}",
    ))


async def health(lc: Livechain) -> tuple[int, dict]:
    status, _, body = await lc.get("/api/health")
    return status, orjson.loads(body)


async def until(check: Callable[[], Awaitable[Any]], timeout: float = PATIENCE, step: float = 0.1) -> Any:
    """Poll an async check until it returns something truthy; its last value otherwise (the caller asserts)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(step)


async def healthy(lc: Livechain) -> dict | None:
    """The health body once everything is ok (200, chain ok, no provider stalled), else None."""
    status, body = await health(lc)
    dev = body["chains"]["dev"]
    fine = status == 200 and body["status"] == "ok" and dev["status"] == "ok" and not dev["stalled"]
    return body if fine and not any(p["stalled"] for p in dev["providers"].values()) else None


async def stalled(lc: Livechain) -> dict | None:
    """The health body once the chain and every provider are stalled and the endpoint says 503, else None."""
    status, body = await health(lc)
    dev = body["chains"]["dev"]
    every = all(p["stalled"] for p in dev["providers"].values())
    return body if status == 503 and body["status"] == "stalled" and dev["stalled"] and every else None


async def start(start_livechain, proxies: list[FaultProxy]) -> tuple[Livechain, WsClient, str, dict]:
    """Livechain up, a newHeads subscriber, and the block time learned (health ok, block_time_s known)."""
    lc = await start_livechain(stall_chain(proxies))
    client = await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")
    sid = await client.subscribe("newHeads")

    async def learned() -> dict | None:
        body = await healthy(lc)
        return body if body and body["chains"]["dev"]["block_time_s"] is not None else None

    body = await until(learned)
    assert body, (await health(lc))[1]
    dev = body["chains"]["dev"]
    assert 0.5 <= dev["block_time_s"] <= 2.0, dev  # anvil's 1 s blocks, as seen through a busy machine
    assert dev["stall_after_s"] == pytest.approx(max(3.0, 3 * dev["block_time_s"]), abs=0.01)
    return lc, client, sid, body


async def assert_every_block_once(node: Anvil, heads: list[dict]) -> list[int]:
    """Consecutive, each number once, each the node's own block; returns the numbers."""
    numbers = [int(h["number"], 16) for h in heads]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    for head in heads:
        block = await node.rpc("eth_getBlockByNumber", [head["number"], False])
        assert isinstance(block, dict) and block["hash"] == head["hash"], head["number"]
    return numbers


async def collect_until(client: WsClient, sid: str, number: int, timeout: float = PATIENCE) -> list[dict]:
    """The subscriber's heads up to (at least) block `number`."""
    heads: list[dict] = []
    deadline = time.monotonic() + timeout
    while not heads or int(heads[-1]["number"], 16) < number:
        heads.append(await client.next(sid, timeout=max(0.01, deadline - time.monotonic())))
    return heads


def stall_events(lc: Livechain) -> list[dict]:
    return [e for e in lc.app.events.recent(2000) if e["kind"] in ("stalled", "recovered")]


async def published(lc: Livechain, kind: str, provider: str | None = None) -> dict | None:
    """The first `kind` event of `provider` (None: the chain) — the periodic check publishes it, which may
    come a moment after /api/health (a direct read of the state) already says so."""
    return next((e for e in stall_events(lc) if e["kind"] == kind and e["provider"] == provider), None)


async def test_a_chain_whose_blocks_stop_is_stalled_everywhere_and_ok_again_when_they_resume(
    start_livechain, silent_able, node
):
    """The node stops mining (every provider up, none has a new head): within 3 block times (plus the check
    period) the chain and every provider are stalled — /api/health 503 with status "stalled", /api/chains,
    /metrics, a `stalled` event and a log line. Mining resumes: ok and 200 again by itself, a `recovered`
    event, and the subscriber's blocks are consecutive and each delivered once across the stall."""
    lc, client, sid, _ = await start(start_livechain, silent_able)
    try:
        await node.rpc("evm_setIntervalMining", [0])
        body = await until(lambda: stalled(lc))
        assert body, (await health(lc))[1]
        dev = body["chains"]["dev"]
        assert dev["status"] == "stalled" and dev["providers_up"] == 3 and dev["stalled_for_s"] >= 0
        chain_event = await until(lambda: published(lc, "stalled"))
        assert chain_event, stall_events(lc)
        # the threshold it was held to is 3 block times (or the 3 s floor), not a fallback
        assert chain_event["stall_after_s"] == pytest.approx(max(3.0, 3 * chain_event["block_time_s"]), abs=0.01)
        assert chain_event["silent_s"] > chain_event["stall_after_s"]
        overview = (await lc.api("/api/chains"))["chains"][0]
        assert overview["status"] == "stalled" and overview["stalled"] is True
        assert overview["providers_stalled"] == ["p0", "p1", "p2"]
        detail = await lc.api("/api/chains/dev/providers")
        assert detail["stalled"] is True and all(p["stalled"] for p in detail["providers"])
        _, _, metrics = await lc.get("/metrics")
        text = metrics.decode()
        assert 'livechain_chain_stalled{chain="dev",region="local"} 1.0' in text
        assert 'livechain_provider_stalled{chain="dev",provider="p1",region="local"} 1.0' in text
        assert 'livechain_chain_stalls_total{chain="dev",region="local"} 1.0' in text
        assert "livechain_chain_block_time_seconds{" in text
        assert "chain stalled: no new head" in lc.logs.getvalue()
        last = int(await node.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]

        await node.rpc("evm_setIntervalMining", [int(BLOCK_TIME)])
        assert await until(lambda: healthy(lc)), (await health(lc))[1]
        for pid in ("p0", "p1", "p2"):
            assert await until(lambda pid=pid: published(lc, "recovered", pid)), stall_events(lc)
        kinds = [(e["kind"], e["provider"]) for e in stall_events(lc)]
        assert kinds.count(("stalled", None)) == 1 and kinds.count(("recovered", None)) == 1
        heads = client.drain(sid) + await collect_until(client, sid, last + 2)
        numbers = await assert_every_block_once(node, heads)
        assert numbers[0] < last < numbers[-1]  # the stream spans the stall
        assert lc.leaks(FAKE_KEY) == []
    finally:
        await client.close()


async def test_every_provider_silent_is_stalled_and_the_blocks_mined_meanwhile_arrive_once_when_they_return(
    start_livechain, silent_able, node
):
    """Every provider blackholed (HTTP and WebSocket) while the node keeps mining: the chain is stalled (it
    may be down too: no provider answers) and /api/health is 503. The faults clear: heads come back, the
    blocks mined during the silence are backfilled, the chain is ok again, and the subscriber received every
    block number exactly once with no gap."""
    lc, client, sid, _ = await start(start_livechain, silent_able)
    try:
        for proxy in silent_able:
            proxy.set(Fault(mode="silent"))
        body = await until(lambda: stalled(lc))
        assert body, (await health(lc))[1]
        assert body["chains"]["dev"]["status"] in ("stalled", "down")
        silent_at = int(await node.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]

        for proxy in silent_able:
            proxy.clear()
        assert await until(lambda: healthy(lc)), (await health(lc))[1]
        heads = client.drain(sid) + await collect_until(client, sid, silent_at + 2)
        numbers = await assert_every_block_once(node, heads)
        assert numbers[0] < silent_at < numbers[-1]
        assert lc.chain().subscriptions.tracker.backfilled >= 1  # the silent blocks were fetched, not skipped
        assert await until(lambda: published(lc, "stalled")) and await until(lambda: published(lc, "recovered"))
        assert lc.leaks(FAKE_KEY) == []
    finally:
        await client.close()
