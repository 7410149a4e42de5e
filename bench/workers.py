"""Would several Livechain worker processes help on this machine? 1 vs 2 processes sharing a port.

Each worker is a full Livechain (same config as bench/http_proxy.py) started by a small launcher that binds
with SO_REUSEPORT, so the kernel spreads wrk's connections over the workers. Interleaved rounds at c=50
(and c=1): req/s, p50/p99, and CPU µs per request summed over the workers. Livechain has no such mode:
each worker would keep its own breakers, statistics, leaderboard, race scores and upstream WebSockets — this
only measures whether it would be worth making coherent. Exits 1 with a message on stderr when a group does
not answer a JSON-RPC result, wrk gets no successful reply, or the workers' CPU time did not advance.

    .venv/bin/python bench/workers.py --rounds 3
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
import asyncio, sys, uvloop
from livechain import log as logsetup
from livechain.app import App, serve
from livechain.config import ConfigStore, load_config

class Loop(uvloop.Loop):
    async def create_server(self, *args, **kwargs):
        kwargs["reuse_port"] = True
        return await super().create_server(*args, **kwargs)

path, port = sys.argv[1], int(sys.argv[2])
config = load_config(path)
logsetup.setup(config.logging.level, config.logging.format)
with asyncio.Runner(loop_factory=Loop) as runner:
    runner.run(serve(App(ConfigStore(path, config)), "127.0.0.1", port))
'''


def start_workers(d: str, config: str, n: int, port: int, tag: str) -> list[Child]:
    conf = os.path.join(d, f"{tag}.yaml")
    with open(conf, "w") as f:
        f.write(config)
    launcher = os.path.join(d, "launcher.py")
    with open(launcher, "w") as f:
        f.write(_LAUNCHER)
    children = []
    for i in range(n):
        log = open(os.path.join(d, f"{tag}-{i}.log"), "wb")
        proc = subprocess.Popen([PYTHON, launcher, conf, str(port)], stdout=log, stderr=log, cwd=d)
        log.close()
        children.append(Child(proc, f"{tag}-{i}"))
    wait_port(port, proc=children[0].proc)
    time.sleep(1.0)
    return children


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    require(args.rounds >= 1, "--rounds must be at least 1")
    runs: dict[str, list[dict]] = {}
    with workdir("lcbench-workers-") as d:
        fake_port = free_port()
        children = [fake_provider_nginx(d, fake_port)]
        try:
            config = livechain_config(chain_yaml(fake_port))
            groups = {}
            for n in (1, 2):
                port = free_port()
                workers = start_workers(d, config, n, port, f"w{n}")
                children += workers
                groups[n] = (port, [w.pid for w in workers])
            script = wrk_script(d)
            for port, _ in groups.values():  # every group answers; warm-up
                check_rpc(f"http://127.0.0.1:{port}/rpc/bench")
                run_wrk(f"http://127.0.0.1:{port}/rpc/bench", script, 50, 2)
            for r in range(args.rounds):
                for c in (1, 50):
                    for n, (port, pids) in groups.items():
                        before = sum(cpu_seconds(p) for p in pids)
                        res = run_wrk(f"http://127.0.0.1:{port}/rpc/bench", script, c, args.seconds)
                        cpu = sum(cpu_seconds(p) for p in pids) - before
                        require(cpu > 0, f"{n} worker(s) c={c}: their CPU time did not advance in {args.seconds:g} s "
                                         f"(clock ticks are 10 ms): nothing measured, run longer")
                        res["cpu_us"] = cpu / res["requests"] * 1e6
                        del res["cpu_s"]
                        runs.setdefault(f"{n}/{c}", []).append(res)
                        print(f"  round {r + 1} c={c:<3} {n} worker(s)  p50 {res['p50_us']:5d} µs  p99 {res['p99_us']:6d} µs"
                              f"  {res['rps']:7.0f} req/s  {res['cpu_us']:6.1f} µs CPU/req", flush=True)
        finally:
            for child in reversed(children):
                child.stop()
    summary = {key: {k: median([x[k] for x in rs]) for k in ("p50_us", "p99_us", "rps", "cpu_us")}
               for key, rs in runs.items()}
    for key, row in summary.items():
        for k, value in row.items():
            measured(value, f"{key} {k}")
    print("\nmedians")
    for key, row in summary.items():
        n, c = key.split("/")
        print(f"  c={c:<3} {n} worker(s)  p50 {row['p50_us']:5.0f} µs  p99 {row['p99_us']:6.0f} µs"
              f"  {row['rps']:7.0f} req/s  {row['cpu_us']:6.1f} µs CPU/req")
    write_result("workers", summary)
    return summary


if __name__ == "__main__":
    run_main(main)
