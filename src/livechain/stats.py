"""`livechain stats`: the leaderboard from the database, as a terminal table. Reads only; never writes."""

from __future__ import annotations

import os
import sys
import time

from livechain.config.schema import Config
from livechain.metrics import leaderboard
from livechain.metrics.persistence import Database
from livechain.metrics.store import BenchmarkStore

COLUMNS = ("#", "provider", "score", "win rate", "avg margin", "races", "missed", "p50", "success", "samples")


def _fmt(value: object, suffix: str = "", digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(str(c).rjust(w) if i != 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("─" * w for w in widths))
    return "\n".join(lines)


def print_stats(config: Config, *, region: str | None, chain: str | None, event: str, out=sys.stdout) -> int:
    path = config.persistence.sqlite_path
    if not path or not os.path.exists(path):
        print(f"no database at {path!r} (persistence.sqlite_path)", file=sys.stderr)
        return 1
    db = Database(path)
    try:
        snapshots = db.snapshots()
    finally:
        db.close()
    region = region or config.region
    found = [(c, saved, state) for r, c, saved, state in snapshots if r == region and (chain is None or c == chain)]
    if not found:
        regions = sorted({r for r, *_ in snapshots})
        print(f"no snapshot for region {region!r}" + (f" (found: {', '.join(regions)})" if regions else ""), file=sys.stderr)
        return 1
    for name, saved_at, state in sorted(found):
        store = BenchmarkStore(name, region=region)
        store.load_state(state)
        providers = sorted({p for p, _ in store.rpc_stats} | {p for p, _ in store.race_stats})
        ranked = leaderboard.rank(store, providers, event=event, window=False)
        age = time.time() - saved_at
        print(f"\n{name} — region {region}, snapshot {age:.0f}s old, {event} races", file=out)
        rows = [list(COLUMNS)]
        for r in ranked:
            race, rpc = r["race"], r["rpc"]
            rows.append([
                str(r["rank"]), r["provider"], _fmt(r["score"], digits=3),
                _fmt(race["win_rate"] * 100 if race["win_rate"] is not None else None, "%", 1),
                _fmt(race["avg_margin_ms"], " ms", 1), str(race["races"]), str(race["missed"]),
                _fmt(rpc["p50_ms"], " ms", 1),
                _fmt(rpc["success_rate"] * 100 if rpc["success_rate"] is not None else None, "%", 1),
                str(rpc["samples"]),
            ])
        print(table(rows), file=out)
    return 0
