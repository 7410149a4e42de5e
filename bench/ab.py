"""A/B a hot-path change: run `request_path.py` against two source trees, interleaved A B A B …, medians.

    cp -r src /tmp/before-src            # before editing
    ... edit src/ ...
    .venv/bin/python bench/ab.py /tmp/before-src src --pairs 8

Each run is a fresh process (PYTHONPATH=<tree>) reporting its fastest round; the ratio B/A is computed per pair and its median printed,
so slow phases of this shared machine hit both sides alike.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def one(tree: str, requests: int, rounds: int) -> float:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "request_path.py"), "--requests", str(requests), "--rounds", str(rounds)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"min ([\d.]+)", out)
    if not match:
        raise RuntimeError(out)
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
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
    main()
