"""One chain: the facade every entry point talks to.

    call(request, route, client)        one JSON-RPC request through the chain's pipeline → an Answer
    route(strategy, provider)           how calls pick providers (a strategy, or one pinned provider)
    check_batch(size)                   the chain's batch limit
    subscribe(params, sink, sid)        a client subscription on the chain's raced feeds, answered once it
                                        will deliver (a resumed one: with its missed events)
    subscribe_now(params, sink, sid)    the same, live now or refused (the library, filters)
    unsubscribe(subscription)
    snapshot(), and the read-only views in `chains.views`

Behind it: the provider pool (breakers, heads, health), the benchmark store, the strategies, the forwarder,
the request pipeline (`livechain.pipeline`: policy → limits → fixes → cache → coalesce → forward → record), the
chain's view of the response cache, its finalized head and the subscription manager. Nothing outside
`chains/` reaches them; the web edge and the library call these methods.

The chain's stall watcher (`self.stall`, `chains.stall`) follows its canonical heads and its providers' heads:
a chain or provider whose heads stopped is `stalled` in the views, /metrics, the log and the event bus.

A chain is also the read-only view its stages read (`cache.chain.ChainState`): the best head, the finalized
head, the canonical hash at a number (from the head tracker), a provider's head.

Background tasks (one supervised health loop per provider, draining of retired providers, the provider
WebSockets, the finalized head, the stall check) live in the chain's own TaskSet, supervised by the
application's `Supervisor`: a crash restarts that part only, logged, counted and published, and never touches
another chain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from livechain.cache.chain import ChainCache
from livechain.cache.store import CacheBackend
from livechain.chains.finality import Finality
from livechain.chains.stall import Stall
from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config.schema import CONSENSUS_DEFAULTS, ChainConfig, MetricsConfig
from livechain.errors import (
    InvalidParams,
    LimitExceeded,
    LivechainError,
    MethodNotFound,
    NoRoute,
    ProviderError,
    SubscriptionUnavailable,
    UnknownChain,
)
from livechain.events import EventBus
from livechain.evm.events import hex_number
from livechain.evm.fixes import Floor
from livechain.evm.integrity import check as verify_answer
from livechain.evm.methods import MethodPolicy
from livechain.failsafe import Supervisor, TaskSet
from livechain.filters import Filters
from livechain.jsonrpc.messages import Request
from livechain.jsonrpc.replies import Answer, Reply
from livechain.metrics.store import BenchmarkStore
from livechain.metrics.traffic import Traffic
from livechain.pipeline import Call, Pipeline, Route, Stage
from livechain.pipeline.cache import Cache, CacheCounts
from livechain.pipeline.coalesce import Coalesce
from livechain.pipeline.confirm import Confirm
from livechain.pipeline.consensus import Consensus
from livechain.pipeline.consistency import Consistency
from livechain.pipeline.filters import FilterStage, release
from livechain.pipeline.fixes import AlreadyKnown, BlockNumberFloor
from livechain.pipeline.limits import LogsRange
from livechain.pipeline.logs import LogsSplit
from livechain.pipeline.policy import Policy
from livechain.pipeline.record import Record
from livechain.pipeline.sessions import SessionFloor, Sessions
from livechain.pipeline.state import StateDepth
from livechain.providers.health import health_loop
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Provider
from livechain.providers.spend import summary as spend_summary
from livechain.routing.explain import header as explain_header
from livechain.routing.explain import route as explain_route
from livechain.routing.forwarder import Enough, Forwarder
from livechain.routing.scores import Scores
from livechain.routing.strategies import Strategy, make_strategies
from livechain.subscriptions.feeds import Sink
from livechain.subscriptions.manager import Subscription, SubscriptionManager

#: the chunk of a split eth_getLogs when no provider's limit is known (within every common provider's limit)
LOGS_CHUNK = 1_000


class Chain:
    def __init__(
        self,
        config: ChainConfig,
        *,
        region: str,
        metrics: MetricsConfig,
        events: EventBus,
        supervisor: Supervisor,
        clock: Clock = SYSTEM_CLOCK,
        cache_store: CacheBackend | None = None,
    ) -> None:
        """`cache_store`: the process's response cache (None: no cache)."""
        self.name = config.name
        self.config = config
        self.events = events
        self._clock = clock
        self._supervisor = supervisor
        self.store = BenchmarkStore(
            config.name,
            region=region,
            window=metrics.window,
            retention=metrics.retention,
            max_entries=metrics.max_entries,
            clock=clock,
        )
        self.pool = ProviderPool(config, store=self.store, events=events, clock=clock, on_best_head=self._best_head)
        self.traffic = Traffic(clock.monotonic)
        self.forwarder = Forwarder(self.pool, events, clock)
        #: race factors and SLO misses, refreshed off the request path (`refresh_scores`)
        self.scores = Scores(self.pool, self.store)
        self.strategies: dict[str, Strategy] = make_strategies(self.scores.factor, self.scores.misses)
        self.tasks = TaskSet(f"chain/{self.name}")
        self._health: dict[str, object] = {}
        self.subscriptions = SubscriptionManager(
            self.name, self.pool, self.store, events, self.fetch, self.tasks, supervisor,
            liveness=config.ws_liveness, window=config.race_window, query=self.query, fetch_many=self.fetch_many,
            wanted=lambda: self.filters.wants_blocks(), max_backfill=config.max_backfill_blocks,
        )
        self.subscriptions.tracker.follow(self)
        fc = config.filters
        self.filters = Filters(ttl=fc.ttl, max=fc.max, max_per_client=fc.max_per_client, max_entries=fc.max_entries,
                               clock=clock.monotonic, release=lambda f: release(f, self.unsubscribe))
        self.subscriptions.tracker.follow(self.filters)
        self.finality = Finality(self.name, config.finality_depth, lambda: self.pool.best_head, self.ask)
        self.stall = Stall(self.name, _stall_after(config), providers=lambda: self.pool.providers,
                           polled=self._polled, events=events, clock=clock.monotonic)
        # what outlives config reloads: eth_blockNumber's floor, the cache's view, requests in flight
        self._floor = Floor()
        self.cache_counts = CacheCounts()
        self.cache = ChainCache(self.name, cache_store, self, clock.monotonic) if cache_store is not None else None
        self._coalesce = Coalesce(self.cache_counts.count)
        self._record = Record(self.name, self.traffic)
        self.sessions = Sessions(config.sessions.max, config.sessions.idle, clock.monotonic)
        self._adopt(config)

    def _adopt(self, config: ChainConfig) -> None:
        """Build what depends on the config: the method policy, the pipeline, the routes."""
        self.policy = MethodPolicy(config.methods.allow, config.methods.deny)
        if config.finality_depth != self.config.finality_depth:
            self.finality.configure(config.finality_depth)
        fc = config.filters
        self.filters.configure(ttl=fc.ttl, max=fc.max, max_per_client=fc.max_per_client, max_entries=fc.max_entries)
        self.stall.configure(_stall_after(config))
        stages: list[Stage] = [
            Policy(self.name, self.policy),
            FilterStage(self.filters, self),
            LogsRange(config.max_block_range, lambda: self.pool.best_head),
            BlockNumberFloor(self._floor),  # before the cache: a hit is raised to the floor too
            AlreadyKnown(),
        ]
        if self.cache is not None and config.cache.enabled:
            stages.append(Cache(self.cache, config.cache.methods, self.cache_counts))
        if config.coalesce:
            stages.append(self._coalesce)
        consensus = {m: mode for m, mode in {**CONSENSUS_DEFAULTS, **config.consensus}.items() if mode is not False}
        integrity = config.integrity
        self.sessions.configure(config.sessions.max, config.sessions.idle)
        sessions = self.sessions if config.sessions.enabled else None
        stages += [
            LogsSplit(self),
            StateDepth(self),
            Consistency(
                self, sessions, lead=config.max_head_lead, first_non_null=frozenset(m for m, mode in consensus.items() if mode == "first_non_null"),
                verify=None if integrity.mode == "off" else partial(verify_answer, header=integrity.header_hash),
                enforce=integrity.mode == "enforce",
                quarantine=integrity.quarantine,
            ),
            Consensus(consensus, self),
        ]
        if integrity.mode != "off":
            stages.insert(-1, Confirm(self, enforce=integrity.mode == "enforce", quarantine=integrity.quarantine,
                                      per_second=integrity.confirm_per_second, clock=self._clock.monotonic))
        if sessions is not None:  # before the cache: answers from the cache count for what a client was given
            stages.insert(2, SessionFloor(sessions, self, stages[-2].methods))
        self.pipeline = Pipeline(stages, self._forward, self._record)
        self.config = config
        self._routes = {name: Route(strategy) for name, strategy in self.strategies.items()}
        self.default_route = self._routes[config.strategy]

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    @property
    def strategy(self) -> Strategy:
        return self.default_route.strategy

    def provider(self, provider_id: str) -> Provider | None:
        return self.pool.by_id.get(provider_id)

    # ------------------------------------------------------------------ requests

    def call(
        self, request: Request, route: Route | None = None, client: str | None = None, fresh: bool = False,
        owner: str | None = None,
    ) -> Awaitable[Answer]:
        """One request through the pipeline. The answer, or a `livechain.errors` error (client errors,
        routing errors, InternalError for a bug). A provider's own JSON-RPC error is an answer. `fresh`: the
        client's `Cache-Control: no-cache` (not answered from the cache; the cache is refreshed). `owner`: who
        owns the filters it creates (`Call.owner`)."""
        return self.pipeline.run(Call(request, route or self.default_route, client, fresh, owner))

    def begin(
        self, request: Request, route: Route | None = None, client: str | None = None, fresh: bool = False,
        owner: str | None = None,
    ) -> tuple[Call, Answer | None]:
        """`call` in two steps, for an edge that can write an answer at once: the stages before the forwarder,
        synchronously — (the call, its answer) when one of them answered it (a cache hit, a refusal raises),
        else (the call, None) and `finish(call)` takes it on."""
        call = Call(request, route or self.default_route, client, fresh, owner)
        return call, self.pipeline.begin(call)

    def finish(self, call: Call) -> Awaitable[Answer]:
        """The rest of a call `begin` left unanswered: the forwarder and the stages after it."""
        return self.pipeline.finish(call)

    def _forward(self, call: Call) -> Awaitable[Answer]:
        route = call.route
        return self.forwarder.forward(call.request, route.strategy, route.pinned, call.accept, call.prefer, call.check,
                                      call.own, call.trail)

    def forward_other(self, call: Call, exclude: str) -> Awaitable[Answer]:
        """`call` to any provider but `exclude` (the confirm stage: a second opinion on an empty answer)."""
        accept = call.accept
        return self.forwarder.forward(
            call.request, call.route.strategy, None,
            (lambda p: p.id != exclude) if accept is None else (lambda p: p.id != exclude and accept(p)),
            call.prefer, call.check,
        )

    def caught(self, provider: str, method: str, reason: str, quarantine: float | None) -> None:
        found = self.pool.by_id.get(provider)
        if found is not None:
            found.failed_check(method, reason, quarantine)

    def spawn(self, name: str, coro: Any) -> asyncio.Task:
        return self.tasks.spawn(f"{self.name}/{name}", coro)

    def together(self, call: Call, count: int | None, enough: Enough) -> Awaitable[tuple[list, list, int]]:
        """`call` on several providers at once (the consensus stage): `Forwarder.together`."""
        route = call.route
        return self.forwarder.together(call.request, route.strategy, count, enough, call.accept, call.prefer,
                                       call.check)

    def route(self, strategy: str | None = None, provider: str | None = None) -> Route:
        """The route of `/rpc/{strategy}/{chain}` (None: the chain's strategy) or `/rpc/provider/{id}/{chain}`."""
        if provider is not None:
            pinned = self.pool.by_id.get(provider)
            if pinned is None:
                raise UnknownChain(f"unknown provider {provider[:64]} on chain {self.name}")
            return Route(self.default_route.strategy, pinned)
        if strategy is None:
            return self.default_route
        found = self._routes.get(strategy)
        if found is None:
            raise NoRoute(f"unknown strategy {strategy[:64]}")
        return found

    def check_batch(self, size: int) -> None:
        limit = self.config.batch_limit
        if size > limit:
            raise LimitExceeded(f"batch of {size} requests exceeds this chain's limit of {limit}")

    async def ask(self, method: str, params: list) -> Reply:
        """One request of Livechain's own (backfills, the finalized head), straight to the forwarder: not client
        traffic, not cached. A provider's reply (result or its own error); raises when none answered."""
        done = await self.forwarder.forward(Request(method, params, 1), self.strategy, own=True)
        return done.value()

    async def fetch(self, method: str, params: list) -> object:
        """`ask`, for a result: raises when no provider gives one."""
        reply = await self.ask(method, params)
        if reply.error is not None:
            raise ProviderError(f"{method} gave no result", provider="")
        return reply.result

    async def fetch_many(self, method: str, params: list[list]) -> list:
        """Several requests of Livechain's own at once (a head gap's blocks): one JSON-RPC batch to the cheapest
        eligible provider that takes batches (the next one when it fails or refuses), else one request each.
        The results in order, None where one failed."""
        for provider in self.forwarder.plan(method, self.strategies["cheapest"]):
            if provider.capabilities.batch is False:
                continue
            try:
                return await provider.attempt_batch(method, params, self.config.attempt_timeout)
            except ProviderError:
                continue
        found = []
        for item in params:
            try:
                found.append(await self.fetch(method, item))
            except ProviderError:
                found.append(None)
        return found

    async def query(self, method: str, params: list) -> Any:
        """A request of Livechain's own on a client's behalf (a logs feed's missed blocks, a resumed
        subscription's missed events) through the pipeline — split, cached, block-aware like a client's —
        for a result: raises when none was given."""
        call = Call(Request(method, params, 1), self.default_route)
        call.own = True
        reply = (await self.pipeline.run(call)).value()
        if reply.error is not None:
            raise ProviderError(f"{method} gave no result", provider="")
        return reply.result

    # ------------------------------------------------------------------ what the filters stage reads

    def head(self) -> int | None:
        return self.subscriptions.tracker.last_number

    def max_range(self) -> int:
        return self.config.max_block_range

    # ------------------------------------------------------------------ subscriptions

    async def subscribe(self, params: Any, sink: Sink, sid: bytes) -> Subscription:
        """Subscribe `sink` (a client connection) to this chain's raced feed for `params` under its own id, once
        it will deliver: a provider subscription is live, or (heads, logs) the HTTP fallback can run — else
        SubscriptionUnavailable after a few seconds, never an id that delivers nothing. With `fromBlock`
        (newHeads, logs) the missed events are fetched first and held with the live ones until the caller,
        having answered the client, calls `Subscription.release()`. Raises MethodNotFound when the chain
        denies eth_subscribe, InvalidParams / LimitExceeded for bad parameters. Nothing awaits between the
        attach and the return: the caller answers the client before the first notification."""
        if self.policy.denies_subscriptions:
            raise MethodNotFound("eth_subscribe is denied on this chain")
        manager = self.subscriptions
        feed, start = manager.open(params, self.config.max_resume_blocks)
        try:
            ready = await manager.wait(feed)
        except BaseException:
            manager.discard(feed)  # only when nobody else uses it
            raise
        if not ready:
            manager.discard(feed)
            raise SubscriptionUnavailable(f"eth_subscribe {feed.kind}: no provider subscription could be made live "
                                          "(and this kind has no HTTP fallback); try again later")
        subscription = manager.attach(feed, sink, sid, start)
        resume = subscription.resume
        if resume is not None:
            try:
                await resume.fetch()
            except BaseException as exc:
                manager.unsubscribe(subscription)
                if isinstance(exc, LivechainError) and not isinstance(exc, ProviderError):
                    raise
                if isinstance(exc, Exception):
                    raise SubscriptionUnavailable(f"eth_subscribe {feed.kind}: the events since fromBlock could not "
                                                  "be read; try again") from None
                raise
            if resume.overflowed:
                manager.unsubscribe(subscription)
                raise LimitExceeded(f"eth_subscribe {feed.kind}: too many live events while resuming; try again")
        return subscription

    def subscribe_now(self, params: Any, sink: Sink, sid: bytes) -> Subscription:
        """`subscribe` without waiting: live now (a provider subscription, or the HTTP fallback), or
        SubscriptionUnavailable. No `fromBlock` (a resume needs `subscribe`)."""
        if self.policy.denies_subscriptions:
            raise MethodNotFound("eth_subscribe is denied on this chain")
        manager = self.subscriptions
        feed, start = manager.open(params, self.config.max_resume_blocks)
        if start is not None:
            manager.discard(feed)
            raise InvalidParams("fromBlock: a resumed subscription is served by eth_subscribe over a WebSocket")
        if not manager.ready(feed):
            manager.discard(feed)
            raise SubscriptionUnavailable(f"{feed.kind}: no provider subscription is live (and this kind has no "
                                          "HTTP fallback); try again later")
        return manager.attach(feed, sink, sid)

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.unsubscribe(subscription)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for provider in self.pool.providers:
            self._watch(provider)
        self.subscriptions.start()
        name = f"{self.name}/filters"
        self.tasks.spawn(name, self._supervisor.supervise(name, self._expire_filters, chain=self.name))
        name = f"{self.name}/finality"
        self.tasks.spawn(name, self._supervisor.supervise(
            name,
            lambda: self.finality.run(
                lambda: self.config.health_interval, lambda: self.cache is not None and self.config.cache.enabled
            ),
            chain=self.name,
        ))
        name = f"{self.name}/stall"
        self.tasks.spawn(name, self._supervisor.supervise(name, self.stall.run, chain=self.name))

    def _polled(self, provider: str | None) -> float | None:
        """The health interval when the heads of `provider` (None: the chain's head stream) are polled over
        HTTP, None while they are pushed by a live newHeads provider subscription (`chains.stall`)."""
        live = self.subscriptions.heads.live
        pushed = bool(live) if provider is None else provider in live
        return None if pushed else self.config.health_interval

    def _best_head(self, number: int) -> None:
        if self.cache is not None:
            self.cache.new_head(number)
        self.subscriptions.best_head_advanced(number)

    # ------------------------------------------------------------------ the head tracker's follower

    def on_block(self, header: dict, backfilled: bool) -> None:
        number = hex_number(header.get("number"))
        if number is None:
            return
        self.stall.on_block(number, backfilled)
        if self.cache is not None:
            self.cache.new_head(number)

    def on_reorg(self, fork_number: int, orphaned: list[tuple[int, str]]) -> None:
        if self.cache is not None:
            self.cache.reorg(fork_number)

    # ------------------------------------------------------------------ what stages read (cache.chain.ChainState)

    def best_head(self) -> int | None:
        return self.pool.best_head

    def finalized(self) -> int | None:
        return self.finality.current()

    def canonical_hash(self, number: int) -> str | None:
        return self.subscriptions.tracker.hash_at(number)

    def canonical_number(self, block_hash: str) -> int | None:
        return self.subscriptions.tracker.number_of(block_hash)

    def provider_head(self, provider: str) -> int | None:
        found = self.pool.by_id.get(provider)
        return found.head if found is not None else None

    def observed(self, provider: Provider, number: int) -> None:
        self.pool.observe_head(provider, number)

    def heads_known(self) -> int:
        return sum(1 for p in self.pool.providers if p.head is not None)

    # ------------------------------------------------------------------ what stages ask about providers

    def logs_plan(self, span: int) -> tuple[Callable[[Provider], bool] | None, tuple[int, Callable[[Provider], bool]] | None]:
        """For an eth_getLogs of `span` blocks (pipeline.logs): who accepts it whole (None: nobody), and the
        chunk size and providers of a split (None: no provider allows splitting)."""
        providers = self.pool.providers
        whole = None
        if any(p.capabilities.accepts_logs(span) for p in providers):
            whole = lambda p: p.capabilities.accepts_logs(span)  # noqa: E731
        limits = [p.capabilities.logs_limit for p in providers if p.capabilities.split_logs]
        if not limits:
            return whole, None
        known = [limit for limit in limits if limit is not None]
        size = min(max(known) if known else LOGS_CHUNK, span)
        return whole, (size, lambda p: p.capabilities.split_logs and p.capabilities.accepts_logs(size))

    def state_preference(self, age: int | None) -> Callable[[Provider], bool]:
        """The providers whose state reaches `age` blocks back (None: a block of unknown age) — pipeline.state."""
        return lambda p: p.capabilities.serves_state(age)

    def fold(self) -> None:
        """Fold the benchmark records of the last moments into the aggregates (the application's timer)."""
        self.store.fold()

    def expire(self) -> None:
        """Drop aggregates older than the retention period (the application's timer, once a minute)."""
        self.store.expire()

    def refresh_scores(self) -> None:
        """Recompute race scores → leaderboard factors, and who misses the SLO (timer task, not the request path)."""
        self.scores.refresh(self.config.slo)

    def _watch(self, provider: Provider) -> None:
        name = f"{self.name}/health/{provider.id}"
        self._health[provider.id] = self.tasks.spawn(
            name,
            self._supervisor.supervise(name, lambda: health_loop(self.pool, provider), chain=self.name),
        )

    def reconfigure(self, config: ChainConfig) -> None:
        """Adopt a new config for this chain without failing in-flight requests."""
        added, retired = self.pool.reconcile(config)
        self._adopt(config)
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

    async def _expire_filters(self) -> None:
        """The filters not polled for their ttl go, with what they subscribed to (checked every ttl/4, ≤ 30 s)."""
        while True:
            await asyncio.sleep(min(30.0, self.filters.ttl / 4))
            self.filters.expire()

    async def close(self) -> None:
        self.filters.close()
        self.forwarder.close()
        await self.tasks.close(timeout=5)
        await self.pool.close()

    # ------------------------------------------------------------------ reading

    def explain(self, method: str, strategy: str | None = None) -> dict:
        """`GET /api/chains/{chain}/route`: the providers a `method` request would try, in order, with the
        strategy's score components, and those left out with their reasons (`routing.explain`)."""
        return explain_route(self.pool, self.route(strategy).strategy, method, self._clock)

    def explain_header(self, call: Call, answer: Answer | None) -> str:
        """The `X-Livechain-Explain` response header of a call whose client asked (`call.trail` was set)."""
        return explain_header(explain_route(self.pool, call.route.strategy, call.request.method, self._clock),
                              call.trail or [], answer.cache if answer is not None else "bypass")

    def spend(self) -> dict:
        """Spend per provider and what the cache and coalescing saved (`providers.spend.summary`)."""
        return spend_summary(self.pool.providers, self.cache_counts.by_method)

    def snapshot(self) -> dict:
        best = self.pool.best_head
        ws = self.subscriptions.ws_stats
        stall = self.stall.state(self._clock.monotonic())
        return {
            "name": self.name,
            "chain_id": self.chain_id,
            "strategy": self.config.strategy,
            "pipeline": self.pipeline.describe(),
            "best_head": best,
            **stall.summary(),
            "providers": [{**p.snapshot(best, ws(p.id)), "stalled": stall.providers.get(p.id, False)}
                          for p in self.pool.providers],
            "subscriptions": self.subscriptions.snapshot(),
            "filters": self.filters.snapshot(),
        }


def _stall_after(config: ChainConfig) -> float | None:
    """The chain's `stall_after` in seconds, None for auto."""
    return None if config.stall_after == "auto" else config.stall_after
