"""In-process call cost vs an HTTP round trip through Livechain, same run, same provider.

The provider is an nginx that answers every POST at once with a fixed JSON-RPC reply. Two ways to ask the same
Livechain config (chain `bench`, 3 providers, leaderboard) for `eth_blockNumber`:

    inprocess   `await lc.request("bench", "eth_blockNumber")` — the library (`Livechain.from_config`) inside
                the measuring process: the pipeline, routing and the upstream pool, no socket to Livechain
    http        `livechain serve` as its own process; the client is Livechain's own lean keep-alive pool
                (`HttpPool`, the cheapest Python HTTP client measured here, DESIGN §6) POSTing /rpc/bench

Each measurement runs in a fresh worker process (so nothing of one disturbs the other), interleaved
(inprocess, http, inprocess, …) for --rounds; medians reported:

    p50 / p99 µs       wall time of one request, sequential (one request in flight)
    CPU µs/request     process CPU per request at --concurrency requests in flight: the worker for
                       inprocess; the client worker + the Livechain server for http (both are spent)

    .venv/bin/python bench/inprocess.py                       # 5 rounds × 3 s
    .venv/bin/python bench/inprocess.py --rounds 3 --seconds 2

A benchmark, not a test: compare the ratios of one run. Exits 1 when a side measured nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    PYTHON,
    check_rpc,
    cpu_seconds,
    fake_provider_nginx,
    free_port,
    livechain_config,
    median,
    require,
    run_main,
    start_livechain,
    workdir,
    write_result,
)

EMIT = "INPROCESS_JSON "
BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


def chain_yaml(fake_port: int) -> str:
    lines = ["  bench:\n    chain_id: 1\n    strategy: leaderboard\n    providers:\n"]
    for i in range(3):
        lines.append(f"      - {{id: p{i + 1}, http_url: 'http://127.0.0.1:{fake_port}/p{i + 1}'}}\n")
    return "".join(lines)


# ---------------------------------------------------------------------------------------------- workers


async def _measure(call, seconds: float, concurrency: int, server_pid: int | None) -> dict:
    for _ in range(500):  # warm-up: pools, caches, the leaderboard's first samples
        await call()
    latencies: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter_ns()
        await call()
        latencies.append(time.perf_counter_ns() - t0)
    done = 0
    stop = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await call()
            done += 1

    cpu0 = time.process_time()
    server0 = cpu_seconds(server_pid) if server_pid else 0.0
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    cpu = time.process_time() - cpu0 + ((cpu_seconds(server_pid) - server0) if server_pid else 0.0)
    require(latencies and done, "no request completed")
    latencies.sort()
    return {"requests": len(latencies), "p50_us": latencies[len(latencies) // 2] / 1e3,
            "p99_us": latencies[int(len(latencies) * 0.99)] / 1e3, "concurrent_requests": done,
            "cpu_us_per_request": cpu / done * 1e6}


async def inprocess_worker(config_yaml: str, seconds: float, concurrency: int) -> dict:
    from livechain import Livechain
    from livechain.config import ConfigStore, parse_config

    async with Livechain(ConfigStore(None, parse_config(config_yaml))) as lc:
        require(await lc.request("bench", "eth_blockNumber") == "0x1", "the in-process Livechain gave no result")
        return await _measure(lambda: lc.request("bench", "eth_blockNumber"), seconds, concurrency, None)


async def http_worker(port: int, server_pid: int, seconds: float, concurrency: int) -> dict:
    from livechain.transport.http import HttpPool

    pool = HttpPool(f"http://127.0.0.1:{port}/rpc/bench", name="client", max_connections=concurrency)
    try:
        reply = await pool.post(BODY, timeout=10)
        require(reply.status == 200 and b'"result":"0x1"' in reply.body, f"Livechain answered {reply.body[:200]!r}")

        async def call() -> None:
            response = await pool.post(BODY, timeout=10)
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

        return await _measure(call, seconds, concurrency, server_pid)
    finally:
        await pool.close()


def run_worker(args: argparse.Namespace) -> None:
    import uvloop

    from livechain import log

    log.setup("warning", "json", stream=open(os.devnull, "w"))
    if args.worker == "inprocess":
        with open(args.config) as f:
            result = uvloop.run(inprocess_worker(f.read(), args.seconds, args.concurrency))
    else:
        result = uvloop.run(http_worker(args.port, args.server_pid, args.seconds, args.concurrency))
    print(EMIT + json.dumps(result), flush=True)


def spawn(kind: str, args: argparse.Namespace, extra: list[str]) -> dict:
    out = subprocess.run(
        [PYTHON, os.path.abspath(__file__), "--worker", kind, "--seconds", str(args.seconds),
         "--concurrency", str(args.concurrency), *extra],
        capture_output=True, text=True, timeout=600,
    )
    for line in out.stdout.splitlines():
        if line.startswith(EMIT):
            return json.loads(line[len(EMIT):])
    require(False, f"{kind} worker measured nothing (exit {out.returncode}): {out.stderr[-1500:]}")
    raise AssertionError  # unreachable: require raised


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--json", help="also write bench/results/<name>.json")
    parser.add_argument("--worker", choices=("inprocess", "http"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    with workdir("lcbench-inprocess-") as d:
        fake_port = free_port()
        fake = fake_provider_nginx(d, fake_port)
        children = [fake]
        try:
            config = livechain_config(chain_yaml(fake_port))  # info: start_livechain waits for "listening"
            path = os.path.join(d, "inprocess.yaml")
            with open(path, "w") as f:
                f.write(config)
            server, port = start_livechain(d, config)
            children.append(server)
            check_rpc(f"http://127.0.0.1:{port}/rpc/bench")
            runs: dict[str, list[dict]] = {"inprocess": [], "http": []}
            for r in range(args.rounds):
                runs["inprocess"].append(spawn("inprocess", args, ["--config", path]))
                runs["http"].append(spawn("http", args, ["--port", str(port), "--server-pid", str(server.pid)]))
                print(f"  round {r + 1}: " + "  ".join(
                    f"{k} p50 {v[-1]['p50_us']:.0f} µs, {v[-1]['cpu_us_per_request']:.0f} µs CPU" for k, v in runs.items()
                ), flush=True)
        finally:
            for child in reversed(children):
                child.stop()
    summary = {kind: {key: median([run[key] for run in results]) for key in ("p50_us", "p99_us", "cpu_us_per_request")}
               for kind, results in runs.items()}
    inp, http = summary["inprocess"], summary["http"]
    print(f"\nmedians of {args.rounds} rounds (sequential latency; CPU at {args.concurrency} in flight)")
    for kind, s in summary.items():
        print(f"  {kind:10} p50 {s['p50_us']:7.1f} µs  p99 {s['p99_us']:7.1f} µs  CPU {s['cpu_us_per_request']:6.1f} µs/request")
    print(f"  in-process / HTTP round trip: p50 {inp['p50_us'] / http['p50_us']:.2f}×, "
          f"CPU {inp['cpu_us_per_request'] / http['cpu_us_per_request']:.2f}×")
    if args.json:
        write_result(args.json, {"summary": summary, "runs": runs, "rounds": args.rounds,
                                 "concurrency": args.concurrency})


if __name__ == "__main__":
    run_main(main)
