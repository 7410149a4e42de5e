"""`GET /metrics`: Prometheus text, built at scrape time from `chains.views.samples()`.

Nothing here runs on the request path: the request path only appends to the stores; this collector reads
their cumulative counters when Prometheus scrapes. Every series carries `region`; label values are chain
names, provider ids, method names and outcome classes — never URLs.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from livechain.cache.store import MemoryStore
from livechain.chains import views
from livechain.chains.registry import ChainRegistry
from livechain.events import EventBus

_BREAKER = {"closed": 0, "half_open": 1, "open": 2}


class LivechainCollector:
    def __init__(
        self, registry: ChainRegistry, events: EventBus, region: str, restarts: Mapping[str, int],
        cache: MemoryStore | None = None,
    ) -> None:
        self.registry = registry
        self.events = events
        self.region = region
        self.restarts = restarts
        self.cache = cache

    def collect(self):
        region = self.region
        latency = HistogramMetricFamily(
            "livechain_rpc_latency_ms", "Attempt latency of successful attempts (ms)",
            labels=["region", "chain", "provider", "method"],
        )
        requests = CounterMetricFamily(
            "livechain_rpc_attempts", "Attempts by outcome class", labels=["region", "chain", "provider", "method", "outcome"]
        )
        breaker = GaugeMetricFamily(
            "livechain_breaker_state", "Circuit breaker state (0 closed, 1 half_open, 2 open)",
            labels=["region", "chain", "provider", "transport"],
        )
        head = GaugeMetricFamily("livechain_provider_head", "Latest block seen from the provider", labels=["region", "chain", "provider"])
        lag = GaugeMetricFamily("livechain_provider_head_lag", "Blocks behind the best head", labels=["region", "chain", "provider"])
        races = CounterMetricFamily("livechain_races", "Events raced", labels=["region", "chain", "provider", "event"])
        wins = CounterMetricFamily("livechain_race_wins", "Races won (first arrival)", labels=["region", "chain", "provider", "event"])
        margin = CounterMetricFamily(
            "livechain_race_loss_margin_ms", "Sum of loss margins (ms)", labels=["region", "chain", "provider", "event"]
        )
        ws_up = GaugeMetricFamily(
            "livechain_provider_ws_connected", "Provider WebSocket connected and subscribed (1) or not (0)",
            labels=["region", "chain", "provider"],
        )
        feeds = GaugeMetricFamily("livechain_subscription_clients", "Client subscriptions by kind",
                                  labels=["region", "chain", "kind"])
        missed = CounterMetricFamily(
            "livechain_race_missed", "Events the provider never delivered while others did",
            labels=["region", "chain", "provider", "event"],
        )
        cache = CounterMetricFamily(
            "livechain_cache_requests", "Requests by what the cache did (hit, miss, coalesced, bypass) and answers kept",
            labels=["region", "chain", "method", "result"],
        )
        delay = GaugeMetricFamily(
            "livechain_race_delay_ms", "How far behind the first arrival the provider delivers events, wins as 0 "
            "(quantiles over the rolling window)", labels=["region", "chain", "provider", "event", "quantile"],
        )
        integrity = CounterMetricFamily(
            "livechain_integrity_failures", "Provider answers that failed an integrity check",
            labels=["region", "chain", "provider", "method"],
        )
        disagreements = CounterMetricFamily(
            "livechain_quorum_disagreements", "Quorum votes a provider lost", labels=["region", "chain", "provider", "method"],
        )
        chain_stalled = GaugeMetricFamily(
            "livechain_chain_stalled", "No new canonical head for the chain's stall_after (1) or heads flowing (0)",
            labels=["region", "chain"],
        )
        provider_stalled = GaugeMetricFamily(
            "livechain_provider_stalled", "The provider's head has not changed for its stall threshold (1) or it has (0)",
            labels=["region", "chain", "provider"],
        )
        block_time = GaugeMetricFamily(
            "livechain_chain_block_time_seconds", "Observed block time (median of recent head intervals)",
            labels=["region", "chain"],
        )
        stall_after = GaugeMetricFamily(
            "livechain_chain_stall_after_seconds", "Silence after which the chain is stalled (configured or auto)",
            labels=["region", "chain"],
        )
        chain_stalls = CounterMetricFamily(
            "livechain_chain_stalls", "Times the chain became stalled (ok → stalled)", labels=["region", "chain"],
        )
        provider_stalls = CounterMetricFamily(
            "livechain_provider_stalls", "Times the provider became stalled (ok → stalled)",
            labels=["region", "chain", "provider"],
        )
        for chain in self.registry:
            s = views.samples(chain)
            name = s.chain
            chain_stalled.add_metric([region, name], 1 if s.stalled else 0)
            stall_after.add_metric([region, name], s.stall_after)
            chain_stalls.add_metric([region, name], s.chain_stalls)
            if s.block_time is not None:
                block_time.add_metric([region, name], s.block_time)
            for provider, method, cumulative, total in s.latency:
                latency.add_metric([region, name, provider, method], cumulative, total)
            for provider, method, outcome, n in s.attempts:
                requests.add_metric([region, name, provider, method, outcome], n)
            for provider, event, total, won, margin_sum in s.races:
                races.add_metric([region, name, provider, event], total)
                wins.add_metric([region, name, provider, event], won)
                margin.add_metric([region, name, provider, event], margin_sum)
            for provider, event, n in s.missed:
                missed.add_metric([region, name, provider, event], n)
            for provider, event, p50, p90 in s.head_delay:
                for quantile, value in (("0.5", p50), ("0.9", p90)):
                    if value is not None:
                        delay.add_metric([region, name, provider, event, quantile], value)
            for kind, n in s.clients.items():
                feeds.add_metric([region, name, kind], n)
            for method, counts in s.cache.items():
                for what, n in counts.items():
                    cache.add_metric([region, name, method, what], n)
            for p in s.providers:
                if p.ws_connected is not None:
                    ws_up.add_metric([region, name, p.id], 1 if p.ws_connected else 0)
                provider_stalled.add_metric([region, name, p.id], 1 if p.stalled else 0)
                provider_stalls.add_metric([region, name, p.id], s.provider_stalls.get(p.id, 0))
                for transport, state in p.breakers.items():
                    breaker.add_metric([region, name, p.id, transport], _BREAKER[state])
                if p.head is not None:
                    head.add_metric([region, name, p.id], p.head)
                if p.lag is not None:
                    lag.add_metric([region, name, p.id], p.lag)
                for method, n in p.integrity_failures.items():
                    integrity.add_metric([region, name, p.id, method], n)
                for method, n in p.disagreements.items():
                    disagreements.add_metric([region, name, p.id, method], n)
        spend = CounterMetricFamily(
            "livechain_provider_spend", "What was sent to the provider (requests, units, money), client traffic and "
            "Livechain's own (health checks, backfills, probes)", labels=["region", "chain", "provider", "traffic", "unit"],
        )
        budget = GaugeMetricFamily("livechain_provider_budget_left", "What is left of the provider's budget (its cost "
                                   "unit)", labels=["region", "chain", "provider", "period"])
        saved = CounterMetricFamily("livechain_cache_saved", "Upstream requests the cache and coalescing saved, "
                                    "valued at the cheapest provider's price", labels=["region", "chain", "unit"])
        for chain in self.registry:
            figures = chain.spend()
            for pid, sp in figures["providers"].items():
                for traffic in ("client", "own"):
                    for unit, value in sp["total"][traffic].items():
                        spend.add_metric([region, chain.name, pid, traffic, unit], value)
                for period, left in sp["budget_left"].items():
                    if left is not None:
                        budget.add_metric([region, chain.name, pid, period], left)
            for unit, value in figures["saved"].items():
                saved.add_metric([region, chain.name, unit], value)
        yield from (spend, budget, saved)
        restart = CounterMetricFamily("livechain_task_restarts", "Supervised task restarts", labels=["region", "task"])
        for task, n in list(self.restarts.items()):
            restart.add_metric([region, task], n)
        events = CounterMetricFamily("livechain_events", "Events published", labels=["region", "kind"])
        for kind, n in list(self.events.counts.items()):
            events.add_metric([region, kind], n)
        yield from (latency, requests, breaker, head, lag, ws_up, feeds, races, wins, margin, missed, delay, integrity,
                    disagreements, cache, chain_stalled, provider_stalled, block_time, stall_after, chain_stalls,
                    provider_stalls, restart, events)
        if self.cache is not None:
            store = self.cache
            yield _gauge("livechain_cache_bytes", "Bytes held by the response cache", region, store.bytes)
            yield _gauge("livechain_cache_max_bytes", "The response cache's bound", region, store.max_bytes)
            yield _gauge("livechain_cache_entries", "Entries in the response cache", region, len(store))
            evictions = CounterMetricFamily("livechain_cache_evictions", "Entries evicted for space", labels=["region"])
            evictions.add_metric([region], store.evictions)
            yield evictions


def _gauge(name: str, documentation: str, region: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["region"])
    gauge.add_metric([region], value)
    return gauge


class MetricsEndpoint:
    def __init__(
        self, registry: ChainRegistry, events: EventBus, region: str, restarts: Mapping[str, int],
        cache: MemoryStore | None = None,
    ) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(LivechainCollector(registry, events, region, restarts, cache))

    def render(self) -> bytes:
        return generate_latest(self._registry)
