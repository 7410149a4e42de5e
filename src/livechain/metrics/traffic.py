"""Client requests per second and their error share, right now (the last 10 seconds). O(1) per request."""

from __future__ import annotations

import time
from collections.abc import Callable

SECONDS = 10


class Traffic:
    __slots__ = ("_clock", "_errors", "_now", "_requests", "total_errors", "total_requests")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests = [0] * SECONDS
        self._errors = [0] * SECONDS
        self._now = int(clock())
        self.total_requests = 0
        self.total_errors = 0

    def _advance(self) -> int:
        now = int(self._clock())
        if now != self._now:
            for second in range(max(self._now + 1, now - SECONDS + 1), now + 1):
                self._requests[second % SECONDS] = 0
                self._errors[second % SECONDS] = 0
            self._now = now
        return now % SECONDS

    def record(self, ok: bool) -> None:
        slot = self._advance()
        self._requests[slot] += 1
        self.total_requests += 1
        if not ok:
            self._errors[slot] += 1
            self.total_errors += 1

    def rate(self) -> tuple[float, float | None]:
        """(requests per second, error share) over the last SECONDS complete-or-current seconds."""
        self._advance()
        requests = sum(self._requests)
        errors = sum(self._errors)
        return round(requests / SECONDS, 2), (round(errors / requests, 4) if requests else None)
