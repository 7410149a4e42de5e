"""Clocks. Everything that measures time takes a clock so tests never really sleep.

`monotonic()` (seconds, float) is for deadlines, timeouts and breaker timing; `wall()` for timestamps
that leave the process (metrics, persistence). Latencies and race margins use `time.perf_counter_ns()`
directly, where nanosecond resolution matters and no test needs to fake it.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> float: ...


class SystemClock:
    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)


class ManualClock:
    """A clock tests move by hand: `clock.advance(3.5)`."""

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._mono = start
        self._wall = wall_start

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += seconds


SYSTEM_CLOCK = SystemClock()
