"""Measure a proposed change to a file the benchmarks don't own, before making it: Livechain variants side by side.

Each variant is a full Livechain (the bench/http_proxy.py setup) started by a launcher that applies named
patches before the app is built; wrk rounds interleave the variants at c=1 and c=50. Patches:

    fold20ms        app.FOLD_INTERVAL = 0.02: the benchmark store is folded every 20 ms instead of 250 ms, so one
                    fold handles ~12× fewer records and stalls the loop ~12× shorter (p99 at load)
    breaker-fast    CircuitBreaker.available()/acquire() answer a closed breaker without going through the
                    `state` property (selection calls available() per provider per request)
    no-minutes      BenchmarkStore.fold() without the one-minute series (their per-record cost)
    no-fold         BenchmarkStore.fold() drops the records: the upper bound of what folding costs
    gc-freeze       gc.freeze() once the app has started: objects from startup are never scanned again
    pool64          every provider's HTTP pool allows 64 connections instead of the configured 32

    .venv/bin/python bench/variants.py --variants base fold20ms --rounds 5
    .venv/bin/python bench/variants.py --variants base breaker-fast fold20ms+breaker-fast

Exits 1 with a message on stderr when a variant does not answer a JSON-RPC result, wrk gets no successful
reply, or a variant's CPU time did not advance (run longer).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    PYTHON,
    Child,
    check_rpc,
    cpu_seconds,
    fake_provider_nginx,
    free_port,
    livechain_config,
    measured,
    median,
    require,
    run_main,
    run_wrk,
    wait_port,
    workdir,
    write_result,
    wrk_script,
)
from http_proxy import chain_yaml

_LAUNCHER = r'''
import sys
from livechain import log as logsetup
from livechain.app import App, run, serve
from livechain.config import ConfigStore, load_config

def fold20ms():
    import livechain.app
    livechain.app.FOLD_INTERVAL = 0.02

def breaker_fast():
    from livechain.failsafe.breaker import BreakerState, CircuitBreaker
    closed = BreakerState.CLOSED
    available, acquire = CircuitBreaker.available, CircuitBreaker.acquire
    def fast_available(self):
        return True if self._state is closed else available(self)
    def fast_acquire(self):
        return self._generation << 1 if self._state is closed else acquire(self)
    CircuitBreaker.available, CircuitBreaker.acquire = fast_available, fast_acquire

def no_minutes():
    from livechain.metrics.store import BenchmarkStore
    fold = BenchmarkStore.fold
    def fold_without_minutes(self):
        n = fold(self)
        self.rpc_minutes.clear()
        self.race_minutes.clear()
        return n
    BenchmarkStore.fold = fold_without_minutes  # (approximation: the dict work still happens; upper bound)

def gc_freeze():
    import gc
    import livechain.app
    start = livechain.app.App.start
    async def start_then_freeze(self, *args, **kwargs):
        port = await start(self, *args, **kwargs)
        gc.collect()
        gc.freeze()  # what exists at startup is never scanned again
        return port
    livechain.app.App.start = start_then_freeze

def pool64():
    from livechain.transport.http import HttpPool
    init = HttpPool.__init__
    def init64(self, url, **kwargs):
        kwargs["max_connections"] = 64
        init(self, url, **kwargs)
    HttpPool.__init__ = init64

def no_fold():
    from livechain.metrics.store import BenchmarkStore
    def discard(self):
        n = len(self._pending)
        self._pending.clear()
        return n
    BenchmarkStore.fold = discard  # records are dropped: the upper bound of what folding costs

PATCHES = {"no-fold": no_fold, "fold20ms": fold20ms, "breaker-fast": breaker_fast, "no-minutes": no_minutes, "gc-freeze": gc_freeze,
           "pool64": pool64}
path, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for name in filter(None, names.split("+")):
    if name != "base":
        PATCHES[name]()
config = load_config(path)
logsetup.setup(config.logging.level, config.logging.format)
run(serve(App(ConfigStore(path, config)), "127.0.0.1", port))
'''


def start_variant(d: str, config: str, name: str) -> tuple[Child, int]:
    conf = os.path.join(d, "livechain.yaml")
    with open(conf, "w") as f:
        f.write(config)
    launcher = os.path.join(d, "variant.py")
    with open(launcher, "w") as f:
        f.write(_LAUNCHER)
    port = free_port()
    log = open(os.path.join(d, f"{name}.log"), "wb")
    proc = subprocess.Popen([PYTHON, launcher, conf, str(port), name], stdout=log, stderr=log, cwd=d)
    log.close()
    wait_port(port, proc=proc)
    return Child(proc, name), port


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["base", "fold20ms"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    args = parser.parse_args()
    require(args.rounds >= 1 and args.concurrency and args.variants, "--rounds must be at least 1")
    runs: dict[tuple[str, int], list[dict]] = {}
    with workdir("lcbench-variants-") as d:
        fake_port = free_port()
        children = [fake_provider_nginx(d, fake_port)]
        try:
            config = livechain_config(chain_yaml(fake_port))
            targets = {}
            for name in args.variants:
                child, port = start_variant(d, config, name)
                children.append(child)
                targets[name] = (f"http://127.0.0.1:{port}/rpc/bench", child.pid)
            script = wrk_script(d)
            time.sleep(1.0)
            for url, _ in targets.values():  # every variant answers; warm-up
                check_rpc(url)
                run_wrk(url, script, 50, 2)
            for r in range(args.rounds):
                for c in args.concurrency:
                    for name, (url, pid) in targets.items():
                        before = cpu_seconds(pid)
                        res = run_wrk(url, script, c, args.seconds)
                        cpu = cpu_seconds(pid) - before
                        require(cpu > 0, f"{name} c={c}: its CPU time did not advance in {args.seconds:g} s "
                                         f"(clock ticks are 10 ms): nothing measured, run longer")
                        res["cpu_us"] = cpu / res["requests"] * 1e6
                        del res["cpu_s"]
                        runs.setdefault((name, c), []).append(res)
                        print(f"  round {r + 1} c={c:<3} {name:24s} p50 {res['p50_us']:5d} µs  p99 {res['p99_us']:6d} µs"
                              f"  {res['rps']:7.0f} req/s  {res['cpu_us']:6.1f} µs CPU/req", flush=True)
        finally:
            for child in reversed(children):
                child.stop()
    base = args.variants[0]
    summary: dict = {}
    print(f"\nmedians (ratios: per round against {base}, then the median)")
    for c in args.concurrency:
        for name in args.variants:
            rs, bs = runs[(name, c)], runs[(base, c)]
            row = {k: median([x[k] for x in rs]) for k in ("p50_us", "p99_us", "rps", "cpu_us")}
            row["cpu_ratio"] = median([a["cpu_us"] / b["cpu_us"] for a, b in zip(rs, bs, strict=True)])
            row["p99_ratio"] = median([a["p99_us"] / b["p99_us"] for a, b in zip(rs, bs, strict=True)])
            for key, value in row.items():
                measured(value, f"c={c} {name} {key}")
            summary[f"{name}/{c}"] = row
            print(f"  c={c:<3} {name:24s} p50 {row['p50_us']:5.0f} µs  p99 {row['p99_us']:6.0f} µs  {row['rps']:7.0f} req/s"
                  f"  {row['cpu_us']:6.1f} µs CPU/req   CPU {row['cpu_ratio']:.2f}×  p99 {row['p99_ratio']:.2f}×")
    write_result("variants", summary)
    return summary


if __name__ == "__main__":
    run_main(main)
