"""`GET /metrics`: Prometheus text, built at scrape time from the chains' stores and snapshots.

Nothing here runs on the request path: the request path only appends to the stores; this collector
reads their cumulative counters when Prometheus scrapes. Every series carries `region`; label values are
chain names, provider ids, method names and outcome classes — never URLs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from livechain.chains.registry import ChainRegistry
from livechain.events import EventBus
from livechain.failsafe.supervise import restarts
from livechain.metrics.store import PROM_BUCKETS_MS

_BREAKER = {"closed": 0, "half_open": 1, "open": 2}


class LivechainCollector:
    def __init__(self, registry: ChainRegistry, events: EventBus, region: str) -> None:
        self.registry = registry
        self.events = events
        self.region = region

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
        for chain in self.registry:
            store = chain.store
            store.fold()
            for (provider, method), hist in list(store.prom.items()):
                cumulative, running = [], 0
                for bound, n in zip((*map(str, PROM_BUCKETS_MS), "+Inf"), hist.buckets, strict=True):
                    running += n
                    cumulative.append((bound, running))
                latency.add_metric([region, chain.name, provider, method], cumulative, hist.sum)
            for (provider, method, outcome), n in list(store.rpc_counts.items()):
                requests.add_metric([region, chain.name, provider, method, outcome], n)
            for (provider, event), (total, won, margin_sum) in list(store.race_counts.items()):
                races.add_metric([region, chain.name, provider, event], total)
                wins.add_metric([region, chain.name, provider, event], won)
                margin.add_metric([region, chain.name, provider, event], margin_sum)
            for (provider, event), n in list(store.missed.items()):
                missed.add_metric([region, chain.name, provider, event], n)
            best = chain.pool.best_head
            clients: dict[str, int] = {}
            for feed in chain.subscriptions.feeds.values():
                clients[feed.kind] = clients.get(feed.kind, 0) + len(feed.clients)
            for kind, n in clients.items():
                feeds.add_metric([region, chain.name, kind], n)
            for p in chain.pool.providers:
                if p.ws is not None:
                    ws_up.add_metric([region, chain.name, p.id], 1 if p.ws.connected else 0)
                for transport, b in p.breakers().items():
                    breaker.add_metric([region, chain.name, p.id, transport], _BREAKER[b.state.value])
                if p.head is not None:
                    head.add_metric([region, chain.name, p.id], p.head)
                    if best is not None:
                        lag.add_metric([region, chain.name, p.id], best - p.head)
        restart = CounterMetricFamily("livechain_task_restarts", "Supervised task restarts", labels=["region", "task"])
        for task, n in list(restarts.items()):
            restart.add_metric([region, task], n)
        events = CounterMetricFamily("livechain_events", "Events published", labels=["region", "kind"])
        for kind, n in list(self.events.counts.items()):
            events.add_metric([region, kind], n)
        yield from (latency, requests, breaker, head, lag, ws_up, feeds, races, wins, margin, missed, restart, events)


class MetricsEndpoint:
    def __init__(self, registry: ChainRegistry, events: EventBus, region: str) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(LivechainCollector(registry, events, region))

    def render(self) -> bytes:
        return generate_latest(self._registry)
