"""The leaderboard as people read it: providers ranked, with every component of the score.

Live (this process's region) the score is exactly what the `leaderboard` strategy ranks by (passed in
as `live_score`); for another region's snapshot it is recomputed from the store with the same formulas:
rpc_score(success_rate, p50) × race_factor (see `metrics.scoring`).
"""

from __future__ import annotations

from collections.abc import Callable

from livechain.metrics.scoring import race_factors, race_score, rpc_score
from livechain.metrics.store import BenchmarkStore


def _latency(summary: dict) -> float | None:
    """p50 when the window has quantiles; the mean for retention totals (they keep sums, not sketches)."""
    return summary["p50_ms"] if summary.get("p50_ms") is not None else summary.get("mean_ms")


def _all_methods(methods: dict[str, dict]) -> dict | None:
    """One summary over every method: counts summed, p50 as the count-weighted mean of the p50s."""
    count = sum(m["count"] for m in methods.values())
    if not count:
        return None
    successes = sum(m["successes"] for m in methods.values())
    judged = [(m["success_rate"], m["count"]) for m in methods.values() if m["success_rate"] is not None]
    weighted = [(_latency(m), m["successes"]) for m in methods.values() if _latency(m) is not None and m["successes"]]
    total_weight = sum(w for _, w in weighted)
    return {
        "count": count,
        "successes": successes,
        "success_rate": round(sum(r * n for r, n in judged) / sum(n for _, n in judged), 4) if judged else None,
        "p50_ms": round(sum(p * w for p, w in weighted) / total_weight, 3) if total_weight else None,
    }


def rank(
    store: BenchmarkStore,
    providers: list[str],
    *,
    event: str = "newHeads",
    method: str | None = None,
    live_score: Callable[[str], float] | None = None,
    window: bool = True,
) -> list[dict]:
    """`window`: RPC figures from the rolling "now" window (live) or the retention totals (old snapshots)."""
    races = store.races()
    rpc = store.rpc(window=window)
    race_parts: dict[str, dict] = {}
    scores: dict[str, float] = {}
    totals: dict[str, int] = {}
    for provider in providers:
        r = races.get(provider, {}).get(event) or {"total": 0, "wins": 0, "win_rate": None, "avg_margin_ms": 0.0, "missed": 0}
        scores[provider] = race_score(r["win_rate"], r["avg_margin_ms"], r["total"])
        totals[provider] = r["total"]
        race_parts[provider] = {
            "score": round(scores[provider], 4),
            "win_rate": r["win_rate"],
            "avg_margin_ms": r["avg_margin_ms"],
            "races": r["total"],
            "wins": r["wins"],
            "missed": r["missed"],
            "delay_p50_ms": r.get("delay_p50_ms"),
            "delay_p90_ms": r.get("delay_p90_ms"),
        }
    factors = race_factors(scores, totals)
    rows = []
    for provider in providers:
        methods = rpc.get(provider, {})
        summary = methods.get(method) if method else _all_methods(methods)
        success = summary["success_rate"] if summary and summary["success_rate"] is not None else None
        p50 = _latency(summary) if summary else None
        rpc_part = {
            "score": round(rpc_score(success if success is not None else 1.0, p50 or 0.0), 4) if summary else None,
            "success_rate": success,
            "p50_ms": p50,
            "samples": summary["count"] if summary else 0,
        }
        factor = factors.get(provider, 1.0)
        if live_score is not None:
            score = live_score(provider)
        else:
            score = (rpc_part["score"] if rpc_part["score"] is not None else 1.0) * factor
        rows.append({"provider": provider, "score": round(score, 4), "race": race_parts[provider], "rpc": rpc_part,
                     "race_factor": round(factor, 4)})
    rows.sort(key=lambda row: (-row["score"], -(row["race"]["win_rate"] or 0)))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows
