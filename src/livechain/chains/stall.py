"""A chain whose heads stop is *stalled* — per chain and per provider — visibly, and recovers by itself.

    on_block(number, backfilled)    every canonical block of the head tracker (`Chain.on_block`): when the
                                    chain last had a head, and the observed block time
    state(now) -> StallState        is the chain / each provider stalled at `now` (a pure read: correct
                                    whether or not `check` ran)
    check(now)                      report what changed since the last check: one log line, one event
                                    ("stalled" | "recovered") and a count per transition, per chain and per
                                    provider
    run()                           the chain's supervised task: `check()` every min(1 s, stall_after / 4)

The rules:
- **Block time**: the median of the last BLOCK_SAMPLES per-block intervals between heads that arrived live
  (not backfilled): (arrival time − the previous live head's) / (number − its number). Intervals under
  BURST_S (several heads delivered at once: a reorg's new branch, a catch-up) are not samples. Unknown until
  MIN_SAMPLES samples were taken.
- **stall_after**: configured (`stall_after: 30s`), or `auto`: 3 × the block time, never below MIN_AUTO_S
  (a 250 ms chain must not flap on one slow block), and FALLBACK_S until the block time is known.
  When heads are polled over HTTP instead of pushed over a WebSocket (no provider WebSocket delivers them; for
  one provider: its own newHeads subscription is not live) a head can only change once per health check: the
  threshold is then at least 2 × `health_interval`.
- **The chain** is stalled when no canonical head arrived for its threshold (counted from start when none
  ever did). Heads that come back end it at once; the head tracker has already backfilled the gap.
- **A provider** is stalled when its head has not changed for its threshold (counted from when it was first
  seen while it has no head). A provider whose breaker is open, or that serves the wrong chain, gets no new
  head either and turns stalled the same way: `stalled` says only that its head stopped, the breaker and
  `chain_id_ok` fields say why.

Nothing here blocks; the clock is injected (seconds, monotonic) so tests never sleep.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import median
from typing import Protocol

from livechain.events import EventBus

log = logging.getLogger("livechain.chains")

BLOCK_SAMPLES = 16  # per-block intervals the block time is the median of
MIN_SAMPLES = 3  # fewer: the block time is unknown (one interval is not an estimate)
BURST_S = 0.05  # heads closer together than this arrived as a burst, not at the chain's pace
AUTO_FACTOR = 3.0  # auto: stalled after this many block times without a head
MIN_AUTO_S = 3.0  # auto never goes below this (fast chains)
FALLBACK_S = 60.0  # auto, before the block time is known
POLLED_FACTOR = 2.0  # heads polled every health_interval: at least this many intervals
MAX_PERIOD_S = 1.0  # how often run() checks, at most ...
MIN_PERIOD_S = 0.05  # ... and at least (a tiny configured stall_after)


class HeadSource(Protocol):
    """What a provider tells about its head (`providers.provider.Provider`)."""

    id: str
    head: int | None
    head_at: float  # monotonic time its head last changed


#: provider id (None: the chain's canonical head stream) → its health_interval when its heads are polled,
#: None when they are pushed over a WebSocket
Polled = Callable[[str | None], float | None]


@dataclass(frozen=True, slots=True)
class StallState:
    stalled: bool
    #: how long the chain has been stalled (None: it is not)
    stalled_for_s: float | None
    #: seconds since the last canonical head (since start when none arrived yet)
    silent_s: float
    #: the observed block time (None: not known yet)
    block_time_s: float | None
    #: the chain's threshold now (auto or configured, raised while heads are polled)
    stall_after_s: float
    #: provider id → stalled
    providers: dict[str, bool]

    def summary(self) -> dict:
        """The chain's fields for the JSON API (rounded)."""
        return {
            "stalled": self.stalled,
            "stalled_for_s": None if self.stalled_for_s is None else round(self.stalled_for_s, 3),
            "block_time_s": None if self.block_time_s is None else round(self.block_time_s, 3),
            "stall_after_s": round(self.stall_after_s, 3),
        }


class Stall:
    def __init__(
        self,
        chain: str,
        stall_after: float | None,
        *,
        providers: Callable[[], Iterable[HeadSource]],
        polled: Polled,
        events: EventBus,
        clock: Callable[[], float],
    ) -> None:
        """`stall_after`: seconds, or None for auto. `providers()`: the chain's providers now."""
        self.chain = chain
        self.stall_after = stall_after
        self._providers = providers
        self._polled = polled
        self._events = events
        self._clock = clock
        now = clock()
        self._last_at = now  # when the last canonical head arrived (start: none yet)
        self.last_number: int | None = None
        self._live: tuple[int, float] | None = None  # the last live head: (number, arrival)
        self._samples: deque[float] = deque(maxlen=BLOCK_SAMPLES)
        self.block_time: float | None = None
        #: provider id → since when it is known (for a provider without a head yet)
        self._seen: dict[str, float] = {p.id: now for p in providers()}
        #: what was last reported: None → the chain; provider id → that provider (absent: ok)
        self._reported: dict[str | None, float] = {}  # → when the stall began
        #: ok → stalled transitions since start
        self.chain_stalls = 0
        self.provider_stalls: dict[str, int] = {}

    def configure(self, stall_after: float | None) -> None:
        """A reload: seconds, or None for auto."""
        self.stall_after = stall_after

    # ------------------------------------------------------------------ input

    def on_block(self, number: int, backfilled: bool) -> None:
        """A canonical block (backfilled: fetched because no provider delivered it)."""
        now = self._clock()
        self._last_at = now
        self.last_number = number
        if not backfilled:
            live = self._live
            if live is not None and number > live[0] and now - live[1] >= BURST_S:
                self._samples.append((now - live[1]) / (number - live[0]))
                if len(self._samples) >= MIN_SAMPLES:
                    self.block_time = median(self._samples)
            self._live = (number, now)
        if self._reported:
            self.check(now)  # a recovery is reported when it happens, not at the next check

    # ------------------------------------------------------------------ reading

    def base(self) -> float:
        """stall_after before the polling allowance: configured, or auto from the block time."""
        if self.stall_after is not None:
            return self.stall_after
        if self.block_time is None:
            return FALLBACK_S
        return max(MIN_AUTO_S, AUTO_FACTOR * self.block_time)

    def threshold(self, provider: str | None = None) -> float:
        """The silence after which the chain (None) or `provider` is stalled."""
        base = self.base()
        interval = self._polled(provider)
        return base if interval is None else max(base, POLLED_FACTOR * interval)

    def state(self, now: float) -> StallState:
        limit = self.threshold()
        silent = max(0.0, now - self._last_at)
        stalled = silent > limit
        providers = {}
        for p in self._providers():
            since = p.head_at if p.head is not None else self._seen.get(p.id, now)
            providers[p.id] = now - since > self.threshold(p.id)
        return StallState(
            stalled=stalled,
            stalled_for_s=silent - limit if stalled else None,
            silent_s=silent,
            block_time_s=self.block_time,
            stall_after_s=limit,
            providers=providers,
        )

    # ------------------------------------------------------------------ transitions

    def check(self, now: float | None = None) -> StallState:
        """Report every transition since the last check; returns the state it compared."""
        if now is None:
            now = self._clock()
        state = self.state(now)
        self._compare(None, state.stalled, now, state.silent_s, state.stall_after_s, self.last_number)
        present = set()
        for p in self._providers():
            present.add(p.id)
            if p.id not in self._seen:
                self._seen[p.id] = now
                continue  # first seen now: not stalled yet (state() agreed)
            stalled = state.providers.get(p.id, False)
            since = p.head_at if p.head is not None else self._seen[p.id]
            self._compare(p.id, stalled, now, now - since, self.threshold(p.id), p.head)
        for gone in [pid for pid in self._seen if pid not in present]:  # removed by a reload: forgotten
            del self._seen[gone]
            self._reported.pop(gone, None)
        return state

    def _compare(self, provider: str | None, stalled: bool, now: float, silent: float, limit: float,
                 head: int | None) -> None:
        began = self._reported.get(provider)
        if stalled == (began is not None):
            return
        fields: dict[str, object] = {
            "chain": self.chain, "provider": provider, "head": head, "stall_after_s": round(limit, 3),
            "block_time_s": None if self.block_time is None else round(self.block_time, 3),
        }
        what = "chain" if provider is None else "provider"
        if began is None:  # ok → stalled; it began when the silence passed the threshold
            self._reported[provider] = now - (silent - limit)
            if provider is None:
                self.chain_stalls += 1
            else:
                self.provider_stalls[provider] = self.provider_stalls.get(provider, 0) + 1
            fields["silent_s"] = round(silent, 3)
            log.warning("%s stalled: no new head for %.1f s", what, silent, extra=fields)
            self._events.publish("stalled", **fields)
        else:  # stalled → ok
            del self._reported[provider]
            lasted = round(max(0.0, now - began), 3)
            fields["stalled_s"] = lasted
            log.info("%s recovered: heads are back after %.1f s stalled", what, lasted, extra=fields)
            self._events.publish("recovered", **fields)

    def period(self) -> float:
        """How often `run` checks: a quarter of the threshold, within [MIN_PERIOD_S, MAX_PERIOD_S]."""
        return min(MAX_PERIOD_S, max(MIN_PERIOD_S, self.base() / 4))

    async def run(self) -> None:
        """Check periodically, so transitions are noticed without any request (the chain supervises it)."""
        while True:
            self.check()
            await asyncio.sleep(self.period())
