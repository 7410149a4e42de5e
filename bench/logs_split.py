"""eth_getLogs over 50,000 blocks through providers that accept 1,000 and 2,000: what the client gets, what it
costs upstream, and how long it takes against the ways a client would do it without Livechain.

One anvil node (`--prune-history`: blocks are kept, old state is not) with --blocks blocks and a log every
--every blocks; two JSON-RPC proxies in front of it (tests/rpc_proxy.py) refusing wider spans in Alchemy's and
geth's words; Livechain (its own process, cache off so every call goes upstream) with both as providers.

    direct        one eth_getLogs to the node itself, no limit                          (the floor)
    client split  the same range in sequential 1,000-block calls to the 1,000 provider   (what a client does itself)
    livechain     one eth_getLogs to Livechain over the whole range: split, fetched 4 chunks at a time, merged
                  (the first call learns the limits from the refusals; the rounds after use what it learned)

Every answer is compared with the node's, byte for byte: a difference fails the run. Printed: the median time of
each over --rounds rounds, ratios against the direct call and the client split, and the provider requests per
Livechain call (refusals apart).

    .venv/bin/python bench/logs_split.py                        # 50,000 blocks, 5 rounds
    .venv/bin/python bench/logs_split.py --blocks 5000 --rounds 2

A benchmark, not a test. Exits 1 when an answer differs or nothing was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository: the test kit's JSON-RPC proxy and emitter contract

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from _common import (  # noqa: E402
    livechain_config,
    log_problems,
    median,
    require,
    run_main,
    start_livechain,
    workdir,
    write_result,
)
from tests.evm_helpers import deploy_emitter, emit, receipt  # noqa: E402
from tests.rpc_proxy import RpcProxy  # noqa: E402

from livechain.devnet import Anvil  # noqa: E402

CHUNK = 1_000


async def build_chain(node: Anvil, blocks: int, every: int) -> tuple[str, int]:
    """Mine `blocks` blocks with one log every `every` of them; (the emitter's address, how many logs)."""
    address = await deploy_emitter(node)
    logs, last = 0, None
    while int(await node.rpc("eth_blockNumber"), 16) < blocks - every:
        last = await emit(node, address)  # anvil mines it as it arrives (automine)
        logs += 1
        await node.rpc("anvil_mine", [hex(every - 1)])
    require(last is not None, f"--blocks {blocks} leaves no room for a log every {every}")
    await receipt(node, last)
    head = int(await node.rpc("eth_blockNumber"), 16)
    if head < blocks:
        await node.rpc("anvil_mine", [hex(blocks - head)])
    return address, logs


async def post(session: aiohttp.ClientSession, url: str, query: dict) -> bytes:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 7, "method": "eth_getLogs", "params": [query]})
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
        require(r.status == 200, f"{url}: HTTP {r.status}")
        return await r.read()


async def timed(coro) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = await coro
    return time.perf_counter() - t0, value


async def client_split(session: aiohttp.ClientSession, url: str, address: str, high: int) -> list:
    """What a client does by itself against a provider that takes 1,000 blocks: one chunk after another."""
    logs: list = []
    for low in range(0, high + 1, CHUNK):
        raw = await post(session, url, {"address": address, "fromBlock": hex(low), "toBlock": hex(min(high, low + CHUNK - 1))})
        reply = orjson.loads(raw)
        require("result" in reply, f"client split: the provider refused a {CHUNK}-block chunk: {reply.get('error')}")
        logs.extend(reply["result"])
    return logs


def upstream(proxies: list[RpcProxy]) -> tuple[int, int]:
    return sum(p.counts["eth_getLogs"] for p in proxies), sum(p.refused["eth_getLogs"] for p in proxies)


async def measure(args: argparse.Namespace, work: str) -> dict:
    node = await Anvil(block_time=None, extra_args=("--prune-history",)).start()
    try:
        t0 = time.monotonic()
        address, logs = await build_chain(node, args.blocks, args.every)
        print(f"chain: {args.blocks:,} blocks, {logs:,} logs (built in {time.monotonic() - t0:.0f} s)", file=sys.stderr)
        async with RpcProxy(node, logs_range_limit=1_000, limit_style="alchemy") as p1, \
                RpcProxy(node, logs_range_limit=2_000, limit_style="geth") as p2:
            chain = (
                "  bench:\n    chain_id: 31337\n    strategy: round_robin\n    max_block_range: 0\n"
                "    cache: {enabled: false}\n    providers:\n"
                f"      - {{id: p1000, http_url: '{p1.url}'}}\n      - {{id: p2000, http_url: '{p2.url}'}}\n"
            )
            child, port = await asyncio.to_thread(start_livechain, work, livechain_config(chain))
            try:
                return await rounds(args, node, address, logs, [p1, p2], f"http://127.0.0.1:{port}/rpc/bench", work)
            finally:
                child.stop()
    finally:
        await node.stop()


async def rounds(args: argparse.Namespace, node: Anvil, address: str, logs: int, proxies: list[RpcProxy], url: str,
                 work: str) -> dict:
    head = int(await node.rpc("eth_blockNumber"), 16)
    query = {"address": address, "fromBlock": "0x0", "toBlock": hex(head)}
    times: dict[str, list[float]] = {"direct": [], "client_split": [], "livechain": []}
    first: dict = {}
    requests: list[int] = []
    async with aiohttp.ClientSession() as session:
        expected = await post(session, node.url, query)
        require(len(orjson.loads(expected)["result"]) == logs, "the node does not return every log emitted")
        for r in range(args.rounds + 1):  # round 0: Livechain learns the limits (reported apart)
            for p in proxies:
                p.reset_counts()
            took, raw = await timed(post(session, url, query))
            require(raw == expected, f"round {r}: Livechain's answer differs from the node's: {raw[:300]!r}\n    "
                    + log_problems(work))
            sent, refused = upstream(proxies)
            if r == 0:
                first = {"seconds": took, "provider_requests": sent, "refused": refused}
                continue
            times["livechain"].append(took)
            requests.append(sent - refused)
            require(refused == 0, f"round {r}: {refused} refusals after the limits were learned")
            took, raw = await timed(post(session, node.url, query))
            require(raw == expected, "the node answered differently twice")
            times["direct"].append(took)
            took, got = await timed(client_split(session, proxies[0].url, address, head))
            require(got == orjson.loads(expected)["result"], "the client split lost or reordered logs")
            times["client_split"].append(took)
            print(f"round {r}: direct {times['direct'][-1] * 1e3:.0f} ms, client split "
                  f"{times['client_split'][-1] * 1e3:.0f} ms, livechain {times['livechain'][-1] * 1e3:.0f} ms "
                  f"({requests[-1]} provider requests)", file=sys.stderr)
    require(all(times.values()), "no round measured")
    med = {k: median(v) for k, v in times.items()}
    return {
        "blocks": head + 1, "logs": logs, "bytes": len(expected), "rounds": args.rounds,
        "median_ms": {k: round(v * 1e3, 1) for k, v in med.items()},
        "livechain_over_direct": round(med["livechain"] / med["direct"], 2),
        "livechain_over_client_split": round(med["livechain"] / med["client_split"], 2),
        "client_split_requests": (head + CHUNK) // CHUNK,
        "livechain_provider_requests": median(requests),
        "first_call": {"ms": round(first["seconds"] * 1e3, 1), "provider_requests": first["provider_requests"],
                       "refused": first["refused"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=50_000)
    parser.add_argument("--every", type=int, default=25, help="one log every this many blocks")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write bench/results/<name>.json")
    args = parser.parse_args()
    require(args.blocks > 2 * CHUNK and args.rounds >= 1 and args.every >= 2, "need --blocks > 2000, --rounds ≥ 1, --every ≥ 2")
    with workdir("lc-logs-") as work:
        result = asyncio.run(measure(args, work))
    m = result["median_ms"]
    print(f"eth_getLogs over {result['blocks']:,} blocks, {result['logs']:,} logs ({result['bytes']:,} bytes), "
          f"providers taking 1,000 and 2,000 blocks; medians of {result['rounds']} rounds")
    print(f"  direct (node, no limit)      {m['direct']:8.1f} ms   1 request")
    print(f"  client split (1,000 at once) {m['client_split']:8.1f} ms   {result['client_split_requests']} requests")
    print(f"  livechain                    {m['livechain']:8.1f} ms   {result['livechain_provider_requests']:.0f} provider "
          f"requests   ×{result['livechain_over_direct']} direct, ×{result['livechain_over_client_split']} client split")
    f = result["first_call"]
    print(f"  livechain, first call        {f['ms']:8.1f} ms   {f['provider_requests']} provider requests, "
          f"{f['refused']} refused (the limits learned)")
    print("  every answer byte-identical to the node's")
    if args.json:
        print("wrote", write_result(args.json, result))


if __name__ == "__main__":
    run_main(main)
