"""HTTP added latency and CPU cost: direct vs nginx proxy_pass vs Livechain (full feature path), with wrk.

The provider is an nginx that answers every POST at once with a fixed JSON-RPC reply (keep-alive). Targets:

    direct      wrk → fake provider
    nginx       wrk → nginx proxy_pass (upstream keep-alive) → fake provider          (the C limit)
    livechain   wrk → Livechain /rpc/bench → fake provider: leaderboard strategy, 3 providers (all the fake),
                breakers, benchmark store + fold timer, per-method stats, health checks, JSON logging at
                its default level (info) to a file — everything a deployment runs
    minimal     wrk → bench/minimal_proxy.py (Livechain's HTTP edge + upstream pool, no features): the floor
                of this architecture in Python, to split Livechain's cost into "Python proxy" + "features"
    before      (with --before SRC) Livechain run from another source tree, e.g. a copy taken before a
                change: before/after in the same run

wrk POSTs an eth_blockNumber body (Lua script) at 1 connection and at 50. Rounds are interleaved
(direct, nginx, livechain, direct, …) and medians reported:

    added p50/p99 = proxy percentile − direct percentile (same round)
    CPU µs/req    = (utime + stime of the proxy process, /proc/PID/stat) / requests

    .venv/bin/python bench/http_proxy.py                      # 5 rounds × 5 s per target and concurrency
    .venv/bin/python bench/http_proxy.py --rounds 3 --seconds 3 --profile   # + py-spy of Livechain at c=50
    .venv/bin/python bench/http_proxy.py --before /tmp/before-src           # + the tree before a change

A benchmark, not a test: compare ratios from the same run, never absolute numbers across machines. Exits 1
with a message on stderr when a target does not answer a JSON-RPC result, wrk gets no successful reply, or a
proxy's CPU time did not advance (run longer).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    check_rpc,
    fake_provider_nginx,
    free_port,
    livechain_config,
    measured,
    median,
    proxy_nginx,
    require,
    run_main,
    run_wrk,
    start_livechain,
    start_minimal_proxy,
    workdir,
    write_result,
    wrk_script,
)

TARGETS = ["direct", "nginx", "minimal", "livechain"]


def chain_yaml(fake_port: int, providers: int = 3, strategy: str = "leaderboard") -> str:
    lines = [f"  bench:\n    chain_id: 1\n    strategy: {strategy}\n    providers:\n"]
    for i in range(providers):
        lines.append(f"      - {{id: p{i + 1}, http_url: 'http://127.0.0.1:{fake_port}/p{i + 1}'}}\n")
    return "".join(lines)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--profile", action="store_true", help="py-spy record Livechain during one extra c=50 run")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--before", help="also run Livechain from this source tree (its src/ directory)")
    args = parser.parse_args()
    targets = TARGETS + (["before"] if args.before else [])
    require(args.rounds >= 1 and args.concurrency, "--rounds must be at least 1, with at least one --concurrency")
    if args.before:  # else `python -m livechain` would silently import the installed tree instead
        require(os.path.isfile(os.path.join(args.before, "livechain", "__init__.py")),
                f"--before {args.before} is not a src/ directory with a livechain package")

    with workdir("lcbench-http-") as d:
        fake_port, proxy_port = free_port(), free_port()
        fake = fake_provider_nginx(d, fake_port)
        children = [fake]
        try:
            proxy = proxy_nginx(d, proxy_port, fake_port)
            children.append(proxy)
            config = livechain_config(chain_yaml(fake_port), level=args.log_level)
            lc, lc_port = start_livechain(d, config)
            children.append(lc)
            minimal, minimal_port = start_minimal_proxy(f"http://127.0.0.1:{fake_port}/p1")
            children.append(minimal)
            script = wrk_script(d)
            urls = {
                "direct": (f"http://127.0.0.1:{fake_port}/", None),
                "nginx": (f"http://127.0.0.1:{proxy_port}/", proxy.pid),
                "minimal": (f"http://127.0.0.1:{minimal_port}/", minimal.pid),
                "livechain": (f"http://127.0.0.1:{lc_port}/rpc/bench", lc.pid),
            }
            if args.before:
                env = {"PYTHONPATH": os.path.abspath(args.before)}
                before, before_port = start_livechain(d, config, name="before", env=env)
                children.append(before)
                urls["before"] = (f"http://127.0.0.1:{before_port}/rpc/bench", before.pid)
            for url, _ in urls.values():  # every target answers; warm-up: connections, pools, statistics
                check_rpc(url)
                run_wrk(url, script, 50, 2)
            time.sleep(0.5)
            runs: dict[tuple[str, int], list[dict]] = {}
            print(f"{args.rounds} rounds × {args.seconds:g} s per target; CPU = utime+stime of the proxy process",
                  flush=True)
            for r in range(args.rounds):
                for c in args.concurrency:
                    for target in targets:
                        url, pid = urls[target]
                        watch = [fake.pid] + ([pid] if pid else [])
                        res = run_wrk(url, script, c, args.seconds, watch=watch)
                        require(not pid or res["cpu_s"][pid] > 0,
                                f"{target} c={c}: its CPU time did not advance in {args.seconds:g} s "
                                f"(clock ticks are 10 ms): nothing measured, run longer")
                        res["cpu_us"] = res["cpu_s"][pid] / res["requests"] * 1e6 if pid else None
                        res["fake_cpu_us"] = res["cpu_s"][fake.pid] / res["requests"] * 1e6
                        del res["cpu_s"]
                        runs.setdefault((target, c), []).append(res)
                        cpu = f"{res['cpu_us']:6.1f} µs CPU/req" if pid else " " * 17
                        print(f"  round {r + 1} c={c:<3} {target:9} p50 {res['p50_us']:5d} µs  p99 {res['p99_us']:6d} µs"
                              f"  {res['rps']:8.0f} req/s  {cpu}  errors {res['errors']}", flush=True)
            profile = None
            if args.profile:
                profile = py_spy(lc.pid, urls["livechain"][0], script, d)
        finally:
            for child in reversed(children):
                child.stop()

    summary = summarize(runs, args.concurrency, targets)
    summary["profile"] = profile
    summary["config"] = {"rounds": args.rounds, "seconds": args.seconds, "log_level": args.log_level}
    print_summary(summary)
    write_result("http_proxy", summary)
    return summary


def summarize(runs: dict, concurrency: list[int], targets: list[str]) -> dict:
    out: dict = {"by_concurrency": {}, "targets": targets}
    for c in concurrency:
        n = len(runs[("direct", c)])
        rows = {}
        for target in targets:
            rs = runs[(target, c)]
            rows[target] = {
                "p50_us": median([x["p50_us"] for x in rs]),
                "p99_us": median([x["p99_us"] for x in rs]),
                "rps": median([x["rps"] for x in rs]),
                "cpu_us": median([x["cpu_us"] for x in rs]) if rs[0]["cpu_us"] is not None else None,
                "errors": sum(x["errors"] for x in rs),
            }
            for key, value in rows[target].items():
                if value is not None:
                    measured(value, f"c={c} {target} {key}")
            if target != "direct":
                d = runs[("direct", c)]
                rows[target]["added_p50_us"] = median([rs[i]["p50_us"] - d[i]["p50_us"] for i in range(n)])
                rows[target]["added_p99_us"] = median([rs[i]["p99_us"] - d[i]["p99_us"] for i in range(n)])
        lc, ng = runs[("livechain", c)], runs[("nginx", c)]
        d = runs[("direct", c)]
        ratios = {
            # per round, then the median of the per-round ratios
            "added_p50": median([
                (lc[i]["p50_us"] - d[i]["p50_us"]) / max(1, ng[i]["p50_us"] - d[i]["p50_us"]) for i in range(n)
            ]),
            "cpu": median([lc[i]["cpu_us"] / ng[i]["cpu_us"] for i in range(n)]),
            "rps": median([lc[i]["rps"] / ng[i]["rps"] for i in range(n)]),
        }
        mn = runs[("minimal", c)]
        ratios["minimal_cpu"] = median([mn[i]["cpu_us"] / ng[i]["cpu_us"] for i in range(n)])
        ratios["minimal_added_p50"] = median([
            (mn[i]["p50_us"] - d[i]["p50_us"]) / max(1, ng[i]["p50_us"] - d[i]["p50_us"]) for i in range(n)
        ])
        if "before" in targets:
            bf = runs[("before", c)]
            ratios["after_before_cpu"] = median([lc[i]["cpu_us"] / bf[i]["cpu_us"] for i in range(n)])
            ratios["after_before_added_p50"] = median([
                (lc[i]["p50_us"] - d[i]["p50_us"]) / max(1, bf[i]["p50_us"] - d[i]["p50_us"]) for i in range(n)
            ])
            ratios["before_cpu"] = median([bf[i]["cpu_us"] / ng[i]["cpu_us"] for i in range(n)])
        for key, value in ratios.items():
            measured(value, f"c={c} ratio {key}")
        out["by_concurrency"][str(c)] = {"rows": rows, "ratios": ratios}
    return out


def print_summary(summary: dict) -> None:
    print("\nmedians (added = minus direct, same round; ratios = median of per-round ratios)")
    for c, block in summary["by_concurrency"].items():
        for target, row in block["rows"].items():
            added = (f"  added p50 {row['added_p50_us']:6.0f} µs  added p99 {row['added_p99_us']:6.0f} µs"
                     if "added_p50_us" in row else " " * 44)
            cpu = f"  {row['cpu_us']:6.1f} µs CPU/req" if row["cpu_us"] is not None else ""
            print(f"  c={c:<3} {target:9} p50 {row['p50_us']:6.0f} µs  p99 {row['p99_us']:6.0f} µs{added}"
                  f"  {row['rps']:8.0f} req/s{cpu}")
        r = block["ratios"]
        print(f"  c={c:<3} livechain / nginx: added p50 {r['added_p50']:.2f}×  CPU {r['cpu']:.2f}×  req/s {r['rps']:.2f}×"
              f"   (minimal / nginx: added p50 {r['minimal_added_p50']:.2f}×  CPU {r['minimal_cpu']:.2f}×)")
        if "after_before_cpu" in r:
            print(f"  c={c:<3} livechain / before: added p50 {r['after_before_added_p50']:.2f}×  CPU {r['after_before_cpu']:.2f}×")


def py_spy(pid: int, url: str, script: str, d: str) -> str | None:
    """py-spy (if installed in the venv) records Livechain during a c=50 run; returns the top functions."""
    exe = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(exe):
        print("py-spy is not installed in the venv (pip install py-spy); no profile", flush=True)
        return None
    out = os.path.join(d, "profile.txt")
    spy = subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", "500", "--duration", "8", "--format", "raw",
         "--nonblocking", "-o", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    run_wrk(url, script, 50, 7)
    spy.wait(30)
    if not os.path.exists(out):
        return None
    from profile_tools import summarize_collapsed

    text = summarize_collapsed(out)
    print(text)
    return text


if __name__ == "__main__":
    run_main(main)
