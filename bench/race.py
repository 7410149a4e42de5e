"""Racing throughput: events per second through the race, and the decision time per arrival.

Every event (a newHeads block hash) is delivered by each of --providers providers, in a random order, with
up to --jitter-ms between the first and the last copy; arrivals of consecutive events overlap as they do
on a fast chain. Measured on pre-generated arrival sequences, CPU time of this process, per level:

    baseline   a dict of seen keys: `if key in seen: continue; seen[key] = None` — the least a race can do
    aggregator RaceAggregator.arrive(): first arrival wins, later ones lose by a margin (records to the
               benchmark store, bounded seen-set with miss counting)
    feed       HeadsFeed.arrive(): event key + race + the head tracker (gap-free ordering) + delivery
               (0 clients) + the chain's race-event publication (EventBus), as SubscriptionManager does
    feed+fold  the same plus BenchmarkStore.fold() of the records it produced (the app's 250 ms timer)

Reported per level: events/s (distinct events; each is --providers arrivals) and µs per arrival; medians of
--rounds, interleaved. More events than the seen-set bound (10,000) are raced, so expiry is included.
Exits 1 with a message on stderr when a level raced nothing (no event, no CPU time, or no delivered head).

    .venv/bin/python bench/race.py
    .venv/bin/python bench/race.py --providers 5 --events 100000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import require, run_main, write_result

from livechain.events import EventBus
from livechain.metrics.store import BenchmarkStore
from livechain.subscriptions.aggregator import RaceAggregator
from livechain.subscriptions.feeds import HeadsFeed
from livechain.subscriptions.heads import HeadTracker


def arrivals(events: int, providers: int, jitter_ms: float, block_ms: float, seed: int = 1) -> list[tuple]:
    """(provider, header, t_ns) in arrival order; headers chain by parentHash."""
    rng = random.Random(seed)
    names = [f"p{i}" for i in range(providers)]
    out = []
    for n in range(1, events + 1):
        base = int(n * block_ms * 1e6)
        head = {"number": hex(n), "hash": f"0x{n:064x}", "parentHash": f"0x{n - 1:064x}",
                "timestamp": hex(n), "miner": "0x95222290dd7278aa3ddd389cc1e1d165cc4bafe5"}
        for p in names:
            out.append((p, head, base + int(rng.uniform(0, jitter_ms) * 1e6)))
    out.sort(key=lambda a: a[2])
    return out


def _spawn(name, coro):  # the tracker never needs its slow path here (heads chain)
    coro.close()
    raise RuntimeError(f"unexpected backfill: {name}")


def run_level(level: str, seq: list[tuple], providers: int) -> float:
    """CPU seconds to race `seq` once at `level`."""
    live = {f"p{i}": 0 for i in range(providers)}
    store = BenchmarkStore("bench")
    if level == "baseline":
        seen: dict = {}
        t0 = time.process_time()
        for _, head, _ in seq:
            key = head["hash"]
            if key in seen:
                continue
            seen[key] = None
            if len(seen) > 10_000:
                del seen[next(iter(seen))]
        return time.process_time() - t0
    if level == "aggregator":
        agg = RaceAggregator("newHeads", store, live)
        arrive = agg.arrive
        t0 = time.process_time()
        for p, head, t in seq:
            arrive(head["hash"], p, t)
        return time.process_time() - t0
    tracker = HeadTracker("bench", fetch=None, spawn=_spawn)  # type: ignore[arg-type]
    feed = HeadsFeed(store, tracker)
    for p in live:
        feed.bind(p, "0x1", 0)
    events = EventBus()
    feed.aggregator.on_race = lambda w, lo, m: events.publish(
        "race", chain="bench", event="newHeads", winner=w, loser=lo, margin_ms=round(m, 3)
    )
    arrive = feed.arrive
    fold_every = 2000 if level == "feed+fold" else 0
    t0 = time.process_time()
    for i, (p, head, t) in enumerate(seq):
        arrive(p, head, t)
        if fold_every and i % fold_every == 0:
            store.fold()
    if fold_every:
        store.fold()
    elapsed = time.process_time() - t0
    require(tracker.delivered == len(seq) // providers,
            f"{level}: the head tracker delivered {tracker.delivered} of {len(seq) // providers} heads")
    return elapsed


LEVELS = ("baseline", "aggregator", "feed", "feed+fold")


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--jitter-ms", type=float, default=50.0)
    parser.add_argument("--block-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    require(args.events >= 1 and args.rounds >= 1 and args.providers, "--events and --rounds must be at least 1")
    result: dict = {"config": vars(args), "by": {}}
    print(f"{args.events} events per run, {args.rounds} rounds (interleaved); CPU time of this process")
    for providers in args.providers:
        seq = arrivals(args.events, providers, args.jitter_ms, args.block_ms)
        runs: dict[str, list[float]] = {lv: [] for lv in LEVELS}
        for _ in range(args.rounds):
            for level in LEVELS:
                runs[level].append(run_level(level, seq, providers))
        for level in LEVELS:
            cpu = statistics.median(runs[level])
            require(cpu > 0, f"{level}/{providers}: racing {args.events} events took no CPU time: nothing measured")
            row = {"events_per_s": args.events / cpu, "us_per_arrival": cpu / len(seq) * 1e6,
                   "us_per_event": cpu / args.events * 1e6}
            result["by"][f"{level}/{providers}"] = row
            print(f"  {providers} providers  {level:10s} {row['events_per_s']:10,.0f} events/s  "
                  f"{row['us_per_arrival']:5.2f} µs/arrival  {row['us_per_event']:6.2f} µs/event")
    write_result("race", result)
    return result


if __name__ == "__main__":
    run_main(main)
