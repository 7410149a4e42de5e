"""What the chain's timer computes for routing, off the request path: the leaderboard's race factors (from the
newHeads races) and which providers miss the chain's service level (`slo`: p90 latency per method, p90 head
delay) — `cheapest` orders those last. Strategies read the results through `factor` and `misses`."""

from __future__ import annotations

from livechain.config.costs import SloConfig
from livechain.metrics.scoring import race_factors, race_score
from livechain.metrics.store import BenchmarkStore
from livechain.providers.pool import ProviderPool

#: calls of a method a provider must have in the window before its p90 latency is judged against the SLO
SLO_SAMPLES = 5


class Scores:
    def __init__(self, pool: ProviderPool, store: BenchmarkStore) -> None:
        self._pool = pool
        self._store = store
        #: provider id → leaderboard multiplier from newHeads race scores
        self.race_factors: dict[str, float] = {}
        #: (provider id, method) missing the latency SLO; provider ids missing the head-delay SLO
        self.slo_misses: set[tuple[str, str]] = set()
        self.slo_stale: set[str] = set()

    def factor(self, provider_id: str) -> float:
        return self.race_factors.get(provider_id, 1.0)

    def misses(self, provider_id: str, method: str) -> bool:
        return provider_id in self.slo_stale or (provider_id, method) in self.slo_misses

    def refresh(self, slo: SloConfig) -> None:
        races = self._store.races()
        scores: dict[str, float] = {}
        totals: dict[str, int] = {}
        for provider in self._pool.providers:
            heads = races.get(provider.id, {}).get("newHeads")
            if heads:
                scores[provider.id] = race_score(heads["win_rate"], heads["avg_margin_ms"], heads["total"])
                totals[provider.id] = heads["total"]
        self.race_factors = race_factors(scores, totals)
        misses: set[tuple[str, str]] = set()
        stale: set[str] = set()
        if slo.latency_p90_ms is not None:
            for pid, methods in self._store.rpc().items():
                for method, summary in methods.items():
                    p90 = summary.get("p90_ms")
                    if p90 is not None and summary["count"] >= SLO_SAMPLES and p90 > slo.latency_p90_ms:
                        misses.add((pid, method))
        if slo.head_delay_p90_ms is not None:
            for pid, kinds in races.items():
                delay = (kinds.get("newHeads") or {}).get("delay_p90_ms")
                if delay is not None and delay > slo.head_delay_p90_ms:
                    stale.add(pid)
        if misses != self.slo_misses or stale != self.slo_stale:
            self.slo_misses, self.slo_stale = misses, stale
            self._pool.changed()
