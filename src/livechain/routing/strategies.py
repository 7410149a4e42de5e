"""Selection strategies: small pluggable units that order the eligible providers for one request.

Each takes the eligible providers (already filtered and in priority order) and returns the order in
which to try them; the forwarder fails over along that order. Strategies are sync and cheap (a pick with
10 providers is a few µs): they read only the providers' inline statistics.

- priority:    the eligible providers in priority order (first healthy by priority).
- round_robin: true rotation over the eligible providers, one step per request.
- fastest:     lowest recent latency (EWMA) for this method; providers with no sample yet go first, and
               EXPLORE of picks promote a random other provider so every provider keeps being measured.
- leaderboard: highest score for this method (the default):

      score = decayed(rpc_score(success, latency_ms)) · race_factor

      with the formulas of `metrics.scoring`: rpc_score ∈ (0, 1] from the EWMAs of this method's successes
      and latency ("*" = all methods when the method has fewer than MIN_SAMPLES samples; PRIOR = 1.0 while
      the provider has fewer than MIN_SAMPLES at all, so a new provider is tried until it has a record);
      decayed fades it back to PRIOR over a minute of silence (a recovered provider is not punished
      forever); race_factor = 0.5 + 0.5 · race_score / best race_score on the chain (1.0 without race data),
      from the chain's newHeads races.
- cheapest:    lowest cost for this method first (`cost` of the provider: its price per request, or units ×
               unit price; a provider without a cost is free); `reserve` providers after every other; those
               missing the chain's `slo` (p90 latency for the method, head delay) after all of them — used only
               when nothing else is eligible. Ties keep the priority order. A provider whose budget is spent is
               already out of the eligible list (or at its end: `on_exhausted: last_resort`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from math import exp
from typing import Protocol

from livechain.metrics.scoring import DECAY_SECONDS, PRIOR, decayed
from livechain.metrics.scoring import rpc_score as score_of
from livechain.providers.provider import Provider
from livechain.providers.stats import ALL

MIN_SAMPLES = 10
ORDER_TTL = 0.05  # seconds a leaderboard ranking is reused
EXPLORE = 0.05


class Strategy(Protocol):
    name: str

    def order(self, eligible: list[Provider], method: str) -> list[Provider]: ...


class Priority:
    name = "priority"

    def order(self, eligible: list[Provider], method: str) -> list[Provider]:
        return eligible


class RoundRobin:
    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def order(self, eligible: list[Provider], method: str) -> list[Provider]:
        n = len(eligible)
        if n < 2:
            return eligible
        start = self._next % n
        self._next += 1
        return eligible[start:] + eligible[:start]


class Fastest:
    name = "fastest"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._random = rng or random.Random()

    @staticmethod
    def _latency(provider: Provider, method: str) -> float:
        entry = provider.stats.entries.get(method)
        if entry is None or entry.samples == 0:
            return -1.0  # never measured for this method: measure it first
        return entry.latency_ms

    def order(self, eligible: list[Provider], method: str) -> list[Provider]:
        if len(eligible) < 2:
            return eligible
        latency = self._latency
        ranked = sorted(eligible, key=lambda p: latency(p, method))
        if self._random.random() < EXPLORE:
            i = self._random.randrange(1, len(ranked))
            ranked.insert(0, ranked.pop(i))
        return ranked


def rpc_score(provider: Provider, method: str, now: float | None = None) -> float:
    """`now`: the statistics' clock, when the caller scores several providers at one instant."""
    stats = provider.stats
    entries = stats.entries
    entry = entries.get(method)
    if entry is None or entry.samples < MIN_SAMPLES:
        entry = entries.get(ALL)
        if entry is None or entry.samples < MIN_SAMPLES:
            return PRIOR
    return decayed(score_of(entry.success, entry.latency_ms), stats.freshness(entry, now))


class Leaderboard:
    name = "leaderboard"

    def __init__(self, race_factor: Callable[[str], float] | None = None) -> None:
        #: provider id → multiplier in [0.5, 1.0] from the chain's race scores (1.0 without race data)
        self.race_factor = race_factor
        self._cache: dict[str, tuple[list[Provider], float, list[Provider]]] = {}

    def score(self, provider: Provider, method: str) -> float:
        score = rpc_score(provider, method)
        if self.race_factor is not None:
            score *= self.race_factor(provider.id)
        return score

    def order(self, eligible: list[Provider], method: str) -> list[Provider]:
        """Highest `score()` first; ties keep the eligible (priority) order. Same ranking as sorting by
        `-self.score(p, method)`, with the clock read once and no per-provider call chain (a pick is on
        every request's path). Scores move slowly: a ranking is reused for ORDER_TTL for the same eligible
        list (the selection cache hands out the same list object until something changes)."""
        n = len(eligible)
        if n < 2:
            return eligible
        now = eligible[0].stats.now()
        cached = self._cache.get(method)
        if cached is not None and cached[0] is eligible and cached[1] > now:
            return cached[2]
        ranked = self._rank(eligible, method, now)
        if len(self._cache) >= 512:
            self._cache.clear()
        self._cache[method] = (eligible, now + ORDER_TTL, ranked)
        return ranked

    def _rank(self, eligible: list[Provider], method: str, now: float) -> list[Provider]:
        n = len(eligible)
        race_factor = self.race_factor
        keys = []
        for p in eligible:
            # rpc_score(p, method, now), inlined: four calls fewer per provider (tests/unit/test_strategies.py
            # proves the result equals score() for every statistic shape)
            entries = p.stats.entries
            entry = entries.get(method)
            if entry is None or entry.samples < MIN_SAMPLES:
                entry = entries.get(ALL)
            if entry is None or entry.samples < MIN_SAMPLES:
                score = PRIOR
            else:
                success = entry.success
                measured = success * success / (1.0 + entry.latency_ms / 100.0)
                f = exp(-(now - entry.last_at) / DECAY_SECONDS)
                score = f * measured + (1.0 - f) * PRIOR
            if race_factor is not None:
                score *= race_factor(p.id)
            keys.append(-score)
        return [eligible[i] for i in sorted(range(n), key=keys.__getitem__)]


class Cheapest:
    name = "cheapest"

    def __init__(self, misses_slo: Callable[[str, str], bool] | None = None) -> None:
        """`misses_slo(provider id, method)`: does it miss the chain's service level (measured off the request
        path, by the chain's timer)."""
        self.misses_slo = misses_slo
        self._cache: dict[str, tuple[list[Provider], float, list[Provider]]] = {}

    def key(self, provider: Provider, method: str) -> tuple[bool, bool, float]:
        """(misses the SLO, is a reserve, price of one request of `method`): lower goes first."""
        misses = self.misses_slo is not None and self.misses_slo(provider.id, method)
        return misses, provider.tier == "reserve", provider.spend.price(method)

    def order(self, eligible: list[Provider], method: str) -> list[Provider]:
        if len(eligible) < 2:
            return eligible
        now = eligible[0].stats.now()
        cached = self._cache.get(method)
        if cached is not None and cached[0] is eligible and cached[1] > now:
            return cached[2]
        ranked = sorted(eligible, key=lambda p: self.key(p, method))
        if len(self._cache) >= 512:
            self._cache.clear()
        self._cache[method] = (eligible, now + ORDER_TTL, ranked)
        return ranked


def make_strategies(
    race_factor: Callable[[str], float] | None = None, misses_slo: Callable[[str, str], bool] | None = None
) -> dict[str, Strategy]:
    """One instance of each strategy for a chain; `race_factor` feeds the leaderboard, `misses_slo` cheapest."""
    return {
        "priority": Priority(),
        "round_robin": RoundRobin(),
        "fastest": Fastest(),
        "leaderboard": Leaderboard(race_factor),
        "cheapest": Cheapest(misses_slo),
    }
