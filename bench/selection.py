"""Selection cost: time per pick (`eligible()` + `strategy.order()`, i.e. `Forwarder.plan`) with 10 providers
and warm statistics, per strategy.

The chain is built from a real config (10 providers, breakers closed, chain id confirmed, heads known); each
provider's per-method statistics are warmed with 200 samples on 30 methods, and the leaderboard's race
factors are set as the chain's timer would. Baseline in the same run: `list(pool.providers)` (the cost of
doing nothing but copying the candidates). Picks rotate over the 30 methods. Median of --rounds, µs per pick.
Exits 1 with a message on stderr when a strategy picks no provider (it would time an empty plan).

    .venv/bin/python bench/selection.py
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

from livechain.chains.chain import Chain
from livechain.clock import SYSTEM_CLOCK, Clock, ManualClock
from livechain.config import parse_config
from livechain.events import EventBus
from livechain.routing.selection import eligible

PROVIDERS = 10
METHODS = [f"eth_method{i}" for i in range(29)] + ["eth_blockNumber"]


def build_chain(clock: Clock = SYSTEM_CLOCK) -> Chain:
    providers = "".join(
        f"      - {{id: p{i}, http_url: 'http://127.0.0.1:9/p{i}'}}\n" for i in range(PROVIDERS)
    )
    config = parse_config(
        "persistence: {sqlite_path: null}\nchains:\n  bench:\n    chain_id: 1\n"
        "    methods: {allow: ['*']}\n    providers:\n" + providers
    )
    chain = Chain(config.chains["bench"], region="bench", metrics=config.metrics, events=EventBus(), clock=clock)
    rng = random.Random(7)
    for p in chain.pool.providers:
        chain.pool.set_chain_id_ok(p, True, 1)
        p.observe_head(1000 + rng.randrange(3))  # the provider's own head (no pool listeners: no loop here)
        base = rng.uniform(5, 80)
        for method in METHODS:
            for _ in range(200):
                ok = rng.random() > 0.02
                p.stats.observe(method, base * rng.uniform(0.7, 1.5), "ok" if ok else "transport")
    chain.pool.best_head = max(p.head for p in chain.pool.providers)
    chain.race_factors = {p.id: rng.uniform(0.5, 1.0) for p in chain.pool.providers}
    return chain


def check_leaderboard_order() -> None:
    """The leaderboard's order must equal sorting by -score() (stable): guards its inlined formula."""
    clock = ManualClock()
    chain = build_chain(clock)
    clock.advance(7.5)  # some freshness decay
    lb = chain.strategies["leaderboard"]
    for method in [*METHODS, "eth_unmeasured"]:
        candidates = eligible(chain.pool, method, clock)
        expected = sorted(candidates, key=lambda p: -lb.score(p, method))
        if lb.order(candidates, method) != expected:
            raise AssertionError(f"leaderboard order differs from its score() for {method}")


def time_picks(fn, picks: int) -> float:
    methods = METHODS
    n = len(methods)
    t0 = time.perf_counter()
    for i in range(picks):
        fn(methods[i % n])
    return (time.perf_counter() - t0) / picks * 1e6


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--picks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    require(args.picks >= 1 and args.rounds >= 1, "--picks and --rounds must be at least 1")
    check_leaderboard_order()
    chain = build_chain()
    forwarder = chain.forwarder
    pool = chain.pool
    clock = chain._clock
    candidates = {
        "baseline: list(providers)": lambda m: list(pool.providers),
        "eligible() alone": lambda m: eligible(pool, m, clock),
    }
    for name, strategy in chain.strategies.items():
        candidates[f"plan: {name}"] = lambda m, s=strategy: forwarder.plan(m, s)
    for name, fn in candidates.items():  # each times real work: a non-empty choice of providers
        require(fn(METHODS[0]), f"{name}: picked no provider for {METHODS[0]}: it would time an empty plan")
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():  # warm-up
        time_picks(fn, 2000)
    for _ in range(args.rounds):
        for name, fn in candidates.items():  # interleaved
            runs[name].append(time_picks(fn, args.picks))
    result = {name: {"median_us": statistics.median(v), "min_us": min(v)} for name, v in runs.items()}
    print(f"{PROVIDERS} providers, warm statistics, {args.rounds} rounds × {args.picks} picks (interleaved)")
    for name, r in result.items():
        print(f"  {name:28s} {r['median_us']:6.2f} µs/pick (min {r['min_us']:.2f})")
    write_result("selection", result)
    return result


if __name__ == "__main__":
    run_main(main)
