"""One chain's view of the cache: which answers may be kept, and which kept answers are still true.

Finality decides lifetime (`admit`):

    static chain facts, data of a block at or below the finalized head      FINAL   kept until evicted
    data of an unfinalized block on the canonical chain                      BLOCK   true while that block's hash is
                                                                                     still the canonical one at its
                                                                                     number (a range: its last block)
    anything about latest / pending / safe / finalized, eth_blockNumber …    HEAD    true until the next head (and
                                                                                     the method's ttl, if shorter)

Never kept: a `null` result (a block, transaction or receipt not there yet is lag, not an answer); an answer
from a provider whose head is behind the best head; an answer about a block above the best head or whose
canonical hash is not known; an error, unless the caller says it is deterministic and the answer is FINAL;
an answer that raced a new head or a reorg (the call's `epoch` changed while it was upstream).

A lookup checks again (`valid`), so nothing stale is served even between a reorg and its eager drop: a BLOCK
entry must still match the canonical hash at its number (or be at or below the finalized head), a HEAD entry
must be of the current head. `reorg()` drops every entry of the orphaned blocks at once; `new_head()` drops
the head entries.

Keys are prefixed with the chain's name: one process-wide store serves every chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from livechain.cache.store import BLOCK, FINAL, HEAD, CacheBackend, Entry
from livechain.evm.events import hex_number
from livechain.evm.requests import Ref


class ChainState(Protocol):
    """What the cache reads about its chain (implemented by `Chain`)."""

    def best_head(self) -> int | None: ...

    def finalized(self) -> int | None: ...

    def canonical_hash(self, number: int) -> str | None: ...

    def canonical_number(self, block_hash: str) -> int | None: ...

    def provider_head(self, provider: str) -> int | None: ...


def answer_block(result: Any) -> tuple[int, str] | None:
    """(number, hash) of the block an answer names: a block, a transaction, a receipt, a list of receipts."""
    if isinstance(result, list) and result:
        result = result[0]
    if isinstance(result, dict):
        number = hex_number(result.get("blockNumber", result.get("number")))
        block_hash = result.get("blockHash", result.get("hash") if "number" in result else None)
        if number is not None and isinstance(block_hash, str):
            return number, block_hash.lower()
    return None


class ChainCache:
    def __init__(self, chain: str, store: CacheBackend, state: ChainState,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix = chain.encode() + b"\x00"
        self.store = store
        self.state = state
        self._clock = clock
        #: bumped by every new head and every reorg: what a HEAD entry and an in-flight call are checked against
        self.generation = 0
        self.reorgs = 0
        self._head = -1
        self._head_keys: set[bytes] = set()
        #: BLOCK entries by the number of their block (a hash-named block's too): what a reorg above `fork`
        #: drops — the orphaned blocks are exactly those above it
        self._by_number: dict[int, set[bytes]] = {}

    # ------------------------------------------------------------------ reading

    def lookup(self, key: bytes) -> Entry | None:
        entry = self.store.get(self.prefix + key)
        if entry is None:
            return None
        if self.valid(entry):
            return entry
        self.store.drop(self.prefix + key)
        return None

    def valid(self, entry: Entry) -> bool:
        lifetime = entry.lifetime
        if lifetime == FINAL:
            return True
        if lifetime == HEAD:
            return entry.generation == self.generation and (entry.expires is None or self._clock() < entry.expires)
        number = entry.number
        finalized = self.state.finalized()
        canonical = self.state.canonical_hash(number)  # type: ignore[arg-type]
        if canonical is not None:
            return canonical == entry.hash
        return finalized is not None and number <= finalized  # type: ignore[operator]

    def epoch(self) -> tuple[int, int]:
        """Taken when a call starts; `admit` refuses an answer whose epoch moved meanwhile."""
        return self.generation, self.reorgs

    # ------------------------------------------------------------------ filling

    def admit(
        self, key: bytes, ref: Ref, value: Any, provider: str, epoch: tuple[int, int], *,
        error: bool = False, ttl: float | None = None,
    ) -> bool:
        """Keep `value` (a result, or a deterministic error object with `error`) under `key` if the rules
        allow; it is encoded only then. True when it was kept."""
        if value is None:
            return False
        if epoch[0] != self.generation or epoch[1] != self.reorgs:
            return False  # a new head or a reorg happened while it was upstream
        state = self.state
        best = state.best_head()
        if ref.kind != "static":
            head = state.provider_head(provider)
            if head is None or best is None or head < best:
                return False  # a lagging provider's answer is never kept
        lifetime, number, block_hash = self._lifetime(ref, None if error else value, best)
        if lifetime is None or (error and lifetime != FINAL):
            return False
        # a right-sized copy: orjson's output keeps its over-allocated buffer (measured: a 22-byte result held
        # ~4 KiB of memory, a 30 KB one ~37 KB), which would put the store's real memory far over max_bytes
        entry = Entry(memoryview(orjson.dumps(value)).tobytes(), error, lifetime, number, block_hash, self.generation,
                      (self._clock() + ttl) if ttl is not None else None)
        full = self.prefix + key
        if not self.store.put(full, entry):
            return False
        if lifetime == HEAD:
            self._head_keys.add(full)
        elif lifetime == BLOCK:
            self._by_number.setdefault(number, set()).add(full)  # type: ignore[arg-type]
        return True

    def _lifetime(self, ref: Ref, result: Any, best: int | None) -> tuple[int | None, int | None, str | None]:
        kind = ref.kind
        if kind == "static":
            return FINAL, None, None
        if kind == "head" or (kind == "tag" and ref.tag != "earliest"):
            return HEAD, None, None
        if kind == "tag":  # earliest: block 0
            return self._at_number(0, best)
        if kind == "number":
            return self._at_number(ref.number, best)  # type: ignore[arg-type]
        if kind == "hash":
            return self._at_hash(ref.hash, result)  # type: ignore[arg-type]
        if kind == "answer":
            named = answer_block(result)
            if named is None:
                return None, None, None
            number, block_hash = named
            lifetime = self._at_number(number, best)
            return lifetime if lifetime[2] in (None, block_hash) else (None, None, None)
        if kind == "range":
            return self._range(ref, result, best)
        return None, None, None

    def _at_number(self, number: int, best: int | None) -> tuple[int | None, int | None, str | None]:
        finalized = self.state.finalized()
        if finalized is not None and number <= finalized:
            return FINAL, number, None
        if best is None or number > best:
            return None, None, None
        canonical = self.state.canonical_hash(number)
        return (BLOCK, number, canonical) if canonical is not None else (None, None, None)

    def _at_hash(self, block_hash: str, result: Any) -> tuple[int | None, int | None, str | None]:
        number = self.state.canonical_number(block_hash)
        if number is not None:
            finalized = self.state.finalized()
            return (FINAL, number, None) if finalized is not None and number <= finalized else (BLOCK, number, block_hash)
        named = answer_block(result)  # a block unknown to the head tracker: only a final one is kept
        finalized = self.state.finalized()
        if named is not None and named[1] == block_hash and finalized is not None and named[0] <= finalized:
            return FINAL, named[0], None
        return None, None, None

    def _range(self, ref: Ref, result: Any, best: int | None) -> tuple[int | None, int | None, str | None]:
        low, high = ref.low, ref.high
        if low.kind == "hash":  # type: ignore[union-attr]
            return self._at_hash(low.hash, result[0] if isinstance(result, list) and result else None)  # type: ignore[union-attr]
        if any(r.kind == "tag" and r.tag != "earliest" for r in (low, high)):  # type: ignore[union-attr]
            return HEAD, None, None
        top = high.number if high.kind == "number" else 0  # type: ignore[union-attr]
        lifetime, number, block_hash = self._at_number(top, best)  # type: ignore[arg-type]
        if lifetime == BLOCK and isinstance(result, list):
            for log in result:  # every log must be of the canonical chain as the head tracker knows it
                named = answer_block(log)
                if named is None or self.state.canonical_hash(named[0]) != named[1]:
                    return None, None, None
        return lifetime, number, block_hash

    # ------------------------------------------------------------------ the chain moves

    def new_head(self, number: int) -> None:
        """The best head advanced: every HEAD entry is stale."""
        if number <= self._head:
            return
        self._head = number
        self.generation += 1
        self._drop(self._head_keys)
        finalized = self.state.finalized()
        if finalized is not None:  # entries at or below the finalized head no longer need their index
            for old in [n for n in self._by_number if n <= finalized]:
                del self._by_number[old]

    def reorg(self, fork: int) -> None:
        """Blocks above `fork` were replaced: their entries (and every HEAD entry) go at once."""
        self.reorgs += 1
        self.generation += 1
        self._drop(self._head_keys)
        for number in [n for n in self._by_number if n > fork]:
            self._drop(self._by_number.pop(number))

    def _drop(self, keys: set[bytes]) -> None:
        for key in keys:
            self.store.drop(key)
        keys.clear()
