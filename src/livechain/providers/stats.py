"""Per-method running statistics of one provider, for selection: updated inline, read in O(1).

For each method (and "*" = all methods) an exponentially weighted moving average of latency (successes
only) and of success (1 = success, 0 = failure; neutral outcomes — the client's heavy-query timeout, rate
limiting, an unsupported method — leave it alone), the sample count and the time of the last sample.
The full distributions live in the benchmark store; these are what a pick can afford to read.
"""

from __future__ import annotations

from livechain.clock import Clock
from livechain.metrics.scoring import freshness
from livechain.outcomes import Outcome

ALPHA = 0.2
ALL = "*"


class Entry:
    __slots__ = ("last_at", "latency_ms", "samples", "success")

    def __init__(self) -> None:
        self.latency_ms = 0.0
        self.success = 1.0
        self.samples = 0
        self.last_at = 0.0


class MethodStats:
    __slots__ = ("_clock", "entries")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.entries: dict[str, Entry] = {}

    def observe(self, method: str, latency_ms: float, outcome: Outcome) -> None:
        if not outcome.scored:
            return
        ok = outcome.answered
        now = self._clock.monotonic()
        entries = self.entries
        for key in (method, ALL):
            entry = entries.get(key)
            if entry is None:
                if len(entries) >= 512:
                    continue
                entry = entries[key] = Entry()
            if ok:
                entry.latency_ms = latency_ms if entry.samples == 0 else entry.latency_ms + ALPHA * (
                    latency_ms - entry.latency_ms
                )
            entry.success += ALPHA * ((1.0 if ok else 0.0) - entry.success)
            entry.samples += 1
            entry.last_at = now

    def get(self, method: str) -> Entry | None:
        return self.entries.get(method)

    def now(self) -> float:
        """The clock these statistics are timed with (a strategy reads it once per pick)."""
        return self._clock.monotonic()

    def freshness(self, entry: Entry, now: float | None = None) -> float:
        """1.0 for a statistic measured just now, fading to 0 over scoring.DECAY_SECONDS of silence."""
        if now is None:
            now = self._clock.monotonic()
        return freshness(now - entry.last_at)
