"""A chain's filters: unguessable ids bound to their owner, bounded, expiring when not polled.

- An id is `0x` + 32 random hex digits (128 bits, as geth's); it is bound to its owner (the API key's name, else
  the client's address): an id that is unknown, expired, uninstalled or another owner's is "filter not found"
  alike — nobody learns whether someone else's id exists.
- Bounds: `max` filters on the chain, `max_per_client` per owner, `max_entries` buffered per filter (past it the
  filter overflows: its next poll is an error and it is removed).
- A filter not polled for `ttl` expires (`expire()`, run by the chain's timer and on every new filter); what
  it subscribed to on the chain's feeds is released with it (`release`).
- Block filters follow the chain's head stream here, once for all of them (`on_block`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import orjson

from livechain.errors import FilterNotFound, FilterOverflow, LimitExceeded
from livechain.filters.filter import BlockFilter, Filter


class Filters:
    def __init__(
        self, *, ttl: float, max: int, max_per_client: int, max_entries: int, clock: Callable[[], float],
        release: Callable[[Filter], None],
    ) -> None:
        """`release(filter)`: end what the filter subscribed to (called once, when it goes)."""
        self._clock = clock
        self._release = release
        self.configure(ttl=ttl, max=max, max_per_client=max_per_client, max_entries=max_entries)
        self._by_id: dict[str, Filter] = {}
        self._owned: dict[str, int] = {}
        self._blocks: dict[str, BlockFilter] = {}
        self.created = 0
        self.expired = 0
        self.overflowed = 0

    def configure(self, *, ttl: float, max: int, max_per_client: int, max_entries: int) -> None:
        """Adopt reloaded bounds (filters already there keep their buffers; a lower limit applies to new ones)."""
        self.ttl = ttl
        self.max = max
        self.max_per_client = max_per_client
        self.max_entries = max_entries

    def __len__(self) -> int:
        return len(self._by_id)

    def now(self) -> float:
        return self._clock()

    def wants_blocks(self) -> bool:
        """Is there a block filter (it needs every block of the head stream, gaps backfilled)?"""
        return bool(self._blocks)

    # ------------------------------------------------------------------ lifecycle

    def new_id(self, owner: str) -> str:
        """An id for a new filter of `owner`; raises LimitExceeded when the owner or the chain is at its bound."""
        self.expire()
        if len(self._by_id) >= self.max:
            raise LimitExceeded(f"too many filters on this chain (at most {self.max}); uninstall unused ones")
        if self._owned.get(owner, 0) >= self.max_per_client:
            raise LimitExceeded(f"at most {self.max_per_client} filters per client; uninstall unused ones")
        return "0x" + secrets.token_hex(16)

    def add(self, flt: Filter) -> None:
        self._by_id[flt.id] = flt
        self._owned[flt.owner] = self._owned.get(flt.owner, 0) + 1
        if isinstance(flt, BlockFilter):
            self._blocks[flt.id] = flt
        self.created += 1

    def get(self, fid: object, owner: str) -> Filter:
        """The owner's filter `fid`, marked polled; raises FilterNotFound (unknown, expired, not the owner's) or
        FilterOverflow (it buffered more than it may: removed now)."""
        flt = self._by_id.get(fid) if isinstance(fid, str) else None
        now = self._clock()
        if flt is None or flt.owner != owner:
            raise FilterNotFound()
        if now - flt.polled > self.ttl:
            self._drop(flt)
            self.expired += 1
            raise FilterNotFound()
        if flt.overflowed:
            self._drop(flt)
            self.overflowed += 1
            raise FilterOverflow(f"filter {flt.id} buffered more than {flt.limit} entries between two polls and was "
                                 "removed; create a new one and poll it more often")
        flt.polled = now
        return flt

    def remove(self, fid: object, owner: str) -> bool:
        """eth_uninstallFilter: True when the owner had that filter."""
        flt = self._by_id.get(fid) if isinstance(fid, str) else None
        if flt is None or flt.owner != owner:
            return False
        self._drop(flt)
        return True

    def expire(self) -> int:
        """Remove the filters not polled for `ttl`; how many."""
        horizon = self._clock() - self.ttl
        stale = [f for f in self._by_id.values() if f.polled < horizon]
        for flt in stale:
            self._drop(flt)
        self.expired += len(stale)
        return len(stale)

    def close(self) -> None:
        for flt in list(self._by_id.values()):
            self._drop(flt)

    def _drop(self, flt: Filter) -> None:
        if self._by_id.pop(flt.id, None) is None:
            return
        self._blocks.pop(flt.id, None)
        left = self._owned.get(flt.owner, 1) - 1
        if left > 0:
            self._owned[flt.owner] = left
        else:
            self._owned.pop(flt.owner, None)
        self._release(flt)

    # ------------------------------------------------------------------ the head stream's follower

    def on_block(self, header: dict, backfilled: bool) -> None:
        if self._blocks:
            payload = orjson.dumps(header.get("hash"))
            for flt in self._blocks.values():
                flt.add(payload)

    def on_reorg(self, fork_number: int, orphaned: list[tuple[int, str]]) -> None:
        pass  # block filters report the new branch's blocks as new blocks (as geth's do)

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict:
        kinds: dict[str, int] = {}
        for flt in self._by_id.values():
            kinds[flt.kind] = kinds.get(flt.kind, 0) + 1
        return {"filters": len(self._by_id), "by_kind": kinds, "created": self.created, "expired": self.expired,
                "overflowed": self.overflowed}
