"""Feeds: one shared, raced subscription per distinct (kind, params) on a chain, fanned out to its clients.

A feed is subscribed on every provider with a WebSocket; each notification goes through the feed's race
aggregator, and only first arrivals continue. Delivery encodes the result once and hands the same bytes to
every client (each client adds its own subscription id).

    HeadsFeed    newHeads: winners go to the chain's HeadTracker (gap-free, reorg-aware); its output is
                 what clients receive.
    LogsFeed     logs with a filter: a winner is delivered once its block is on the canonical head stream
                 (so on a reorg the removals always come first; deduplicated by (blockHash, logIndex,
                 removed)); on a reorg the orphaned blocks' delivered logs are re-sent with removed: true
                 (newest first), and missed ranges — after backfilled heads, after a reorg — are fetched
                 with eth_getLogs over exactly the subscription's filter. While no provider subscription is
                 live (no provider has a WebSocket, or all are down) every new canonical block's logs are
                 fetched that way: the HTTP fallback, so a logs subscription never silently stops.
    Feed         newPendingTransactions and any other kind: race and deliver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from livechain.evm.events import LOGS, NEW_HEADS, event_key, hex_number
from livechain.failsafe import Backoff
from livechain.metrics.store import BenchmarkStore
from livechain.subscriptions.aggregator import RaceAggregator
from livechain.subscriptions.heads import HeadTracker

log = logging.getLogger("livechain.subscriptions")

LOG_HISTORY_BLOCKS = 128
#: blocks per backfill eth_getLogs — within the range limit of every common provider (public nodes allow
#: 1,000–10,000). A failed query halves the span for the rest of that backfill (a range or result-size limit
#: is the likely cause), down to one block.
BACKFILL_SPAN = 1_000
#: a live log waits for its block's head at most this long / this many blocks, then goes out anyway
WAIT_SECONDS = 10.0
WAIT_BLOCKS = 64

Fetch = Callable[[str, list], Awaitable[Any]]


class Sink(Protocol):
    """A client connection that receives notifications."""

    def send_notification(self, sid: bytes, result_json: bytes) -> None: ...


class Feed:
    def __init__(
        self,
        kind: str,
        params: list,
        key: tuple,
        store: BenchmarkStore,
        window: float = 30.0,
        on_race: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.kind = kind
        self.params = params  # what eth_subscribe sends upstream: [kind, *args]
        self.key = key
        self.clients: dict[tuple[int, bytes], tuple[Sink, bytes]] = {}
        #: provider id → perf_counter_ns since when its provider subscription has been live
        self.live: dict[str, int] = {}
        #: provider id → that provider's subscription id for this feed
        self.upstream: dict[str, str] = {}
        self.aggregator = RaceAggregator(kind, store, self.live, max_age=window, on_race=on_race)
        self.delivered = 0
        self.permanent = False  # the chain's own head feed stays while the chain lives
        #: clients waiting for the feed to become live (`SubscriptionManager.wait`): it stays meanwhile
        self.waiting = 0
        self._bound: asyncio.Event | None = None

    # ------------------------------------------------------------------ clients

    def attach(self, sink: Sink, sid: bytes) -> None:
        self.clients[(id(sink), sid)] = (sink, sid)

    def detach(self, sink: Sink, sid: bytes) -> None:
        self.clients.pop((id(sink), sid), None)

    @property
    def idle(self) -> bool:
        return not self.clients and not self.permanent and not self.waiting

    async def bound(self) -> None:
        """Until a provider subscription is live for this feed."""
        while not self.live:
            if self._bound is None or self._bound.is_set():
                self._bound = asyncio.Event()
            await self._bound.wait()

    # ------------------------------------------------------------------ providers

    def bind(self, provider: str, upstream_id: str, since_ns: int) -> None:
        self.upstream[provider] = upstream_id
        self.live[provider] = since_ns
        if self._bound is not None:
            self._bound.set()

    def unbind(self, provider: str) -> None:
        self.upstream.pop(provider, None)
        self.live.pop(provider, None)

    # ------------------------------------------------------------------ notifications

    def receive(self, provider: str, result: Any, t_ns: int) -> None:
        """A notification from `provider` arrived at `t_ns` (step 3): raced; only a win goes on."""
        if self.aggregator.race(event_key(self.kind, result), provider, t_ns):
            self.on_winner(result)

    def on_winner(self, result: Any) -> None:
        """Step 4: a race win. Plain feeds deliver it at once; heads and logs feeds order it first."""
        self.deliver(result)

    def deliver(self, result: Any) -> None:
        """Step 5: encoded once, the same bytes to every client sink (each adds its own subscription id)."""
        self.delivered += 1
        if not self.clients:
            return
        payload = orjson.dumps(result)
        for sink, sid in list(self.clients.values()):
            sink.send_notification(sid, payload)


class HeadsFeed(Feed):
    """newHeads. Winners feed the tracker; the tracker's ordered output is delivered."""

    def __init__(
        self,
        store: BenchmarkStore,
        tracker: HeadTracker,
        window: float = 30.0,
        on_race: Callable[[str, str, float], None] | None = None,
    ) -> None:
        super().__init__(NEW_HEADS, [NEW_HEADS], (NEW_HEADS,), store, window, on_race)
        self.tracker = tracker
        tracker.follow(self)
        self.permanent = True

    def on_winner(self, result: Any) -> None:
        if isinstance(result, dict):
            self.tracker.offer(result)

    def on_block(self, header: dict, backfilled: bool) -> None:
        self.deliver(header)

    def on_reorg(self, fork_number: int, orphaned: list[tuple[int, str]]) -> None:
        pass  # newHeads clients simply receive the new branch's heads


class LogsFeed(Feed):
    def __init__(
        self,
        params: list,
        key: tuple,
        store: BenchmarkStore,
        tracker: HeadTracker,
        fetch: Fetch,
        spawn: Callable[[str, Any], asyncio.Task],
        name: str,
        window: float = 30.0,
    ) -> None:
        super().__init__(LOGS, params, key, store, window)
        self.filter: dict = dict(params[1]) if len(params) > 1 and isinstance(params[1], dict) else {}
        self.tracker = tracker
        self._fetch = fetch
        self._spawn = spawn
        self.name = name
        tracker.follow(self)
        #: block hash → logs delivered for it (for removals on reorg), bounded to recent blocks
        self.by_block: OrderedDict[str, list[dict]] = OrderedDict()
        self._keys: set[tuple] = set()
        self.covered_to: int | None = tracker.last_number
        self._backfill_from: int | None = None
        self._held: list[dict] = []  # live winners that arrived while a backfill runs
        #: block hash → (arrival time, logs) of live logs whose block is not on the head stream yet
        self._waiting: OrderedDict[str, tuple[float, list[dict]]] = OrderedDict()
        self._worker: asyncio.Task | None = None
        self.removed_sent = 0
        self.backfilled = 0
        self.polled = 0  # blocks whose logs were fetched because no provider subscription was live

    def close(self) -> None:
        self.tracker.unfollow(self)
        if self._worker is not None:
            self._worker.cancel()

    # ------------------------------------------------------------------ providers come and go

    def unbind(self, provider: str) -> None:
        super().unbind(provider)
        if not self.live:
            log.info("logs feed lost every provider: fetching each block's logs", extra={"feed": self.name})

    # ------------------------------------------------------------------ live logs

    def on_winner(self, result: Any) -> None:
        if not isinstance(result, dict):
            return
        if self._worker is not None and not self._worker.done():
            self._held.append(result)
        else:
            self._accept(result)

    def _accept(self, entry: dict) -> None:
        """Deliver a live log once its block is canonical; drop it if its block was orphaned."""
        block_hash = entry.get("blockHash")
        if not isinstance(block_hash, str):
            return
        if entry.get("removed"):
            # a provider's own removal: only meaningful for a log we delivered
            if (block_hash, entry.get("logIndex"), False) in self._keys:
                self._deliver_log(entry)
            return
        tracker = self.tracker
        if tracker.is_canonical(block_hash):
            self._deliver_log(entry)
            return
        number = hex_number(entry.get("blockNumber"))
        if number is not None and tracker.last_number is not None and number <= tracker.last_number:
            return  # its height is already settled by another block: an orphan, never delivered
        waiting = self._waiting.get(block_hash)
        if waiting is None:
            self._waiting[block_hash] = (time.monotonic(), [entry])
        else:
            waiting[1].append(entry)
        self._expire_waiting()

    def _expire_waiting(self) -> None:
        horizon = time.monotonic() - WAIT_SECONDS
        while self._waiting:
            block_hash, (since, entries) = next(iter(self._waiting.items()))
            if since > horizon and len(self._waiting) <= WAIT_BLOCKS:
                break
            del self._waiting[block_hash]
            for entry in entries:  # heads are not flowing: better late than never
                self._deliver_log(entry)

    def _deliver_log(self, entry: dict) -> None:
        key = (entry.get("blockHash"), entry.get("logIndex"), bool(entry.get("removed", False)))
        if key in self._keys:
            return
        block_hash = entry.get("blockHash")
        if not isinstance(block_hash, str):
            return
        self._keys.add(key)
        if not key[2]:
            self.by_block.setdefault(block_hash, []).append(entry)
            while len(self.by_block) > LOG_HISTORY_BLOCKS:
                old_hash, old_logs = self.by_block.popitem(last=False)
                for old in old_logs:
                    self._keys.discard((old_hash, old.get("logIndex"), False))
                    self._keys.discard((old_hash, old.get("logIndex"), True))
        self.deliver(entry)

    # ------------------------------------------------------------------ head events

    def on_block(self, header: dict, backfilled: bool) -> None:
        number = hex_number(header.get("number"))
        if number is None:
            return
        waiting = self._waiting.pop(header.get("hash"), None)
        if waiting is not None:
            for entry in waiting[1]:
                self._deliver_log(entry)
        if backfilled:
            self._want(number)  # no provider delivered this block's head: its logs may be missing too
        elif self.covered_to is not None and number > self.covered_to + 1:
            self._want(self.covered_to + 1)  # the head stream skipped blocks (nobody needed them): one range query
        if not self.live:  # nobody delivers this feed's logs: fetch them, from where coverage ends
            self.polled += 1
            self._want(self.covered_to + 1 if self.covered_to is not None and self.covered_to < number else number)
        if self._backfill_from is not None and (self._worker is None or self._worker.done()):
            self._worker = self._spawn(f"{self.name}/backfill", self._backfill())
        self.covered_to = number

    def on_reorg(self, fork_number: int, orphaned: list[tuple[int, str]]) -> None:
        for _, block_hash in orphaned:  # newest first: undo in reverse
            for entry in reversed(self.by_block.pop(block_hash, [])):
                removal = {**entry, "removed": True}
                self.removed_sent += 1
                self._deliver_log(removal)
        self._want(fork_number + 1)

    def _want(self, start: int) -> None:
        self._backfill_from = start if self._backfill_from is None else min(self._backfill_from, start)

    async def _backfill(self) -> None:
        """Fetch the wanted range in order, `span` blocks per query; a reorg or outage that lowers
        `_backfill_from` meanwhile is picked up by the next iteration."""
        backoff = Backoff(base=0.2, cap=5.0)
        span = BACKFILL_SPAN
        while self._backfill_from is not None:
            start, self._backfill_from = self._backfill_from, None
            end = self.tracker.last_number
            if end is None or end < start:
                break
            stop = min(end, start + span - 1)
            query = {**self.filter, "fromBlock": hex(start), "toBlock": hex(stop)}
            query.pop("blockHash", None)
            try:
                found = await self._fetch("eth_getLogs", [query])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._want(start)
                span = max(1, span // 2)
                delay = backoff.next()
                log.warning(
                    "logs backfill failed; retrying",
                    extra={
                        "feed": self.name, "error": type(exc).__name__, "delay_s": round(delay, 3), "span": span
                    },
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if stop < end:
                self._want(stop + 1)
            if isinstance(found, list):
                found.sort(key=lambda e: (hex_number(e.get("blockNumber")) or 0, hex_number(e.get("logIndex")) or 0))
                before = self.delivered
                for entry in found:
                    if isinstance(entry, dict) and not entry.get("removed"):
                        self._deliver_log(entry)
                self.backfilled += self.delivered - before
        held, self._held = self._held, []
        for entry in held:
            self._accept(entry)
