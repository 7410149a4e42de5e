#!/usr/bin/env python3
"""Soak test: Livechain in-process for N minutes under random provider faults and steady client load.

    .venv/bin/python scripts/soak.py --minutes 10

Setup: one anvil (0.25 s blocks) behind three fault proxies = three providers of chain "dev" (every URL
carries a planted fake API key); Livechain (uvloop) in this process on an ephemeral port.

Load: --http-rps JSON-RPC requests per second over HTTP (singles and small batches), --clients WebSocket
clients each subscribed to newHeads and sending one request every 2 s, and a churn client that connects,
subscribes, unsubscribes and disconnects every second.

Chaos: one provider at a time gets a random fault for 4-10 s (refuse, reset, reset mid-response, blackhole,
stall, silent, HTTP 502/503, HTTP 429 with Retry-After, garbage, latency), with 1-4 s of calm between faults;
independently, every --drop-every seconds the live connections of one provider whose WebSocket is up are
aborted (a forced upstream WebSocket drop). At most one provider is faulted at any moment, so at least two
are healthy apart from a drop — every invariant below must hold.

Invariants (exit code 1 when one fails):
  - 0 client-visible errors (HTTP and WS requests: a result, the right id, chain id 31337);
  - every newHeads client's stream is consecutive with 0 gaps and 0 duplicates, and every head is the
    node's own block at that number (checked by number → hash at the end);
  - at least --min-drops forced upstream WebSocket drops were injected (default: 10 per minute);
  - RSS and the asyncio task count stay flat: end − start ≤ --rss-tolerance-mb (default 32 MB) and
    ≤ --task-tolerance (default 10 tasks). "start" is sampled after --warmup seconds (default 60: the
    benchmark store's 2-minute retention — set below — and allocator pools reach their steady state);
    task counts are the minimum of 5 samples 200 ms apart (in-flight request tasks come and go);
  - the planted key appears in no response and no log line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.ws.client import WsClient  # noqa: E402

from livechain import log as logsetup  # noqa: E402
from livechain.app import App, run  # noqa: E402
from livechain.config import ConfigStore, parse_config  # noqa: E402
from livechain.devnet import Anvil  # noqa: E402
from livechain.faults import Fault, FaultProxy  # noqa: E402

FAKE_KEY = "LCFAKEKEY0123456789abcdef"
CHAIN_ID_HEX = "0x7a69"
ADDRESS = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
METHODS: list[tuple[str, list]] = [
    ("eth_blockNumber", []),
    ("eth_chainId", []),
    ("eth_getBalance", [ADDRESS, "latest"]),
    ("eth_getBlockByNumber", ["latest", False]),
]
FAULTS: list[tuple[str, Fault]] = [
    ("refuse", Fault(mode="refuse")),
    ("reset", Fault(mode="reset")),
    ("reset_mid_response", Fault(mode="reset_mid_response")),
    ("blackhole", Fault(mode="blackhole")),
    ("stall", Fault(mode="stall")),
    ("silent", Fault(mode="silent")),
    ("http_502", Fault(mode="http_status", status=502)),
    ("http_503", Fault(mode="http_status", status=503)),
    ("http_429", Fault(mode="http_status", status=429, retry_after=2.0)),
    ("garbage", Fault(mode="garbage")),
    ("latency_300ms", Fault(latency_ms=300, jitter_ms=150)),
]
HTTP_MODES = {"http_status", "garbage"}


def config(proxies: list[FaultProxy], strategy: str) -> str:
    providers = "".join(
        f"      - {{id: p{i}, http_url: '{p.url}/?apikey={FAKE_KEY}{i}', ws_url: '{p.ws_url}/?apikey={FAKE_KEY}{i}'}}\n"
        for i, p in enumerate(proxies)
    )
    return (
        "persistence: {sqlite_path: null}\n"
        "logging: {level: info, format: json}\n"
        "metrics: {retention: 2m, window: 1m, max_entries: 20000}\n"
        "chains:\n  dev:\n    chain_id: 31337\n"
        f"    strategy: {strategy}\n"
        "    attempt_timeout: 500ms\n    deadline: 3s\n    max_lag_blocks: 2\n    health_interval: 250ms\n"
        "    ws_liveness: 1s\n    breaker: {failure_threshold: 3, recovery_timeout: 1s}\n"
        "    providers:\n" + providers
    )


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def task_count() -> int:
    counts = []
    for _ in range(5):
        counts.append(len(asyncio.all_tasks()))
        await asyncio.sleep(0.2)
    return min(counts)


class Stats:
    def __init__(self) -> None:
        self.http_requests = 0
        self.ws_requests = 0
        self.churn = 0
        self.errors: list[str] = []
        self.faults: Counter[str] = Counter()
        self.drops = 0
        self.drop_waits = 0  # drop slots where no provider WebSocket was up
        self.leaks = 0  # responses that contained the planted key (checked inline: nothing is kept)

    def saw(self, data: bytes) -> None:
        if FAKE_KEY.encode() in data:
            self.leaks += 1

    def error(self, text: str) -> None:
        self.errors.append(text)
        if len(self.errors) <= 20:
            print(f"  ERROR {time.strftime('%H:%M:%S')} {text}", flush=True)


def check_reply(stats: Stats, method: str, rid: Any, reply: Any, where: str) -> None:
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0" or reply.get("id") != rid:
        stats.error(f"{where} {method}: bad reply {str(reply)[:200]}")
    elif "result" not in reply or "error" in reply:
        stats.error(f"{where} {method}: {str(reply.get('error'))[:200]}")
    elif method == "eth_chainId" and reply["result"] != CHAIN_ID_HEX:
        stats.error(f"{where} eth_chainId answered {reply['result']!r}")


# ---------------------------------------------------------------------------------------------- load


async def http_load(base: str, stats: Stats, rps: float, stop: asyncio.Event, workers: int = 4) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker(wid: int) -> None:
            i = 0
            period = workers / rps
            while not stop.is_set():
                started = time.monotonic()
                i += 1
                if i % 10 == 0:  # a small batch
                    items = [METHODS[(i + k) % len(METHODS)] for k in range(3)]
                    body = [{"jsonrpc": "2.0", "id": k, "method": m, "params": p} for k, (m, p) in enumerate(items)]
                else:
                    method, params = METHODS[(i + wid) % len(METHODS)]
                    body = {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
                try:
                    async with session.post(base + "/rpc/dev", data=orjson.dumps(body),
                                            headers={"content-type": "application/json"}) as resp:
                        raw = await resp.read()
                        status = resp.status
                        hdrs = str(list(resp.headers.items())).encode()
                    stats.http_requests += 1
                    stats.saw(hdrs + raw)
                    reply = orjson.loads(raw)
                    if status != 200:
                        stats.error(f"http: status {status} {raw[:200]!r}")
                    elif isinstance(body, list):
                        if not isinstance(reply, list) or len(reply) != len(body):
                            stats.error(f"http batch: {raw[:200]!r}")
                        else:
                            for item, (method, _) in zip(sorted(reply, key=lambda r: r.get("id")), items, strict=True):
                                check_reply(stats, method, item.get("id"), item, "http batch")
                    else:
                        check_reply(stats, body["method"], i, reply, "http")
                except Exception as exc:
                    stats.http_requests += 1
                    stats.error(f"http: {type(exc).__name__} {exc}")
                await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

        await asyncio.gather(*(worker(w) for w in range(workers)))


class Blocks:
    """number → hash of every head any client received, verified against the node and forgotten in bulk, so
    the soak itself holds O(1) memory however long it runs."""

    def __init__(self) -> None:
        self.pending: dict[int, str] = {}
        self.conflicts = 0  # two clients got different hashes for one number
        self.foreign = 0  # a head that is not the node's block at that number
        self.verified = 0

    def add(self, number: int, block_hash: str) -> None:
        known = self.pending.setdefault(number, block_hash)
        if known != block_hash:
            self.conflicts += 1

    async def verify(self, node: Anvil, keep_last: int = 0) -> None:
        if not self.pending:
            return
        top = max(self.pending) - keep_last
        for number in sorted(n for n in self.pending if n <= top):
            block = await node.rpc("eth_getBlockByNumber", [hex(number), False])
            if not isinstance(block, dict) or block["hash"] != self.pending[number]:
                self.foreign += 1
            del self.pending[number]
            self.verified += 1


class HeadClient:
    """A WebSocket client subscribed to newHeads that also sends a request every 2 s. Checks its stream as it
    goes: each head must be the previous one + 1."""

    def __init__(self, url: str, stats: Stats, blocks: Blocks, n: int) -> None:
        self.url, self.stats, self.blocks, self.n = url, stats, blocks, n
        self.count = self.gaps = self.duplicates = 0
        self.last: int | None = None
        self.last_arrival: float | None = None
        self.max_silence = 0.0  # longest time between two heads (0.25 s blocks: ~0.25 s when healthy)
        self.client = WsClient()

    async def run(self, stop: asyncio.Event) -> None:
        await self.client.connect(self.url)
        sid = await self.client.subscribe("newHeads")

        async def requests() -> None:
            i = 0
            while not stop.is_set():
                await asyncio.sleep(2.0)
                method, params = METHODS[(i + self.n) % len(METHODS)]
                i += 1
                try:
                    reply = await self.client.call(method, params, timeout=10)
                except Exception as exc:
                    self.stats.error(f"ws client {self.n} {method}: {type(exc).__name__} {exc}")
                    continue
                self.stats.ws_requests += 1
                self.stats.saw(orjson.dumps(reply))
                check_reply(self.stats, method, reply.get("id"), reply, f"ws client {self.n}")

        side = asyncio.get_running_loop().create_task(requests(), name=f"soak/ws-requests/{self.n}")
        try:
            while not stop.is_set():
                try:
                    head = await self.client.next(sid, timeout=1.0)
                except TimeoutError:
                    continue
                number = int(head["number"], 16)
                now = time.monotonic()
                if self.last_arrival is not None:
                    self.max_silence = max(self.max_silence, now - self.last_arrival)
                self.last_arrival = now
                self.count += 1
                self.blocks.add(number, head["hash"])
                if self.last is not None:
                    if number > self.last + 1:
                        self.gaps += number - self.last - 1
                    elif number <= self.last:
                        self.duplicates += 1
                self.last = number if self.last is None else max(self.last, number)
        finally:
            side.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await side
            if self.client.close_code is not None:
                self.stats.error(f"ws client {self.n} was closed by the server: {self.client.close_code}")
            await self.client.close()


async def churn(url: str, stats: Stats, stop: asyncio.Event) -> None:
    """Connect, subscribe, unsubscribe, disconnect — every second: server-side state must not pile up."""
    while not stop.is_set():
        client = WsClient()
        try:
            await client.connect(url)
            sid = await client.subscribe("newHeads")
            with contextlib.suppress(TimeoutError):
                await client.next(sid, timeout=0.5)
            reply = await client.call("eth_unsubscribe", [sid])
            if reply.get("result") is not True:
                stats.error(f"churn: unsubscribe answered {reply}")
            stats.churn += 1
        except Exception as exc:
            stats.error(f"churn: {type(exc).__name__} {exc}")
        finally:
            await client.close()
        await asyncio.sleep(1.0)


# ---------------------------------------------------------------------------------------------- chaos


async def inject_faults(proxies: list[FaultProxy], stats: Stats, rng: random.Random, stop: asyncio.Event) -> None:
    while not stop.is_set():
        proxy = rng.choice(proxies)
        name, fault = rng.choice(FAULTS)
        proxy.set(fault)
        if fault.mode in HTTP_MODES:
            proxy.drop_connections()  # the live WebSocket would not see an HTTP-answering fault otherwise
        stats.faults[name] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(4, 10))
        proxy.set(Fault())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(1, 4))


async def inject_drops(app: App, proxies: list[FaultProxy], stats: Stats, rng: random.Random, every: float,
                       stop: asyncio.Event) -> None:
    chain = app.registry.resolve("dev")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every * rng.uniform(0.5, 1.5))
        if stop.is_set():
            return
        while not stop.is_set():
            up = [int(p.id[1:]) for p in chain.pool.providers if p.ws is not None and p.ws.connected]
            if up:
                proxies[rng.choice(up)].drop_connections()
                stats.drops += 1
                break
            stats.drop_waits += 1
            await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------------------------- main


async def soak(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    logfile = tempfile.TemporaryFile("w+", encoding="utf-8")
    logsetup.setup("info", "json", stream=logfile)
    stats = Stats()
    node = await Anvil(block_time=0.25).start()
    proxies = [FaultProxy(node.host, node.port, name=f"p{i}") for i in range(3)]
    for proxy in proxies:
        await proxy.start()
    app = App(ConfigStore(None, parse_config(config(proxies, args.strategy))))
    await app.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{app.port}"
    ws_url = f"ws://127.0.0.1:{app.port}/ws/rpc/dev"
    chain = app.registry.resolve("dev")
    print(f"soak: {args.minutes:g} min, 3 providers, {args.clients} newHeads clients, {args.http_rps:g} HTTP req/s, "
          f"seed {args.seed}, pid {os.getpid()}", flush=True)
    await asyncio.sleep(2.0)  # health checks and provider WebSockets up

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    blocks = Blocks()
    clients = [HeadClient(ws_url, stats, blocks, n) for n in range(args.clients)]
    load = [loop.create_task(http_load(base, stats, args.http_rps, stop), name="soak/http")]
    load += [loop.create_task(c.run(stop), name=f"soak/ws/{c.n}") for c in clients]
    load.append(loop.create_task(churn(ws_url, stats, stop), name="soak/churn"))
    chaos = [
        loop.create_task(inject_faults(proxies, stats, rng, stop), name="soak/faults"),
        loop.create_task(inject_drops(app, proxies, stats, rng, args.drop_every, stop), name="soak/drops"),
    ]

    duration = args.minutes * 60
    started = time.monotonic()
    samples: dict[str, tuple[float, int]] = {}
    warmup = min(args.warmup, duration / 3)
    marks = {"start": warmup, "middle": (warmup + duration) / 2, "end": duration - 3}
    next_report = 60.0
    next_verify = 20.0
    while (elapsed := time.monotonic() - started) < duration:
        for name, at in marks.items():
            if name not in samples and elapsed >= at:
                samples[name] = (rss_mb(), await task_count())
                print(f"  [{elapsed:6.0f}s] {name}: RSS {samples[name][0]:.1f} MB, {samples[name][1]} tasks", flush=True)
        if elapsed >= next_verify:
            next_verify += 20
            await blocks.verify(node, keep_last=20)
        if elapsed >= next_report:
            next_report += 60
            heads = [c.count for c in clients]
            print(f"  [{elapsed:6.0f}s] http {stats.http_requests} ws {stats.ws_requests} churn {stats.churn} "
                  f"errors {len(stats.errors)} heads/client {min(heads)}-{max(heads)} drops {stats.drops} "
                  f"faults {sum(stats.faults.values())} RSS {rss_mb():.1f} MB tasks {len(asyncio.all_tasks())}",
                  flush=True)
        await asyncio.sleep(0.5)
    for name in marks:
        if name not in samples:
            samples[name] = (rss_mb(), await task_count())

    stop.set()
    await asyncio.gather(*chaos)
    for proxy in proxies:
        proxy.set(Fault())
    await asyncio.wait_for(asyncio.gather(*load, return_exceptions=True), 30)

    # newHeads: consecutive per client (checked as they came), equal to the node's blocks
    await blocks.verify(node)
    gaps = sum(c.gaps for c in clients)
    duplicates = sum(c.duplicates for c in clients)
    foreign = blocks.foreign + blocks.conflicts

    failovers = app.events.counts.get("failover", 0)
    transitions = app.events.counts.get("breaker", 0)
    ws_disconnects = sum(ws.stats["disconnects"] for ws in chain.subscriptions.upstreams.values())
    for path in ("/metrics", "/api/health", "/api/chains/dev/providers", "/api/events?since=0"):
        async with aiohttp.ClientSession() as session, session.get(base + path) as resp:
            stats.saw(str(list(resp.headers.items())).encode() + await resp.read())
    await app.stop()
    for proxy in proxies:
        await proxy.stop()
    await node.stop()
    logfile.seek(0)
    log_lines = 0
    leaks = stats.leaks
    for line in logfile:
        log_lines += 1
        leaks += FAKE_KEY in line
    logfile.close()

    heads = [c.count for c in clients]
    (rss0, tasks0), (rss1, tasks1), (rss2, tasks2) = samples["start"], samples["middle"], samples["end"]
    min_drops = args.min_drops if args.min_drops is not None else int(10 * args.minutes)
    failures = []
    if stats.errors:
        failures.append(f"{len(stats.errors)} client-visible errors")
    if gaps or duplicates or foreign:
        failures.append(f"heads: {gaps} gaps, {duplicates} duplicates, {foreign} not the node's blocks")
    if min(heads) < 0.5 * duration / 0.25:
        failures.append(f"a client received only {min(heads)} heads")
    if args.max_head_silence and max(c.max_silence for c in clients) > args.max_head_silence:
        failures.append(f"a head stream was silent for {max(c.max_silence for c in clients):.1f} s")
    if stats.drops < min_drops:
        failures.append(f"only {stats.drops} WS drops injected (< {min_drops})")
    if rss2 - rss0 > args.rss_tolerance_mb:
        failures.append(f"RSS grew {rss2 - rss0:.1f} MB (> {args.rss_tolerance_mb} MB)")
    if tasks2 - tasks0 > args.task_tolerance:
        failures.append(f"asyncio tasks grew by {tasks2 - tasks0} (> {args.task_tolerance})")
    if leaks:
        failures.append(f"the planted key leaked {leaks} time(s)")

    print()
    print(f"duration              {duration / 60:.1f} min (seed {args.seed}, strategy {args.strategy})")
    print(f"requests              HTTP {stats.http_requests}, WS {stats.ws_requests}, churn sessions {stats.churn}")
    print(f"client errors         {len(stats.errors)}")
    print(f"heads per client      min {min(heads)} / median {statistics.median(heads):.0f} / max {max(heads)} "
          f"({len(clients)} clients)")
    silences = sorted(c.max_silence for c in clients)
    print(f"longest head silence  {silences[-1]:.1f} s (median over clients {statistics.median(silences):.1f} s; "
          f"block time 0.25 s)")
    print(f"gaps / duplicates     {gaps} / {duplicates} (heads checked against the node: {blocks.verified} blocks, "
          f"{foreign} not the node's)")
    print(f"faults injected       {sum(stats.faults.values())}: {dict(sorted(stats.faults.items()))}")
    print(f"WS drops injected     {stats.drops} (upstream WS disconnects seen by Livechain: {ws_disconnects}; "
          f"{stats.drop_waits} drop slots found no provider WebSocket up)")
    print(f"failovers             {failovers}; breaker transitions {transitions}")
    print(f"RSS MB                start {rss0:.1f} / middle {rss1:.1f} / end {rss2:.1f} "
          f"(tolerance +{args.rss_tolerance_mb} MB start→end; start = after {warmup:.0f} s warm-up)")
    print(f"asyncio tasks         start {tasks0} / middle {tasks1} / end {tasks2} (tolerance +{args.task_tolerance})")
    print(f"secret leaks          {leaks} (responses checked inline, {log_lines} log lines)")
    print(f"RESULT                {'FAIL: ' + '; '.join(failures) if failures else 'PASS'}", flush=True)
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=20, help="newHeads WebSocket clients")
    parser.add_argument("--http-rps", type=float, default=100.0)
    parser.add_argument("--drop-every", type=float, default=2.0, help="mean seconds between forced WS drops")
    parser.add_argument("--min-drops", type=int, default=None, help="default: 10 per minute")
    parser.add_argument("--max-head-silence", type=float, default=0.0,
                        help="fail when a client waits longer than this for its next head (0 = report only)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the 'start' RSS/task sample")
    parser.add_argument("--rss-tolerance-mb", type=float, default=32.0)
    parser.add_argument("--task-tolerance", type=int, default=10)
    parser.add_argument("--strategy", default="leaderboard", choices=["leaderboard", "priority", "round_robin", "fastest"])
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    sys.exit(run(soak(args)))


if __name__ == "__main__":
    main()
