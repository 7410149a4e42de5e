"""Where cached answers live: `MemoryStore`, one per process, LRU, bounded by bytes.

    get(key) → Entry | None          a hit moves the entry to the young end
    put(key, entry) → bool           False when the entry alone is over `max_entry_bytes`; older entries are
                                     evicted until the whole fits in `max_bytes`
    drop(key)                        an entry that is no longer true

Sizes count the entry's payload and key plus a fixed overhead per entry (the dict slot, the Entry object), so
`bytes` tracks the process's real memory within a few percent (`bench/cache.py` checks it against RSS).
Sync, O(1) per operation. `CacheBackend` is the interface a shared store (Redis, for several processes) plugs
in through.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

#: bytes per entry beyond payload and key: the OrderedDict node, the Entry object and its fields
ENTRY_OVERHEAD = 200

# lifetimes
FINAL = 0  # true forever: a final block's data, chain facts
BLOCK = 1  # true while `hash` is the canonical block at `number`
HEAD = 2  # true while the chain's head generation is `generation` (and until `expires`)


class Entry:
    """One cached answer: the JSON of the result (or of a deterministic error) and when it stops being true."""

    __slots__ = ("error", "expires", "generation", "hash", "lifetime", "number", "payload", "size")

    def __init__(
        self, payload: bytes, error: bool = False, lifetime: int = FINAL, number: int | None = None,
        hash: str | None = None, generation: int = 0, expires: float | None = None,
    ) -> None:
        self.payload = payload
        self.error = error
        self.lifetime = lifetime
        self.number = number
        self.hash = hash
        self.generation = generation
        self.expires = expires
        self.size = 0


class CacheBackend(Protocol):
    max_bytes: int
    max_entry_bytes: int

    def get(self, key: bytes) -> Entry | None: ...

    def put(self, key: bytes, entry: Entry) -> bool: ...

    def drop(self, key: bytes) -> None: ...


class MemoryStore:
    def __init__(self, max_bytes: int, max_entry_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self.bytes = 0
        self.evictions = 0
        self.oversized = 0

    def __len__(self) -> int:
        return len(self._entries)

    def configure(self, max_bytes: int, max_entry_bytes: int) -> None:
        """A reload: new bounds, applied at once (evicting when the store shrank)."""
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._evict()

    def get(self, key: bytes) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, entry: Entry) -> bool:
        entry.size = len(entry.payload) + len(key) + ENTRY_OVERHEAD
        if entry.size > self.max_entry_bytes:
            self.oversized += 1
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[key] = entry
        self.bytes += entry.size
        self._evict()
        return True

    def drop(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size

    def _evict(self) -> None:
        entries = self._entries
        while self.bytes > self.max_bytes and entries:
            _, old = entries.popitem(last=False)
            self.bytes -= old.size
            self.evictions += 1
