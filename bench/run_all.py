"""Run the whole benchmark suite and rewrite the results section of BENCHMARKS.md (`make bench`).

    .venv/bin/python bench/run_all.py                 # everything (~25 min on the 2-core box)
    .venv/bin/python bench/run_all.py --quick         # fewer rounds (~10 min), same tables
    .venv/bin/python bench/run_all.py --only race selection
    .venv/bin/python bench/run_all.py --render        # only re-render BENCHMARKS.md from bench/results/*.json
    .venv/bin/python bench/run_all.py --before /tmp/before-src   # + Livechain from an older tree (HTTP)
    .venv/bin/python bench/run_all.py --quick --no-render         # run the suite, leave BENCHMARKS.md alone

Each benchmark is its own script (run here as a subprocess) and leaves its numbers in bench/results/NAME.json;
this script renders them between the `results:start` / `results:end` markers of BENCHMARKS.md.

A benchmark that fails (e.g. it measured nothing) does not stop the others; at the end the failures are listed
on stderr, BENCHMARKS.md is not rewritten and the exit status is 1. A rendered section containing nan/inf is
not written either (exit status 1).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
DOC = os.path.join(ROOT, "BENCHMARKS.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"

SUITE = {
    "http_proxy": (["--rounds", "5", "--seconds", "5", "--profile"], ["--rounds", "3", "--seconds", "3"]),
    "request_path": (["--json", "request_path"], ["--json", "request_path", "--rounds", "3"]),
    "request_path_minimal": (["--minimal", "--json", "request_path_minimal"],
                             ["--minimal", "--json", "request_path_minimal", "--rounds", "3"]),
    "ws_fanout": (["--clients", "1000", "5000", "--rounds", "2", "--seconds", "10"],
                  ["--clients", "1000", "5000", "--rounds", "1", "--seconds", "5"]),
    "inprocess": (["--json", "inprocess"], ["--json", "inprocess", "--rounds", "3", "--seconds", "2"]),
    "cache": ([], ["--rounds", "3", "--seconds", "3", "--operations", "50000"]),
    "logs_split": (["--json", "logs_split"], ["--json", "logs_split", "--blocks", "20000", "--rounds", "2"]),
    "race": ([], ["--rounds", "3"]),
    "selection": ([], ["--rounds", "3"]),
    "integrity": ([], ["--rounds", "3", "--calls", "500"]),
    "memory": ([], []),
    "failover": ([], ["--steady", "500"]),
    "workers": (["--rounds", "3"], ["--rounds", "2", "--seconds", "3"]),
    "variants": (["--variants", "base", "fold20ms", "fold20ms+gc-freeze", "breaker-fast", "--rounds", "4"],
                 ["--variants", "base", "fold20ms", "fold20ms+gc-freeze", "breaker-fast", "--rounds", "2",
                  "--seconds", "3"]),
}
SCRIPT = {"request_path_minimal": "request_path"}


def run(name: str, quick: bool, before: str | None) -> bool:
    """Run one benchmark; False (and a line on stderr) when it failed."""
    args = list(SUITE[name][1 if quick else 0])
    if name == "http_proxy" and before:
        args += ["--before", before]
    script = os.path.join(HERE, SCRIPT.get(name, name) + ".py")
    print(f"\n=== {name}: {' '.join(args)}", flush=True)
    code = subprocess.run([sys.executable, script, *args], cwd=ROOT).returncode
    if code != 0:
        print(f"=== {name} FAILED with exit status {code}", file=sys.stderr, flush=True)
    return code == 0


def load(name: str) -> dict | None:
    path = os.path.join(RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        data = json.load(f)
    data["_mtime"] = datetime.datetime.fromtimestamp(os.path.getmtime(path)).strftime("%Y-%m-%d %H:%M")
    return data


def _f(value: float | None, fmt: str = ".0f") -> str:
    return "–" if value is None else format(value, fmt)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render() -> str:
    out: list[str] = []
    load1 = os.getloadavg()[0]
    out.append(f"Rendered {datetime.datetime.now():%Y-%m-%d %H:%M} on {os.cpu_count()} CPUs, Python "
               f"{platform.python_version()}, load average {load1:.1f} at render time. Each table says when its "
               "numbers were measured. Ratios are medians of per-round ratios from one interleaved run.\n")
    goals: list[str] = []

    http = load("http_proxy")
    if http:
        out.append(f"### HTTP added latency and cost (`bench/http_proxy.py`, {http['_mtime']}, "
                   f"{http['config']['rounds']} rounds × {http['config']['seconds']:g} s)\n")
        out.append("| c | target | p50 µs | p99 µs | added p50 µs | added p99 µs | req/s | CPU µs/req |")
        out.append("|---|---|---|---|---|---|---|---|")
        order = ["direct", "nginx", "minimal", "livechain", "before"]
        for c, block in http["by_concurrency"].items():
            for target in [t for t in order if t in block["rows"]]:
                row = block["rows"][target]
                out.append(f"| {c} | {target} | {_f(row['p50_us'])} | {_f(row['p99_us'])} | "
                           f"{_f(row.get('added_p50_us'))} | {_f(row.get('added_p99_us'))} | {_f(row['rps'])} | "
                           f"{_f(row['cpu_us'], '.1f')} |")
        out.append("")
        out.append("| c | Livechain / nginx added p50 | Livechain / nginx CPU | Livechain / nginx req/s "
                   "| minimal / nginx added p50 | minimal / nginx CPU |")
        out.append("|---|---|---|---|---|---|")
        for c, block in http["by_concurrency"].items():
            r = block["ratios"]
            out.append(f"| {c} | {r['added_p50']:.2f}× | {r['cpu']:.2f}× | {r['rps']:.2f}× | "
                       f"{r['minimal_added_p50']:.2f}× | {r['minimal_cpu']:.2f}× |")
        out.append("")
        if any("after_before_cpu" in b["ratios"] for b in http["by_concurrency"].values()):
            out.append("Before/after in the same run (`before` = this tree with the hot-path files as they were "
                       "before the optimisations):\n")
            out.append("| c | after / before added p50 | after / before CPU | before / nginx CPU |")
            out.append("|---|---|---|---|")
            for c, block in http["by_concurrency"].items():
                r = block["ratios"]
                out.append(f"| {c} | {r['after_before_added_p50']:.2f}× | {r['after_before_cpu']:.2f}× | "
                           f"{r['before_cpu']:.2f}× |")
            out.append("")
        r1 = http["by_concurrency"].get("1", {}).get("ratios")
        r50 = http["by_concurrency"].get("50", {}).get("ratios")
        if r1:
            goals.append(f"| HTTP added p50 at c=1 ≤ 1.5× nginx's | {r1['added_p50']:.2f}× | {_verdict(r1['added_p50'] <= 1.5)} |")
        if r50 and r1:
            goals.append(f"| HTTP CPU per request ≤ 3× nginx's | {r50['cpu']:.2f}× at c=50, {r1['cpu']:.2f}× at c=1 | "
                         f"{_verdict(r50['cpu'] <= 3 and r1['cpu'] <= 3)} |")
        if http.get("profile"):
            out.append("<details><summary>py-spy of Livechain at c=50 (self time)</summary>\n\n```\n"
                       + "\n".join(http["profile"].splitlines()[:30]) + "\n```\n</details>\n")

    rp, rpm = load("request_path"), load("request_path_minimal")
    if rp and rpm:
        out.append(f"### Python cost of one request, no sockets (`bench/request_path.py`, {rp['_mtime']})\n")
        out.append("| path | µs/request (min of rounds) |")
        out.append("|---|---|")
        out.append(f"| edge + pool only (minimal) | {rpm['min_us']:.1f} |")
        out.append(f"| Livechain full path | {rp['min_us']:.1f} |")
        out.append(f"| features on top of the edge + pool | {rp['min_us'] - rpm['min_us']:.1f} |\n")

    ws = load("ws_fanout")
    if ws:
        out.append(f"### WS fan-out (`bench/ws_fanout.py`, {ws['_mtime']}, {ws['config']['rate']:g} heads/s, "
                   f"{ws['config']['seconds']:g} s windows)\n")
        out.append("| target / N | p50 ms | p99 ms | CPU µs/msg (user + sys) | RSS with N clients | RSS per client | delivered |")
        out.append("|---|---|---|---|---|---|---|")
        for key, row in ws["by"].items():
            out.append(f"| {key} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['cpu_us_per_msg']:.1f} "
                       f"({row.get('user_us_per_msg', 0):.1f} + {row.get('sys_us_per_msg', 0):.1f}) | "
                       f"{row['rss_with_mb']:.0f} MB | {row['rss_per_client_kb']:.1f} KB | "
                       f"{row['delivered']}/{row['expected']} |")
        out.append("")
        lc5 = ws["by"].get("livechain/5000")
        if lc5:
            goals.append(f"| 5,000 WS subscribers, p99 delivery ≤ 50 ms | {lc5['p99_ms']:.0f} ms | "
                         f"{_verdict(lc5['p99_ms'] <= 50)} |")

    race = load("race")
    if race:
        out.append(f"### Racing throughput (`bench/race.py`, {race['_mtime']}, {race['config']['events']} events, "
                   f"jitter ≤ {race['config']['jitter_ms']:g} ms)\n")
        out.append("| level / providers | events/s | µs per arrival | µs per event |")
        out.append("|---|---|---|---|")
        levels = ["baseline", "aggregator", "feed", "feed+fold"]
        keys = sorted(race["by"], key=lambda k: (int(k.split("/")[1]), levels.index(k.split("/")[0])))
        for key in keys:
            row = race["by"][key]
            out.append(f"| {key} | {row['events_per_s']:,.0f} | {row['us_per_arrival']:.2f} | {row['us_per_event']:.2f} |")
        out.append("")
        worst = min(row["events_per_s"] for key, row in race["by"].items() if key.startswith("feed+fold"))
        goals.append(f"| ≥ 20,000 race events/s per chain | {worst:,.0f}/s (full feed path + fold, worst case) | "
                     f"{_verdict(worst >= 20_000)} |")

    sel = load("selection")
    if sel:
        out.append(f"### Selection (`bench/selection.py`, {sel['_mtime']}, 10 providers, warm statistics)\n")
        out.append("| pick | µs (median) | µs (min) |")
        out.append("|---|---|---|")
        names = [n for n in sel if not n.startswith("_")]
        names.sort(key=lambda n: (not n.startswith("baseline"), not n.startswith("eligible"),
                                  ["priority", "round_robin", "fastest", "leaderboard"].index(n.split(": ")[1])
                                  if n.startswith("plan") else 0))
        for name in names:
            row = sel[name]
            out.append(f"| {name} | {row['median_us']:.2f} | {row['min_us']:.2f} |")
        out.append("")
        worst = max(row["median_us"] for name, row in sel.items() if name.startswith("plan"))
        goals.append(f"| selection ≤ 10 µs (10 providers) | {worst:.1f} µs (slowest strategy, median) | "
                     f"{_verdict(worst <= 10)} |")

    integ = load("integrity")
    if integ:
        out.append(f"### Answer integrity (`bench/integrity.py`, {integ['_mtime']}, `integrity.check` per answer)\n")
        out.append("| call | µs (median) | µs (min) |")
        out.append("|---|---|---|")
        for name, row in integ.items():
            if not name.startswith("_"):
                out.append(f"| {name.strip()} | {row['median_us']:.1f} | {row['min_us']:.1f} |")
        out.append("")

    mem = load("memory")
    if mem:
        out.append(f"### Memory (`bench/memory.py`, {mem['_mtime']})\n")
        out.append("| case | RSS delta | tracemalloc |")
        out.append("|---|---|---|")
        for case in ("store", "store-nodrain", "aggregator-heads", "aggregator", "stats"):
            row = mem.get(case)
            if row:
                out.append(f"| {case} | {row['rss_mb']:.1f} MB | {row['traced_mb']:.1f} MB |")
        out.append(f"| baseline: the full detail ring's own bytes | {mem['floor_detail_ring_mb']:.1f} MB | |\n")
        heads = mem.get("aggregator-heads", mem["aggregator"])
        goals.append(f"| ≤ 10 MB per chain at the retention cap | {mem['per_chain_mb']:.1f} MB (store "
                     f"{mem['store']['traced_mb']:.1f} + newHeads race state {heads['traced_mb']:.1f} + stats "
                     f"{mem['stats']['traced_mb']:.1f}); without persistence taking the minute series the store "
                     f"is {mem['store-nodrain']['traced_mb']:.1f} MB; each extra high-rate feed at its bound "
                     f"+{mem['aggregator']['traced_mb']:.1f} MB | {_verdict(mem['per_chain_mb'] <= 10)} |")

    fo = load("failover")
    if fo:
        out.append(f"### Failover (`bench/failover.py`, {fo['_mtime']})\n")
        out.append("| first choice | first requests: added ms (attempts) | steady state added p50 / p99 µs | half-open probe added ms |")
        out.append("|---|---|---|---|")
        for dead in ("refuse", "blackhole"):
            row = fo.get(dead)
            if row is None:
                continue
            firsts = ", ".join(f"{x['added_us'] / 1000:.2f} ({x['attempts']})" for x in row["first"])
            probe = f"{row['probe']['added_us'] / 1000:.2f}" if "probe" in row else "–"
            out.append(f"| {dead} | {firsts} | {row['steady_added_p50_us']:.0f} / {row['steady_added_p99_us']:.0f} | {probe} |")
        out.append("")
        if "refuse" in fo:
            worst = max(x["added_us"] for x in fo["refuse"]["first"]) / 1000
            goals.append(f"| refused-provider failover adds ≤ 5 ms | ≤ {worst:.2f} ms (worst of the first requests) | "
                         f"{_verdict(worst <= 5)} |")

    wk = load("workers")
    if wk:
        out.append(f"### Several worker processes? (`bench/workers.py`, {wk['_mtime']}; SO_REUSEPORT, not a Livechain mode)\n")
        out.append("| c / workers | p50 µs | p99 µs | req/s | CPU µs/req (all workers) |")
        out.append("|---|---|---|---|---|")
        for key in sorted((k for k in wk if not k.startswith("_")), key=lambda k: (int(k.split("/")[1]), k)):
            row = wk[key]
            n, c = key.split("/")
            out.append(f"| c={c}, {n} worker(s) | {row['p50_us']:.0f} | {row['p99_us']:.0f} | {row['rps']:.0f} | {row['cpu_us']:.1f} |")
        out.append("")

    ip = load("inprocess")
    if ip:
        inp, http = ip["summary"]["inprocess"], ip["summary"]["http"]
        out.append(f"### In-process vs an HTTP round trip (`bench/inprocess.py`, {ip['_mtime']}, {ip['rounds']} rounds)\n")
        out.append(f"| | p50 µs (sequential) | p99 µs | CPU µs/request at {ip['concurrency']} in flight |")
        out.append("|---|---|---|---|")
        for label, row in (("in-process (`Livechain.request`)", inp), ("HTTP round trip through Livechain", http)):
            out.append(f"| {label} | {row['p50_us']:.1f} | {row['p99_us']:.1f} | {row['cpu_us_per_request']:.1f} |")
        out.append(f"| in-process / HTTP | {inp['p50_us'] / http['p50_us']:.2f}× | {inp['p99_us'] / http['p99_us']:.2f}× | "
                   f"{inp['cpu_us_per_request'] / http['cpu_us_per_request']:.2f}× |")
        out.append("")

    ca = load("cache")
    if ca and "http" in ca:
        out.append(f"### Response cache over HTTP (`bench/cache.py`, {ca['_mtime']})\n")
        out.append("eth_getBalance of a final block; hit = the same request every time, miss = a new address every "
                   "request (looked up, sent, kept). Added p50 = target − direct, same round.\n")
        out.append("| c | target | added p50 µs | p99 µs | req/s | CPU µs/req |")
        out.append("|---|---|---|---|---|---|")
        for c in ("1", "50"):
            row = ca["http"][c]
            for name in ("nginx", "hit", "miss"):
                r = row[name]
                out.append(f"| {c} | {name} | {r['added_p50_us']:.0f} | {r['p99_us']:.0f} | {r['rps']:.0f} | {_f(r['cpu_us'], '.1f')} |")
            q = row["ratios"]
            out.append(f"| {c} | hit / nginx, hit / miss | {q['hit_vs_nginx_added_p50']:.2f}×, {q['hit_vs_miss_added_p50']:.2f}× | | | "
                       f"hit / miss {q['hit_vs_miss_cpu']:.2f}× |")
        out.append("")
    if ca:
        m = ca["memory"]
        out.append(f"Cache memory ({m['operations']:,} random lookups and puts, 20 B – 200 KB answers): accounted peak "
                   f"{m['accounted_peak'] / 2**20:.2f} MiB of {m['max_bytes'] / 2**20:.0f} MiB, traced "
                   f"{m['traced_bytes'] / 2**20:.2f} MiB ({m['traced_vs_max']:.2f}× the bound), {m['evictions']:,} evictions, "
                   f"{m['us_per_operation']:.2f} µs per operation.\n")

    ls = load("logs_split")
    if ls:
        m, f = ls["median_ms"], ls["first_call"]
        out.append(f"### eth_getLogs over {ls['blocks']:,} blocks, providers taking 1,000 and 2,000 (`bench/logs_split.py`, "
                   f"{ls['_mtime']}, {ls['rounds']} rounds)\n")
        out.append(f"{ls['logs']:,} logs, {ls['bytes']:,} bytes; every answer byte-identical to the node's.\n")
        out.append("| | ms (median) | provider requests |")
        out.append("|---|---|---|")
        out.append(f"| the node directly, no limit | {m['direct']:.1f} | 1 |")
        out.append(f"| a client splitting by itself, 1,000 blocks at a time | {m['client_split']:.1f} | {ls['client_split_requests']} |")
        out.append(f"| Livechain, one call (limits learned) | {m['livechain']:.1f} | {ls['livechain_provider_requests']:.0f} |")
        out.append(f"| Livechain, the first call (learning) | {f['ms']:.1f} | {f['provider_requests']} ({f['refused']} refused) |")
        out.append(f"| Livechain / direct, / client split | {ls['livechain_over_direct']:.2f}×, {ls['livechain_over_client_split']:.2f}× | |")
        out.append("")

    va = load("variants")
    if va:
        out.append(f"### Proposed changes outside the benchmarks' files, measured as patches (`bench/variants.py`, {va['_mtime']})\n")
        out.append("| variant / c | p50 µs | p99 µs | req/s | CPU µs/req | CPU vs base | p99 vs base |")
        out.append("|---|---|---|---|---|---|---|")
        for key in sorted((k for k in va if not k.startswith("_")), key=lambda k: int(k.rsplit("/", 1)[1])):
            row = va[key]
            name, c = key.rsplit("/", 1)
            out.append(f"| {name}, c={c} | {row['p50_us']:.0f} | {row['p99_us']:.0f} | {row['rps']:.0f} | "
                       f"{row['cpu_us']:.1f} | {row['cpu_ratio']:.2f}× | {row['p99_ratio']:.2f}× |")
        out.append("")

    head = ["### Goals\n", "| goal | measured | |", "|---|---|---|", *goals, ""]
    return "\n".join(head + out)


def rewrite(section: str) -> None:
    with open(DOC) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{DOC} has no {START} … {END} markers")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    with open(DOC, "w") as f:
        f.write(before + START + "\n" + section + "\n" + END + after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(SUITE))
    parser.add_argument("--render", action="store_true", help="don't run anything, re-render from the results")
    parser.add_argument("--before", help="a source tree (src/) to compare Livechain against in http_proxy")
    parser.add_argument("--no-render", action="store_true", help="run the benchmarks, don't rewrite BENCHMARKS.md")
    args = parser.parse_args()
    if not args.render:
        failed = [name for name in args.only or SUITE if not run(name, args.quick, args.before)]
        if failed:
            print(f"run_all.py: FAILED: {', '.join(failed)} (see above); BENCHMARKS.md not rewritten "
                  f"(bench/results/ may hold older numbers of the failed ones)", file=sys.stderr)
            sys.exit(1)
    if args.no_render:
        return
    section = render()
    bad = sorted({m.group(0) for m in re.finditer(r"(?<![\w.])-?(nan|inf)(?![\w])", section, re.IGNORECASE)})
    if bad:
        print(f"run_all.py: FAILED: the rendered results contain {', '.join(bad)} (a benchmark measured nothing); "
              f"BENCHMARKS.md not rewritten", file=sys.stderr)
        sys.exit(1)
    rewrite(section)
    print(f"\nrewrote the results section of {DOC}")


if __name__ == "__main__":
    main()
