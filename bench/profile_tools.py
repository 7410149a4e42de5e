"""Read py-spy's collapsed-stack output ("--format raw"): self and inclusive time per function.

    .venv/bin/python bench/profile_tools.py profile.txt [--top 30] [--filter livechain]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def load(path: str) -> tuple[Counter, Counter, int]:
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            n = int(count)
            frames = [_short(fr) for fr in stack.split(";") if fr and not fr.startswith("process ")
                      and not fr.startswith("thread ")]
            total += n
            if frames:
                self_time[frames[-1]] += n
            for fr in set(frames):
                inclusive[fr] += n
    return self_time, inclusive, total


def summarize_collapsed(path: str, top: int = 25, contains: str = "") -> str:
    self_time, inclusive, total = load(path)
    if not total:
        return "(no samples)"
    lines = [f"{total} samples; self time (top {top}):"]
    for name, n in self_time.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}%  {name}")
    lines.append(f"inclusive time (top {top}{', ' + contains if contains else ''}):")
    shown = 0
    for name, n in inclusive.most_common():
        if contains and contains not in name:
            continue
        lines.append(f"  {100 * n / total:5.1f}%  {name}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--filter", default="")
    args = parser.parse_args()
    print(summarize_collapsed(args.path, args.top, args.filter))
