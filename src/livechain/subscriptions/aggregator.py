"""The race: first arrival of each event wins, later arrivals lose by a margin. Sync, O(1) per arrival.

    race(key, provider, t_ns) → True when this is the event's first arrival — a win: forward it — else False.

Step 3 of a notification's way (see `livechain.subscriptions`): a feed asks the race about every arrival.

The seen-set is an insertion-ordered dict bounded by size (`max_events`) and age (`max_age`, the race
window), so memory is predictable. Keys that left it stay in a second, key-only FIFO of the same size: an
arrival after the window is recognised as *late* — neither forwarded nor scored as a win (the provider
already got its miss).

Missed events: when an event leaves the seen-set, every provider that was subscribed since before the
event arrived and still is, yet never delivered it, gets a miss. Providers that disconnected meanwhile are
not counted (that is a disconnect, not a silent miss). `live` is the feed's {provider: subscribed since ns}.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from livechain.metrics.store import BenchmarkStore

GRACE_NS = 50_000_000  # a provider that subscribed < 50 ms before the event is not expected to have it


class _Seen:
    """One event in the window. `delivered`: a bit per provider (RaceAggregator._bits) — a set per event
    costs ~5× the memory of the rest of the entry."""

    __slots__ = ("delivered", "first_ns", "winner")

    def __init__(self, first_ns: int, winner: str, bit: int) -> None:
        self.first_ns = first_ns
        self.winner = winner
        self.delivered = bit


class RaceAggregator:
    def __init__(
        self,
        kind: str,
        store: BenchmarkStore,
        live: dict[str, int],
        *,
        max_events: int = 10_000,
        max_age: float = 30.0,
        now_ns: Callable[[], int] = time.perf_counter_ns,
        on_race: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.kind = kind
        self._store = store
        self._live = live
        self.max_events = max_events
        self.max_age_ns = int(max_age * 1e9)
        self._now_ns = now_ns
        # Both key sets are FIFOs: a dict for lookups plus a deque for the order. (`next(iter(d))` on a dict
        # used as a FIFO scans the deleted slots at its front, which grow between resizes.)
        self._seen: dict[object, _Seen] = {}
        self._seen_order: deque[object] = deque()
        self._expired: dict[object, None] = {}  # keys that left the window (FIFO, bounded by max_events)
        self._expired_order: deque[object] = deque()
        self._bits: dict[str, int] = {}  # provider → its bit in _Seen.delivered
        #: called on every race loss with (winner, loser, margin ms) — the manager publishes these as events
        self.on_race = on_race
        self.events = 0
        self.duplicates = 0
        self.late = 0

    def race(self, key: object, provider: str, t_ns: int) -> bool:
        bit = self._bits.get(provider)
        if bit is None:
            bit = self._bits[provider] = 1 << len(self._bits)
        seen = self._seen.get(key)
        if seen is None:
            if key in self._expired:
                self.late += 1
                return False
            seen_set = self._seen
            seen_set[key] = _Seen(t_ns, provider, bit)
            order = self._seen_order
            order.append(key)
            self.events += 1
            self._store.record_race(provider, self.kind, True, 0.0)
            if len(seen_set) > self.max_events or seen_set[order[0]].first_ns < t_ns - self.max_age_ns:
                self.expire(t_ns)
            return True
        if seen.delivered & bit:
            self.duplicates += 1  # the same provider again (e.g. right after a resubscribe)
            return False
        seen.delivered |= bit
        margin_ms = max(0, t_ns - seen.first_ns) / 1e6
        self._store.record_race(provider, self.kind, False, margin_ms)
        if self.on_race is not None:
            self.on_race(seen.winner, provider, margin_ms)
        return False

    def expire(self, now_ns: int | None = None) -> int:
        """Drop events beyond the size or age bound, counting misses. Returns how many were dropped."""
        now_ns = self._now_ns() if now_ns is None else now_ns
        horizon = now_ns - self.max_age_ns
        seen = self._seen
        order = self._seen_order
        expired = self._expired
        expired_order = self._expired_order
        dropped = 0
        while order:
            key = order[0]
            entry = seen[key]
            if entry.first_ns >= horizon and len(seen) <= self.max_events:
                break
            order.popleft()
            del seen[key]
            dropped += 1
            self._count_misses(entry)
            expired[key] = None
            expired_order.append(key)
            if len(expired) > self.max_events:
                del expired[expired_order.popleft()]
        return dropped

    def _count_misses(self, entry: _Seen) -> None:
        cutoff = entry.first_ns - GRACE_NS
        bits = self._bits
        for provider, since in self._live.items():
            if since <= cutoff and not entry.delivered & bits.get(provider, 0):
                self._store.record_missed(provider, self.kind)

    def __len__(self) -> int:
        return len(self._seen)
