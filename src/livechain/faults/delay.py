"""`DelayLine`: the order-preserving, non-cumulative delay of one connection's provider→client path.

Each item is due at `push time + its own delay`, clamped to be no earlier than the item before it (so
jitter never reorders bytes). One timer per line drains everything that is due: a burst of chunks
pushed together arrives together, one latency later — never latency × chunks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["DelayLine"]

_EARLY = 0.0005  # the loop may fire a timer this much early; items due that soon are delivered


class DelayLine:
    """Holds items until they are due, then hands them to `deliver` in order.

    `pressure(True)` is called when more than `high` bytes are held and `pressure(False)` once the
    held bytes fall below `low`, so the owner can pause and resume reading the provider.
    """

    __slots__ = (
        "_deliver",
        "_high",
        "_last_due",
        "_loop",
        "_low",
        "_pressure",
        "_queue",
        "_timer",
        "held_bytes",
    )

    def __init__(
        self,
        deliver: Callable[[Any], None],
        pressure: Callable[[bool], None],
        *,
        high: int = 1 << 20,
        low: int = 256 << 10,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._deliver = deliver
        self._pressure = pressure
        self._high, self._low = high, low
        self._queue: deque[tuple[float, Any]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._last_due = 0.0
        self.held_bytes = 0

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, item: Any, delay: float) -> None:
        """Deliver `item` after `delay` seconds, and never before the items pushed earlier."""
        if delay <= 0.0 and not self._queue:
            self._deliver(item)
            return
        due = max(self._loop.time() + delay, self._last_due)
        self._last_due = due
        self._queue.append((due, item))
        if isinstance(item, bytes):
            self.held_bytes += len(item)
            if self.held_bytes > self._high:
                self._pressure(True)
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._drain)

    def clear(self) -> None:
        """Drop everything held (the connection is closing, freezing or stalling)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self.held_bytes = 0

    def _drain(self) -> None:
        self._timer = None
        now = self._loop.time() + _EARLY
        queue = self._queue
        while queue and queue[0][0] <= now:
            item = queue.popleft()[1]
            if isinstance(item, bytes):
                self.held_bytes -= len(item)
            self._deliver(item)  # may clear() the line
        if self.held_bytes < self._low:
            self._pressure(False)
        if queue and self._timer is None:
            self._timer = self._loop.call_at(queue[0][0], self._drain)
