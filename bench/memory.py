"""Memory per chain at the metrics retention cap: RSS delta and tracemalloc, each in a fresh process.

Cases (a simulated day on a manual clock; each case runs twice: once for RSS, once under tracemalloc):
    store          BenchmarkStore of one chain, 10 providers × 30 methods, max_entries 86,400, retention 24 h,
                   window 5 min: RPC outcomes at 10/s for 24 h (every key's hourly slots and every 5-min
                   window slot filled), races of 10 providers on newHeads (every 2 s), logs and pending txs
                   (every 10 s); folded every simulated second, expired every minute and its minute series
                   taken every minute — what the app's timers and persistence do
    store-nodrain  the same, but nobody takes the minute series (persistence disabled): they are never
                   dropped, so this grows with uptime; reported per simulated day
    aggregator     one feed's RaceAggregator at its bound (10,000 events in the window + 10,000 expired
                   keys), 5 providers delivering each event — a high-rate feed (pending transactions, logs)
    aggregator-heads  the chain's permanent newHeads feed in its steady state: 5 blocks/s, 30 s race window
                   (~150 events in the window) + 10,000 expired keys, 5 providers
    stats          the providers' per-method selection statistics (10 providers × 30 methods)
Baseline in the same run: the detail ring's own bytes (86,400 rows × 16 B), the floor of a full ring.
Exits 1 with a message on stderr when a case's process fails or reports no allocation.

    .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import require, rss_bytes, run_main, write_result

PROVIDERS = [f"provider-{i}" for i in range(10)]
METHODS = ["eth_blockNumber", "eth_call", "eth_getLogs", "eth_getBalance", "eth_chainId", "eth_estimateGas",
           "eth_getTransactionReceipt", "eth_getBlockByNumber", "eth_sendRawTransaction", "eth_gasPrice",
           *[f"eth_method{i}" for i in range(20)]]
DAY = 86_400


def fill_store(drain: bool):
    from livechain.clock import ManualClock
    from livechain.metrics.store import BenchmarkStore

    clock = ManualClock(wall_start=1_700_000_000.0)
    store = BenchmarkStore("bench", clock=clock)
    rng = random.Random(3)
    outcomes = ["ok"] * 96 + ["rpc_error", "timeout", "transport", "rate_limited"]
    n_keys = len(PROVIDERS) * len(METHODS)
    k = 0
    for second in range(DAY):
        for _ in range(10):
            p, m = PROVIDERS[k % 10], METHODS[(k // 10) % 30]
            k = (k + 1) % n_keys
            store.record_rpc(p, m, rng.uniform(2, 300), rng.choice(outcomes))
        if second % 2 == 0:
            _race(store, "newHeads", rng)
        if second % 10 == 0:
            _race(store, "logs", rng)
            _race(store, "newPendingTransactions", rng)
        clock.advance(1.0)
        store.fold()
        if second % 60 == 59:
            store.expire()
            if drain:
                store.minute_rows(complete_only=True, take=True)
    return store


def _race(store, kind: str, rng: random.Random) -> None:
    order = rng.sample(PROVIDERS, len(PROVIDERS))
    store.record_race(order[0], kind, True, 0.0)
    for p in order[1:]:
        store.record_race(p, kind, False, rng.uniform(0.5, 80))


def fill_aggregator(heads: bool = False):
    """At its bound (a high-rate feed: 10,000 events inside the window), or `heads`: the chain's newHeads
    feed in its steady state (5 blocks/s, 30 s window → ~150 events in the window + 10,000 expired keys)."""
    from livechain.metrics.store import BenchmarkStore
    from livechain.subscriptions.aggregator import RaceAggregator

    store = BenchmarkStore("bench", max_entries=1)  # the store's own memory is the store case's
    live = {f"p{i}": 0 for i in range(5)}
    agg = RaceAggregator("newHeads", store, live, max_events=10_000, max_age=30.0 if heads else 1e9)
    t = 10**12
    step = 200_000_000 if heads else 5000
    for n in range(25_000):
        key = f"0x{n:064x}"
        t += step
        for i, p in enumerate(live):
            agg.arrive(key, p, t + i * 1000)
        if n % 1000 == 0:
            store._pending.clear()  # the records belong to the store case
    store._pending.clear()
    return agg


def fill_stats():
    from livechain.clock import ManualClock
    from livechain.providers.stats import MethodStats

    clock = ManualClock()
    out = []
    for _ in PROVIDERS:
        stats = MethodStats(clock)
        for m in METHODS:
            for _ in range(20):
                stats.observe(m, 12.5, "ok")
        out.append(stats)
    return out


CASES = {"store": lambda: fill_store(True), "store-nodrain": lambda: fill_store(False),
         "aggregator": fill_aggregator, "aggregator-heads": lambda: fill_aggregator(heads=True),
         "stats": fill_stats}


def child(case: str, trace: bool) -> None:
    import livechain.metrics.store
    import livechain.subscriptions.aggregator  # noqa: F401

    gc.collect()
    if trace:
        tracemalloc.start()
    before = rss_bytes(os.getpid())
    obj = CASES[case]()
    gc.collect()
    after = rss_bytes(os.getpid())
    out = {"rss_delta": after - before}
    if trace:
        out["traced"] = tracemalloc.get_traced_memory()[0]
    if case.startswith("store"):
        out["minutes"] = len(obj.rpc_minutes) + len(obj.race_minutes)
        out["detail_bytes"] = obj.detail.nbytes
        out["detail_rows"] = obj.detail.size
    print("RESULT " + json.dumps(out))
    del obj


def run(case: str, trace: bool) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", case] + (["--trace"] if trace else []),
                         capture_output=True, text=True)
    what = f"case {case}{' under tracemalloc' if trace else ''}"
    tail = (out.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    require(out.returncode == 0, f"{what} exited with {out.returncode}: {tail}")
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    require(lines, f"{what} printed no RESULT line: {out.stdout[-300:]!r}")
    result = json.loads(lines[-1][7:])
    require(not trace or result.get("traced", 0) > 0, f"{what}: tracemalloc traced 0 bytes: nothing measured")
    return result


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trace)
        return {}
    result: dict = {}
    for case in CASES:
        rss = run(case, False)
        traced = run(case, True)
        row = {"rss_mb": rss["rss_delta"] / 2**20, "traced_mb": traced["traced"] / 2**20}
        for key in ("minutes", "detail_bytes", "detail_rows"):
            if key in rss:
                row[key] = rss[key]
        result[case] = row
        extra = f"  minute-series entries {row['minutes']}" if "minutes" in row else ""
        print(f"  {case:14s} RSS +{row['rss_mb']:6.1f} MB   tracemalloc {row['traced_mb']:6.1f} MB{extra}", flush=True)
    require(result["store"].get("detail_bytes"), "the store case reported no detail ring")
    floor = result["store"]["detail_bytes"] / 2**20
    result["floor_detail_ring_mb"] = floor
    per_chain = result["store"]["traced_mb"] + result["aggregator-heads"]["traced_mb"] + result["stats"]["traced_mb"]
    result["per_chain_mb"] = per_chain
    print(f"  baseline: the full detail ring alone is {floor:.1f} MB")
    print(f"  per chain at the cap (store + the newHeads feed's race state + selection stats): {per_chain:.1f} MB"
          f" (tracemalloc); each extra high-rate feed at its bound adds {result['aggregator']['traced_mb']:.1f} MB")
    write_result("memory", result)
    return result


if __name__ == "__main__":
    run_main(main)
