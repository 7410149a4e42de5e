"""Scores. Each formula is small, documented and tested; routing reads their results, never recomputes them.

Race score (the seed's formula), per (provider, event type):

    race_score = win_rate × 1 / (1 + avg_margin_ms / 100) × log10(max(total, 1))

- win_rate: share of the events this provider delivered first;
- avg_margin_ms: how far behind the winner it was, on average, when it lost;
- log10(total): confidence — 10 races count 1, 100 count 2; a provider with one lucky race scores 0.

RPC score (leaderboard before/alongside races), per (provider, method), in (0, 1]:

    rpc_score = success_rate² × 1 / (1 + latency_ms / 100)

and, for routing, faded back to the optimistic prior while nobody measures the provider:

    decayed   = f · rpc_score + (1 − f) · PRIOR,   f = exp(−silence / DECAY_SECONDS)

Documented in the README and used by `routing.strategies.Leaderboard` (which keeps one inlined copy of
rpc_score + decayed in its ranking loop for speed; `tests/unit/test_strategies.py` proves the copy agrees).
"""

from __future__ import annotations

import math

#: races needed before a provider's race score is trusted by routing
MIN_RACES = 20


def race_score(win_rate: float | None, avg_margin_ms: float, total: int) -> float:
    if not win_rate or total <= 0:
        return 0.0
    return win_rate * (1.0 / (1.0 + avg_margin_ms / 100.0)) * math.log10(max(total, 1))


#: the score of a provider with no record: optimistic, so a new or long-silent provider gets tried
PRIOR = 1.0
#: how fast an unused statistic fades back to PRIOR (seconds): a provider that recovers is not punished
#: forever for failures nobody has re-measured
DECAY_SECONDS = 60.0


def rpc_score(success_rate: float, latency_ms: float) -> float:
    return success_rate * success_rate / (1.0 + latency_ms / 100.0)


def freshness(silence_s: float) -> float:
    """1.0 for a statistic measured just now, fading to 0 over DECAY_SECONDS of silence."""
    return math.exp(-silence_s / DECAY_SECONDS)


def decayed(score: float, fresh: float) -> float:
    """`score` faded towards PRIOR by `fresh` (from freshness())."""
    return fresh * score + (1.0 - fresh) * PRIOR


def race_factors(scores: dict[str, float], totals: dict[str, int]) -> dict[str, float]:
    """Routing multipliers in [0.5, 1.0] from race scores: 0.5 + 0.5 × score / best score. Providers with
    fewer than MIN_RACES races (or when nobody has a positive score) get 1.0 — no evidence, no penalty."""
    trusted = {p: s for p, s in scores.items() if totals.get(p, 0) >= MIN_RACES}
    best = max(trusted.values(), default=0.0)
    if best <= 0:
        return {p: 1.0 for p in scores}
    return {p: (0.5 + 0.5 * trusted[p] / best) if p in trusted else 1.0 for p in scores}
