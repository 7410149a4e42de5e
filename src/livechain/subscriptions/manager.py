"""The subscriptions of one chain: one WebSocket per provider, one feed per distinct subscription.

- Every provider with a `ws_url` gets one supervised `UpstreamWs` (reconnect with backoff + jitter,
  liveness deadline). After each (re)connect, every feed is (re)subscribed on it.
- Identical client subscriptions share one feed and thus one provider subscription per provider
  (refcounted by the feed's clients; unsubscribed upstream when the last client leaves).
- The chain's newHeads feed is permanent: it races heads on every provider even with no client, which keeps
  race scores, per-provider heads (lag) and the canonical head stream alive.
- Notifications from a provider that serves the wrong chain id are ignored.
- When no provider WebSocket is delivering heads (none configured, or all down), the head stream is fed by
  the HTTP health checks instead: each new best head is fetched with eth_getBlockByNumber and goes through
  the same tracker (gap backfill included), so newHeads subscribers never silently stop.

The manager is step 2 of a notification's way (see `livechain.subscriptions`): `_on_notification` maps
(provider, provider subscription id) to its feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from livechain.errors import LimitExceeded, LivechainError, SubscriptionUnavailable
from livechain.events import EventBus
from livechain.evm.events import LOGS, NEW_HEADS, header_of, hex_number
from livechain.failsafe import Backoff, Supervisor, TaskSet
from livechain.metrics.store import BenchmarkStore
from livechain.providers.pool import ProviderPool
from livechain.providers.provider import Provider
from livechain.subscriptions.feeds import Feed, Fetch, HeadsFeed, LogsFeed, Sink
from livechain.subscriptions.heads import MAX_GAP, FetchMany, HeadTracker
from livechain.subscriptions.params import canonical
from livechain.subscriptions.resume import Resume, split_resume
from livechain.transport.ws import UpstreamWs

log = logging.getLogger("livechain.subscriptions")

SUBSCRIBE_TIMEOUT = 5.0
#: how long a head the providers reported may be missing from the WS head stream before it is fetched
LATE_HEAD = 1.0
POLL_READY = 0.25  # how often a waiting subscribe looks again whether a provider answers over HTTP
MAX_FEEDS = 10_000


class Subscription:
    """One client subscription: which feed, which client sink, which id the client knows it by; `resume` while
    a resumed subscription's missed events are being fetched (`release()` hands over to the client's sink)."""

    __slots__ = ("feed", "resume", "sid", "sink")

    def __init__(self, feed: Feed, sink: Sink, sid: bytes, resume: Resume | None = None) -> None:
        self.feed = feed
        self.sink = sink
        self.sid = sid
        self.resume = resume

    def release(self) -> None:
        """After the client was answered: a resumed subscription's missed events, then the live stream."""
        resume, self.resume = self.resume, None
        if resume is not None and self.sink is resume:
            self.sink = resume.release()

    @property
    def kind(self) -> str:
        return self.feed.kind


class SubscriptionManager:
    def __init__(
        self,
        chain: str,
        pool: ProviderPool,
        store: BenchmarkStore,
        events: EventBus,
        fetch: Fetch,
        tasks: TaskSet,
        supervisor: Supervisor,
        *,
        liveness: float = 10.0,
        window: float = 30.0,
        query: Fetch | None = None,
        fetch_many: FetchMany | None = None,
        wanted: Callable[[], bool] | None = None,
        max_backfill: int = MAX_GAP,
    ) -> None:
        """`fetch`: Livechain's own requests straight to a provider (the head stream's backfill); `query`: its
        requests on a client's behalf through the chain's pipeline (a logs feed's missed blocks, a resumed
        subscription's missed events; `fetch` when None). `fetch_many`, `wanted`, `max_backfill`: the head
        stream's batched gap backfill, whether anyone needs every block, and the longest gap backfilled (see
        `HeadTracker`)."""
        self.chain = chain
        self.pool = pool
        self.store = store
        self.events = events
        self._fetch = fetch
        self._query = query or fetch
        self.tasks = tasks
        self._supervisor = supervisor
        self.liveness = liveness
        self.window = window
        self.upstreams: dict[str, UpstreamWs] = {}
        self._runners: dict[str, asyncio.Task] = {}
        self.feeds: dict[tuple, Feed] = {}
        self._routes: dict[tuple[str, str], Feed] = {}  # (provider id, provider's subscription id) → feed
        self._verified: set[str] = set()  # providers whose current WebSocket answered the right eth_chainId
        self.tracker = HeadTracker(
            chain, fetch, spawn=tasks.spawn, fetch_many=fetch_many,
            wanted=lambda: bool(self.heads.clients) or (wanted is not None and wanted()),
            max_backfill=max_backfill, on_skip=self._skipped,
        )
        self.heads = HeadsFeed(store, self.tracker, window, on_race=self._race_event)
        self.feeds[self.heads.key] = self.heads
        self._polling: asyncio.Task | None = None
        self._late: asyncio.Task | None = None

    # ------------------------------------------------------------------ provider connections

    def start(self) -> None:
        for provider in self.pool.providers:
            self.add_provider(provider)

    def add_provider(self, provider: Provider) -> None:
        if not provider.has_ws or provider.id in self.upstreams:
            return
        ws = UpstreamWs(
            provider.config.ws_url,
            name=provider.id,
            on_notification=lambda sid, result, t_ns, p=provider: self._on_notification(p, sid, result, t_ns),
            on_connect=lambda p=provider: self._connected(p),
            on_disconnect=lambda reason, p=provider: self._disconnected(p, reason),
            liveness=self.liveness,
            ping_interval=max(0.5, self.liveness / 4),
            headers=provider.config.headers,
            backoff=Backoff(base=0.2, cap=10.0),  # a provider that is down is retried at least every ~10 s
        )
        self.upstreams[provider.id] = ws
        name = f"{self.chain}/ws/{provider.id}"
        self._runners[provider.id] = self.tasks.spawn(
            name, self._supervisor.supervise(name, ws.run, chain=self.chain, provider=provider.id)
        )

    def remove_provider(self, provider: Provider) -> None:
        task = self._runners.pop(provider.id, None)
        if task is not None:
            task.cancel()
        self.upstreams.pop(provider.id, None)
        self._disconnected(provider, "removed")

    def ws_stats(self, provider_id: str) -> dict | None:
        """The provider's upstream WebSocket counters (None: it has no ws_url)."""
        ws = self.upstreams.get(provider_id)
        return ws.stats if ws is not None else None

    def ws_connected(self, provider_id: str) -> bool | None:
        ws = self.upstreams.get(provider_id)
        return ws.connected if ws is not None else None

    async def _connected(self, provider: Provider) -> None:
        """A (re)connected provider WebSocket: check its chain id over this very socket (its HTTP endpoint
        being right proves nothing about its WebSocket), then subscribe every feed on it."""
        ws = self.upstreams.get(provider.id)
        if ws is None:
            return
        reply = await ws.request("eth_chainId", [], timeout=SUBSCRIBE_TIMEOUT)
        got = hex_number(reply.result) if reply.error is None else None
        if got != self.pool.config.chain_id:
            self._verified.discard(provider.id)
            log.error(
                "provider WebSocket serves another chain: not subscribed",
                extra={"chain": self.chain, "provider": provider.id, "expected": self.pool.config.chain_id, "got": got},
            )
            self.events.publish("chain_id_mismatch", chain=self.chain, provider=provider.id, transport="ws",
                                expected=self.pool.config.chain_id, got=got)
            return
        self._verified.add(provider.id)
        self.events.publish("ws_connect", chain=self.chain, provider=provider.id)
        for feed in list(self.feeds.values()):
            await self._subscribe_on(provider, feed)

    def _disconnected(self, provider: Provider, reason: str) -> None:
        self._verified.discard(provider.id)
        for feed in self.feeds.values():
            upstream_id = feed.upstream.get(provider.id)
            if upstream_id is not None:
                self._routes.pop((provider.id, upstream_id), None)
                feed.unbind(provider.id)
        self.events.publish("ws_disconnect", chain=self.chain, provider=provider.id, reason=reason)

    async def _subscribe_on(self, provider: Provider, feed: Feed) -> None:
        ws = self.upstreams.get(provider.id)
        if ws is None or not ws.is_open or provider.id in feed.upstream or provider.id not in self._verified:
            return
        try:
            upstream_id = await ws.subscribe(feed.params, timeout=SUBSCRIBE_TIMEOUT)
        except LivechainError as exc:
            provider.capabilities.refused_subscription(feed.kind)
            log.warning(
                "provider subscription failed",
                extra={"chain": self.chain, "provider": provider.id, "kind": feed.kind, "error": exc.message},
            )
            return
        if self.feeds.get(feed.key) is not feed or self.upstreams.get(provider.id) is not ws:
            self.tasks.spawn(f"{self.chain}/unsubscribe/{provider.id}", self._unsubscribe(ws, upstream_id))
            return
        feed.bind(provider.id, upstream_id, time.perf_counter_ns())
        self._routes[(provider.id, upstream_id)] = feed

    @staticmethod
    async def _unsubscribe(ws: UpstreamWs, upstream_id: str) -> None:
        if ws.connected:
            try:
                await ws.unsubscribe(upstream_id, timeout=SUBSCRIBE_TIMEOUT)
            except LivechainError:
                pass  # the provider forgets it when the socket closes anyway

    # ------------------------------------------------------------------ notifications (hot path)

    def _on_notification(self, provider: Provider, upstream_id: str, result: Any, t_ns: int) -> None:
        """Step 2: a notification from `provider`'s socket, to the feed its subscription belongs to."""
        feed = self._routes.get((provider.id, upstream_id))
        if feed is None or provider.chain_id_ok is False or provider.id not in self._verified:
            return
        if feed is self.heads and isinstance(result, dict):
            number = hex_number(result.get("number"))
            if number is not None:
                self.pool.observe_head(provider, number)
        feed.receive(provider.id, result, t_ns)

    def best_head_advanced(self, number: int) -> None:
        """The chain's best head advanced (from any source). Without live WS heads — or before the head stream
        has its first head, so that the canonical chain is known from the start — fetch it over HTTP. With live
        WS heads, a head the stream still lacks after `LATE_HEAD` (a block mined while a provider's subscription
        was being remade is never notified) is fetched too: the stream never waits for the next block."""
        last = self.tracker.last_number
        if self.heads.live and last is not None:
            if number > last and (self._late is None or self._late.done()):
                self._late = self.tasks.spawn(f"{self.chain}/heads/late", self._poll_late())
            return
        if self._polling is not None and not self._polling.done():
            return
        if last is not None and number <= last:
            return
        self._polling = self.tasks.spawn(f"{self.chain}/heads/poll", self._poll_head(number))

    async def _poll_late(self) -> None:
        """While the head stream lacks the best head `LATE_HEAD` after it was reported: fetch it."""
        while True:
            await asyncio.sleep(LATE_HEAD)
            best, last = self.pool.best_head, self.tracker.last_number
            if best is None or last is None or last >= best or not self.heads.live:
                return
            log.info("head not delivered by any provider subscription; fetched",
                     extra={"chain": self.chain, "number": best, "stream": last})
            await self._poll_head(best)

    async def _poll_head(self, number: int) -> None:
        try:
            block = await self._fetch("eth_getBlockByNumber", [hex(number), False])
        except LivechainError:
            return  # the next health check tries again
        last = self.tracker.last_number
        if isinstance(block, dict) and (last is None or last < number):  # a WS may have delivered it meanwhile
            self.tracker.offer(header_of(block))

    def _skipped(self, last: int, number: int) -> None:
        self.events.publish("heads_skipped", chain=self.chain, after=last, to=number, blocks=number - last - 1)

    def _race_event(self, winner: str, loser: str, margin_ms: float) -> None:
        self.events.publish("race", chain=self.chain, event=NEW_HEADS, winner=winner, loser=loser,
                            margin_ms=round(margin_ms, 3))

    # ------------------------------------------------------------------ client subscriptions

    def open(self, params: Any, max_resume: int) -> tuple[Feed, int | None]:
        """The feed for `params` (created, and subscribed on every provider, when new) and the block to resume
        from (`fromBlock`, None for a plain subscription). Raises InvalidParams for bad parameters, and when
        `fromBlock` is more than `max_resume` blocks behind the head stream."""
        params, start = split_resume(params)
        kind, upstream_params, key = canonical(params)
        if start is not None:
            last = self.tracker.last_number
            if last is None:
                raise SubscriptionUnavailable("eth_subscribe: fromBlock needs the chain's head, not known yet; retry")
            if last - start + 1 > max_resume:
                raise LimitExceeded(f"eth_subscribe: fromBlock {start} is {last - start + 1} blocks behind the head "
                                    f"({last}); at most max_resume_blocks = {max_resume} can be resumed")
        feed = self.feeds.get(key)
        if feed is None:
            if len(self.feeds) >= MAX_FEEDS:
                raise LimitExceeded("too many distinct subscriptions on this chain")
            if kind == LOGS:
                feed = LogsFeed(upstream_params, key, self.store, self.tracker, self._query, self.tasks.spawn,
                                f"{self.chain}/logs/{len(self.feeds)}", self.window)
            else:
                feed = Feed(kind, upstream_params, key, self.store, self.window)
            self.feeds[key] = feed
            for provider in self.pool.providers:
                if provider.id in self.upstreams and provider.chain_id_ok is not False:
                    self.tasks.spawn(f"{self.chain}/subscribe/{provider.id}", self._subscribe_on(provider, feed))
        return feed, start

    def ready(self, feed: Feed) -> bool:
        """Will a client of `feed` get its events: a provider subscription is live, or — for heads and logs —
        the HTTP fallback can run (a provider answers over HTTP; heads are then polled, logs fetched per block)."""
        if feed.live:
            return True
        if feed.kind not in (NEW_HEADS, LOGS):
            return False
        return any(p.chain_id_ok is not False and p.breaker.available() for p in self.pool.providers)

    async def wait(self, feed: Feed, timeout: float = SUBSCRIBE_TIMEOUT) -> bool:
        """Until `feed` is `ready` (True) or `timeout` passed (False)."""
        if self.ready(feed):
            return True
        if not self.upstreams:
            return False  # no provider has a WebSocket: nothing to wait for
        feed.waiting += 1
        try:
            async with asyncio.timeout(timeout):
                while not self.ready(feed):  # a bind wakes it at once; a provider coming back within a poll
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(feed.bound(), POLL_READY)
        except TimeoutError:
            pass
        finally:
            feed.waiting -= 1
        return self.ready(feed)

    def attach(self, feed: Feed, sink: Sink, sid: bytes, start: int | None = None) -> Subscription:
        """`sink` on `feed` under the client's id. With `start` (a resume), a `Resume` holds the live stream
        until the missed events are fetched (`Subscription.resume`) and `release`d."""
        if start is None:
            feed.attach(sink, sid)
            return Subscription(feed, sink, sid)
        resume = Resume(feed, sink, sid, start, self.tracker.last_number, self._query, self.tracker.hash_at)
        feed.attach(resume, sid)
        return Subscription(feed, resume, sid, resume)

    def discard(self, feed: Feed) -> None:
        """Drop `feed` when nobody uses it (its last client left, or a subscribe that waited for it failed)."""
        if not feed.idle or self.feeds.get(feed.key) is not feed:
            return
        del self.feeds[feed.key]
        for provider_id, upstream_id in list(feed.upstream.items()):
            self._routes.pop((provider_id, upstream_id), None)
            ws = self.upstreams.get(provider_id)
            if ws is not None:
                self.tasks.spawn(f"{self.chain}/unsubscribe/{provider_id}", self._unsubscribe(ws, upstream_id))
        if isinstance(feed, LogsFeed):
            feed.close()

    def unsubscribe(self, subscription: Subscription) -> None:
        feed = subscription.feed
        feed.detach(subscription.sink, subscription.sid)
        self.discard(feed)

    # ------------------------------------------------------------------ reading

    def clients_by_kind(self) -> dict[str, int]:
        """Client subscriptions per kind."""
        counts: dict[str, int] = {}
        for feed in self.feeds.values():
            counts[feed.kind] = counts.get(feed.kind, 0) + len(feed.clients)
        return counts

    def snapshot(self) -> dict:
        return {
            "feeds": [
                {"kind": f.kind, "clients": len(f.clients), "providers": sorted(f.live), "delivered": f.delivered}
                for f in self.feeds.values()
            ],
            "heads": {
                "last": self.tracker.last_number,
                "delivered": self.tracker.delivered,
                "backfilled": self.tracker.backfilled,
                "reorgs": self.tracker.reorgs,
            },
            "upstreams": {pid: ws.stats for pid, ws in self.upstreams.items()},
            "verified": sorted(self._verified),
        }
