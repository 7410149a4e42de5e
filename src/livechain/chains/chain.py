"""One chain: its providers, benchmark store, strategies, forwarder and background work.

`Chain` is the facade the web edge talks to. Its background tasks (one supervised health loop per
provider, draining of retired providers) live in its own TaskSet: a crash inside them restarts that part
only, logged and counted, and never touches another chain.
"""

from __future__ import annotations

from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config.schema import ChainConfig, MetricsConfig
from livechain.errors import ProviderError
from livechain.events import EventBus
from livechain.evm.methods import MethodPolicy
from livechain.failsafe import TaskSet, supervise
from livechain.jsonrpc.messages import Request
from livechain.metrics.scoring import race_factors, race_score
from livechain.metrics.store import BenchmarkStore
from livechain.metrics.traffic import Traffic
from livechain.providers.health import health_loop
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Provider
from livechain.routing.forwarder import Forwarder
from livechain.routing.strategies import STRATEGIES, Leaderboard, Strategy
from livechain.subscriptions.manager import SubscriptionManager


class Chain:
    def __init__(
        self,
        config: ChainConfig,
        *,
        region: str,
        metrics: MetricsConfig,
        events: EventBus,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = config.name
        self.config = config
        self.events = events
        self._clock = clock
        self.store = BenchmarkStore(
            config.name,
            region=region,
            window=metrics.window,
            retention=metrics.retention,
            max_entries=metrics.max_entries,
            clock=clock,
        )
        self.pool = ProviderPool(config, store=self.store, events=events, clock=clock)
        self.traffic = Traffic(clock.monotonic)
        self.forwarder = Forwarder(self.pool, events, clock)
        self.strategies: dict[str, Strategy] = {name: make() for name, make in STRATEGIES.items()}
        self.policy = MethodPolicy(config.methods.allow, config.methods.deny)
        self.tasks = TaskSet(f"chain/{self.name}")
        self._health: dict[str, object] = {}
        self.subscriptions = SubscriptionManager(
            self.name, self.pool, self.store, events, self.fetch, self.tasks,
            liveness=config.ws_liveness, window=config.race_window,
        )
        #: provider id → leaderboard multiplier from newHeads race scores (refreshed off the request path)
        self.race_factors: dict[str, float] = {}
        leaderboard = self.strategies["leaderboard"]
        assert isinstance(leaderboard, Leaderboard)
        leaderboard.race_factor = lambda pid: self.race_factors.get(pid, 1.0)

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    @property
    def strategy(self) -> Strategy:
        return self.strategies[self.config.strategy]

    def provider(self, provider_id: str) -> Provider | None:
        return self.pool.by_id.get(provider_id)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for provider in self.pool.providers:
            self._watch(provider)
        self.subscriptions.start()

    async def fetch(self, method: str, params: list) -> object:
        """One request through this chain's own routing (used for backfills). Raises when no provider
        gives a result."""
        done = await self.forwarder.forward(Request(method, params, 1), self.strategy)
        reply = done.reply
        if reply is None or reply.error is not None:
            raise ProviderError(f"{method} gave no result", provider=done.provider)
        return reply.result

    def refresh_scores(self) -> None:
        """Recompute race scores → leaderboard factors (timer task, not the request path)."""
        races = self.store.races()
        scores: dict[str, float] = {}
        totals: dict[str, int] = {}
        for provider in self.pool.providers:
            heads = races.get(provider.id, {}).get("newHeads")
            if heads:
                scores[provider.id] = race_score(heads["win_rate"], heads["avg_margin_ms"], heads["total"])
                totals[provider.id] = heads["total"]
        self.race_factors = race_factors(scores, totals)

    def _watch(self, provider: Provider) -> None:
        name = f"{self.name}/health/{provider.id}"
        self._health[provider.id] = self.tasks.spawn(
            name,
            supervise(name, lambda: health_loop(self.pool, provider), on_crash=self._crashed),
        )

    def _crashed(self, task: str, exc: BaseException, count: int) -> None:
        self.events.publish("restart", chain=self.name, task=task, restarts=count, error=type(exc).__name__)

    def reconfigure(self, config: ChainConfig) -> None:
        """Adopt a new config for this chain without failing in-flight requests."""
        self.config = config
        self.policy = MethodPolicy(config.methods.allow, config.methods.deny)
        added, retired = self.pool.reconcile(config)
        for provider in retired:
            self.subscriptions.remove_provider(provider)
            task = self._health.pop(provider.id, None)
            if task is not None:
                task.cancel()  # type: ignore[attr-defined]
            self.tasks.spawn(f"{self.name}/drain/{provider.id}", ProviderPool.drain(provider, config.deadline + 1))
        for provider in added:
            self._watch(provider)
            self.subscriptions.add_provider(provider)
        if added or retired:
            self.events.publish(
                "providers_changed", chain=self.name,
                added=[p.id for p in added], removed=[p.id for p in retired],
            )

    async def close(self) -> None:
        self.forwarder.close()
        await self.tasks.close(timeout=5)
        await self.pool.close()

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict:
        best = self.pool.best_head
        return {
            "name": self.name,
            "chain_id": self.chain_id,
            "strategy": self.config.strategy,
            "best_head": best,
            "providers": [p.snapshot(best) for p in self.pool.providers],
            "subscriptions": self.subscriptions.snapshot(),
        }
