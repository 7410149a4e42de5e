"""Time-sliced counters: a ring of fixed-length slots, each a small aggregate, summed on read.

One `Windowed` per (provider, method) or (provider, event type) keeps two rings: the rolling "now" window
(10 slots of window/10) and the retention period (slots of one hour, or retention/24 when shorter). Slots
are created only when something is recorded in them and dropped when they age out, so memory per key is
bounded by the slot counts, and a quiet key costs nothing new.
"""

from __future__ import annotations

from array import array
from collections import deque

from livechain.metrics.sketch import BUCKETS, MIN_MS, bucket_of, merge_into, new_histogram, quantiles
from livechain.outcomes import BY_INDEX, Outcome

#: column names of the outcome counters, in `Outcome.index` order (persisted in snapshots)
OUTCOMES: tuple[str, ...] = tuple(o.value for o in BY_INDEX)
_SUCCESS_IDX = (Outcome.OK.index, Outcome.RPC_ERROR.index)
#: outcomes that are the client's cost or the provider's policy: they don't lower a success rate
_UNSCORED_IDX = tuple(o.index for o in BY_INDEX if not o.scored)


class Slot:
    """Aggregate of one time slice: RPC outcomes + latency histogram, or race wins + margin sum."""

    __slots__ = ("hist", "latency_sum", "margin_sum", "outcomes", "start", "wins")

    def __init__(self, start: float) -> None:
        self.start = start
        self.outcomes = array("I", bytes(4 * len(OUTCOMES)))
        self.hist: array | None = None
        self.latency_sum = 0.0
        self.wins = 0
        self.margin_sum = 0.0

    @property
    def count(self) -> int:
        return sum(self.outcomes)

    def to_state(self) -> list:
        return [self.start, list(self.outcomes), list(self.hist) if self.hist is not None else None,
                self.latency_sum, self.wins, self.margin_sum]

    @classmethod
    def from_state(cls, state: list) -> Slot:
        start, outcomes, hist, latency_sum, wins, margin_sum = state
        slot = cls(float(start))
        for i, n in enumerate(outcomes[: len(OUTCOMES)]):
            slot.outcomes[i] = int(n)
        if hist is not None:
            slot.hist = new_histogram()
            for i, n in enumerate(hist[:BUCKETS]):
                slot.hist[i] = int(n)
        slot.latency_sum, slot.wins, slot.margin_sum = float(latency_sum), int(wins), float(margin_sum)
        return slot


class Ring:
    __slots__ = ("slot_seconds", "slots", "span")

    def __init__(self, slot_seconds: float, span: float) -> None:
        self.slot_seconds = slot_seconds
        self.span = span
        self.slots: deque[Slot] = deque()

    def slot_at(self, ts: float) -> Slot:
        start = ts - ts % self.slot_seconds
        slots = self.slots
        if slots and slots[-1].start == start:
            return slots[-1]
        if slots and slots[-1].start > start:  # out of order (clock step): find or fold into the newest
            for slot in reversed(slots):
                if slot.start == start:
                    return slot
            return slots[-1]
        slot = Slot(start)
        slots.append(slot)
        return slot

    def expire(self, now: float) -> None:
        horizon = now - self.span
        slots = self.slots
        while slots and slots[0].start + self.slot_seconds <= horizon:
            slots.popleft()

    def to_state(self) -> list:
        return [slot.to_state() for slot in self.slots]

    def load_state(self, state: list) -> None:
        self.slots = deque(Slot.from_state(item) for item in state)

    def live(self, now: float) -> list[Slot]:
        horizon = now - self.span
        return [s for s in self.slots if s.start + self.slot_seconds > horizon]


class Windowed:
    """The "now" window and the retention totals of one key."""

    __slots__ = ("last_ts", "now", "total")

    def __init__(self, window: float, retention: float) -> None:
        self.now = Ring(window / 10, window)
        self.total = Ring(min(3600.0, retention / 24), retention)
        self.last_ts = 0.0

    def to_state(self) -> dict:
        return {"now": self.now.to_state(), "total": self.total.to_state(), "last": self.last_ts}

    def load_state(self, state: dict) -> None:
        self.now.load_state(state.get("now", []))
        self.total.load_state(state.get("total", []))
        self.last_ts = float(state.get("last", 0.0))

    # ------------------------------------------------------------------ writing (off the request path)

    def add_rpc(self, ts: float, latency_ms: float, outcome: int, bucket: int = -1) -> None:
        self.last_ts = ts
        success = outcome in _SUCCESS_IDX
        now_slot = self.now.slot_at(ts)
        for slot in (now_slot, self.total.slot_at(ts)):
            slot.outcomes[outcome] += 1
            if success:
                slot.latency_sum += latency_ms
        if success:  # quantiles for the "now" window only: retention slots keep counts and sums (memory)
            if now_slot.hist is None:
                now_slot.hist = new_histogram()
            now_slot.hist[bucket if bucket >= 0 else bucket_of(latency_ms)] += 1

    def add_race(self, ts: float, win: bool, margin_ms: float) -> None:
        self.last_ts = ts
        now_slot = self.now.slot_at(ts)
        for slot in (now_slot, self.total.slot_at(ts)):
            slot.outcomes[0] += 1
            if win:
                slot.wins += 1
            else:
                slot.margin_sum += margin_ms
        # the delay behind the first arrival, a win counting 0: its quantiles are the provider's head delay
        if now_slot.hist is None:
            now_slot.hist = new_histogram()
        now_slot.hist[0 if win else bucket_of(margin_ms)] += 1

    def expire(self, now: float) -> bool:
        """Drop aged slots; True when nothing is left (the key can be forgotten)."""
        self.now.expire(now)
        self.total.expire(now)
        return not self.total.slots

    # ------------------------------------------------------------------ reading

    def rpc_summary(self, now: float, *, window: bool = True) -> dict:
        slots = (self.now if window else self.total).live(now)
        outcomes = [0] * len(OUTCOMES)
        hist = array("I", bytes(4 * BUCKETS))
        latency_sum = 0.0
        for slot in slots:
            for i, n in enumerate(slot.outcomes):
                outcomes[i] += n
            if slot.hist is not None:
                merge_into(hist, slot.hist)
            latency_sum += slot.latency_sum
        count = sum(outcomes)
        successes = outcomes[_SUCCESS_IDX[0]] + outcomes[_SUCCESS_IDX[1]]
        neutral = sum(outcomes[i] for i in _UNSCORED_IDX)
        judged = count - neutral
        p50, p90, p99 = quantiles(hist, (0.5, 0.9, 0.99))
        return {
            "count": count,
            "successes": successes,
            "failures": {OUTCOMES[i]: n for i, n in enumerate(outcomes) if n and not BY_INDEX[i].answered},
            "success_rate": round(successes / judged, 4) if judged else None,
            "p50_ms": p50,
            "p90_ms": p90,
            "p99_ms": p99,
            "mean_ms": round(latency_sum / successes, 3) if successes else None,
        }

    def race_summary(self, now: float, *, window: bool = True) -> dict:
        slots = (self.now if window else self.total).live(now)
        total = sum(s.outcomes[0] for s in slots)
        wins = sum(s.wins for s in slots)
        losses = total - wins
        margin = sum(s.margin_sum for s in slots)
        summary = {
            "total": total,
            "wins": wins,
            "win_rate": round(wins / total, 4) if total else None,
            "avg_margin_ms": round(margin / losses, 3) if losses else 0.0,
        }
        # the head delay (wins as 0): from the "now" window's histograms whichever period the counts are of
        hist = array("I", bytes(4 * BUCKETS))
        for slot in self.now.live(now) if not window else slots:
            if slot.hist is not None:
                merge_into(hist, slot.hist)
        p50, p90 = quantiles(hist, (0.5, 0.9))
        summary["delay_p50_ms"] = 0.0 if p50 is not None and p50 <= MIN_MS * 1.1 else p50
        summary["delay_p90_ms"] = 0.0 if p90 is not None and p90 <= MIN_MS * 1.1 else p90
        return summary
