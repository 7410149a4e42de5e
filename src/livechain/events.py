"""A bounded in-process event bus: breaker transitions, failovers, reconnects, race results, reorgs, reloads.

`publish()` is cheap (a dict and a deque append) and never blocks or awaits, so any layer may call it.
Readers (the dashboard, the WS event feed) poll `since(seq)` on their own schedule — batched, off the
request path; a slow reader just misses the oldest events, it never slows a publisher.
"""

from __future__ import annotations

import time
from collections import deque
from itertools import islice, takewhile
from typing import Any


class EventBus:
    def __init__(self, capacity: int = 2000) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.seq = 0
        self.counts: dict[str, int] = {}

    def publish(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        self.counts[kind] = self.counts.get(kind, 0) + 1
        fields["seq"] = self.seq
        fields["kind"] = kind
        fields["ts"] = time.time()
        self._events.append(fields)

    def since(self, seq: int, limit: int = 500) -> list[dict[str, Any]]:
        """Events with a sequence number above `seq`, oldest first, at most `limit` (the newest ones)."""
        if seq >= self.seq:
            return []
        newer = list(islice(takewhile(lambda e: e["seq"] > seq, reversed(self._events)), limit))
        newer.reverse()
        return newer

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._events)[-limit:]
