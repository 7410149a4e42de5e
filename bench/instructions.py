"""Instructions per proxied request on the request path, counted by valgrind (callgrind): a figure that does not
move with the machine's load, for before/after comparisons of a hot-path change that µs cannot resolve.

For each tree it runs `bench/request_path.py --rounds 1` under callgrind twice, with --low and --high requests
per round, and reports (Ir(high) − Ir(low)) / (high − low): interpreter start-up, imports, the app's
construction and the warm-up cancel out, what remains is the cost of one request through Livechain's real
edge, routes, pipeline, routing, provider and pool (request_path.py's in-memory transports).

    .venv/bin/python bench/instructions.py                                  # this tree
    .venv/bin/python bench/instructions.py --before /tmp/lc-before/src      # + another tree, and the ratio

Slow (valgrind runs Python ~50× slower): about a minute per run. Exits 1 when a run measured nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import MeasuredNothing, require, run_main

HERE = os.path.dirname(os.path.abspath(__file__))
THIS_SRC = os.path.join(os.path.dirname(HERE), "src")
_TOTAL = re.compile(rb"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def instructions(src: str, requests: int) -> int:
    """Total instructions of one request_path run of `requests` requests (plus its fixed costs)."""
    with tempfile.TemporaryDirectory(prefix="lcbench-ir-") as d:
        out = os.path.join(d, "callgrind.out")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
             sys.executable, os.path.join(HERE, "request_path.py"), "--rounds", "1", "--requests", str(requests)],
            env={**os.environ, "PYTHONPATH": src, "PYTHONHASHSEED": "0"},
            capture_output=True, timeout=1800, check=False,
        )
        if proc.returncode != 0 or not os.path.exists(out):
            raise MeasuredNothing(f"callgrind run failed ({src}, {requests} requests): "
                                  f"{proc.stderr.decode(errors='replace')[-500:]}")
        with open(out, "rb") as fh:
            found = _TOTAL.search(fh.read())
    require(found is not None, f"no instruction total in callgrind's output ({src})")
    return int(found.group(1))  # type: ignore[union-attr]


def per_request(src: str, low: int, high: int) -> float:
    a, b = instructions(src, low), instructions(src, high)
    require(b > a, f"{src}: {high} requests cost no more instructions than {low} ({b} <= {a})")
    return (b - a) / (high - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--low", type=int, default=1000)
    parser.add_argument("--high", type=int, default=5000)
    parser.add_argument("--before", metavar="SRC", help="another tree's src/ directory, measured the same way")
    args = parser.parse_args()
    require(args.high > args.low > 0, "need --high > --low > 0")
    require(os.path.isdir(os.path.join(THIS_SRC, "livechain")), f"no livechain package in {THIS_SRC}")
    after = per_request(THIS_SRC, args.low, args.high)
    print(f"after  {THIS_SRC}: {after:,.0f} instructions/request")
    if args.before:
        require(os.path.isdir(os.path.join(args.before, "livechain")), f"no livechain package in {args.before}")
        before = per_request(args.before, args.low, args.high)
        print(f"before {args.before}: {before:,.0f} instructions/request")
        print(f"after/before: {after / before:.3f} ({after - before:+,.0f} instructions/request)")


if __name__ == "__main__":
    run_main(main)
