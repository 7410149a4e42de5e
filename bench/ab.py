"""A/B a hot-path change: run `request_path.py` against two source trees, interleaved A B A B …, medians.

    cp -r src /tmp/before-src            # before editing
    ... edit src/ ...
    .venv/bin/python bench/ab.py /tmp/before-src src --pairs 8

Each run is a fresh process (PYTHONPATH=<tree>) reporting its fastest round; the ratio B/A is computed per pair and its median printed,
so slow phases of this shared machine hit both sides alike. (`request_path.py --before SRC` does the same with
one round per process and prints medians and minimums per tree.) Exits 1 with a message on stderr when a run
fails, measures nothing or imports livechain from another tree than the one given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import measured, require, run_main

HERE = os.path.dirname(os.path.abspath(__file__))
EMIT = "REQUEST_PATH_JSON "  # request_path.py --emit-json


def one(tree: str, requests: int, rounds: int) -> float:
    """The fastest round (µs/request) of request_path.py run with PYTHONPATH=tree."""
    tree = os.path.abspath(tree)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "request_path.py"), "--requests", str(requests), "--rounds", str(rounds),
         "--emit-json"],
        env={**os.environ, "PYTHONPATH": tree}, capture_output=True, text=True,
    )
    tail = (out.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    require(out.returncode == 0, f"request_path.py on {tree} exited with {out.returncode}: {tail}")
    lines = [line for line in out.stdout.splitlines() if line.startswith(EMIT)]
    require(lines, f"request_path.py on {tree} printed no result: {out.stdout[-300:]!r}")
    data = json.loads(lines[-1][len(EMIT):])
    require(os.path.realpath(data["src"]) == os.path.realpath(tree),
            f"the run for {tree} imported livechain from {data['src']}: is {tree} a src/ directory?")
    require(data["us_per_request"], f"request_path.py on {tree} measured no round")
    return measured(min(data["us_per_request"]), f"{tree} µs/request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    require(args.pairs >= 1, "--pairs must be at least 1")
    a_runs, b_runs, ratios = [], [], []
    for i in range(args.pairs):
        a = one(args.a, args.requests, args.rounds)
        b = one(args.b, args.requests, args.rounds)
        a_runs.append(a)
        b_runs.append(b)
        ratios.append(b / a)
        print(f"  pair {i + 1}: A {a:6.2f} µs  B {b:6.2f} µs  B/A {b / a:.3f}", flush=True)
    print(f"A {args.a}: {statistics.median(a_runs):.2f} µs/request   B {args.b}: {statistics.median(b_runs):.2f} µs/request"
          f"   B/A {statistics.median(ratios):.3f} (median of per-pair ratios)")


if __name__ == "__main__":
    run_main(main)
