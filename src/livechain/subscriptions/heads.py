"""The canonical head stream of one chain: every block once, in order, across provider failures and reorgs.

Input: `offer(header)` with the winning newHeads notifications (first arrivals of the race), in arrival
order — step 4 of a notification's way (see `livechain.subscriptions`).
Output, to every follower (`follow()`: the heads feed and each logs feed), in order:

    on_block(header, backfilled)         a new canonical block (backfilled=True: fetched over HTTP because
                                         no provider delivered it)
    on_reorg(fork_number, orphaned)      blocks above fork_number were replaced; orphaned = [(number, hash)]
                                         newest first; the new chain's blocks follow as on_block

Rules, for a head N with parent P, given the last delivered block L:
- hash already delivered                → ignored (a late duplicate)
- N == L+1 and P == hash(L)             → delivered at once (the fast path: synchronous, no task hop)
- N >  L+1                              → gap: blocks L+1..N-1 fetched over HTTP (eth_getBlockByNumber, in
                                          JSON-RPC batches where the provider takes them) and delivered first
                                          (if they don't chain onto L, it is a reorg too). A gap of at most
                                          BATCH blocks always (one request: the canonical hashes it gives keep
                                          the cache and integrity checks exact); a longer one only when someone
                                          needs every block (`wanted`: a newHeads subscriber, a block filter) —
                                          else N is delivered at once and the gap costs nothing (logs feeds
                                          fetch a gap's logs by range). A gap over `max_backfill` blocks skips
                                          ahead (logged, `on_skip`), as a syncing node's head stream would.
- otherwise (N <= L, or P != hash(L))   → reorg: walk back by parent hash (fetching by hash) to a block we
                                          delivered, report the orphaned blocks, deliver the new branch
Anything that needs a fetch goes through a queue owned by one worker task, so order is kept while heads keep
arriving; a failed fetch is retried with backoff. A head that still cannot be placed (after MAX_TRIES, or
twice when newer heads wait behind it) is skipped: the next head's placement backfills from the last
delivered block, so skipping loses nothing and one bad head can never stall the stream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from livechain.evm.events import header_of, hex_number
from livechain.failsafe import Backoff

log = logging.getLogger("livechain.subscriptions")

HISTORY = 256  # canonical blocks remembered (number → hash)
MAX_REORG_DEPTH = 64
MAX_GAP = 1000  # default `max_backfill`: a longer gap is not backfilled block by block (it skips ahead)
BATCH = 100  # blocks per JSON-RPC batch of a backfill
MAX_TRIES = 8  # attempts to place one head before it is skipped (fewer when newer heads are waiting)

Fetch = Callable[[str, list], Awaitable[object]]  # (method, params) → result (raises on failure)
#: (method, [params, …]) → results in order (None where one failed); raises when nothing could be fetched
FetchMany = Callable[[str, list[list]], Awaitable[list]]


class HeadListener(Protocol):
    def on_block(self, header: dict, backfilled: bool) -> None: ...

    def on_reorg(self, fork_number: int, orphaned: list[tuple[int, str]]) -> None: ...


class HeadTracker:
    def __init__(
        self, chain: str, fetch: Fetch, *, spawn: Callable[[str, object], asyncio.Task],
        fetch_many: FetchMany | None = None, wanted: Callable[[], bool] | None = None, max_backfill: int = MAX_GAP,
        on_skip: Callable[[int, int], None] | None = None,
    ) -> None:
        """`fetch_many`: batched fetches for a gap (else one `fetch` per block); `wanted()`: does a follower need
        every block (None: always); `on_skip(last, number)`: a gap too long to backfill was skipped."""
        self.chain = chain
        self._fetch = fetch
        self._fetch_many = fetch_many
        self._spawn = spawn
        self.wanted = wanted
        self.max_backfill = max_backfill
        self._on_skip = on_skip
        #: replaced, never mutated: a follower may leave while blocks are being delivered to all of them
        self._followers: tuple[HeadListener, ...] = ()
        self.history: OrderedDict[int, str] = OrderedDict()  # number → hash of delivered canonical blocks
        self._numbers: dict[str, int] = {}  # the same, by hash
        self.last_number: int | None = None
        self.last_hash: str | None = None
        self._queue: deque[dict] = deque()
        self._worker: asyncio.Task | None = None
        self.delivered = 0
        self.backfilled = 0
        self.reorgs = 0
        self.skipped = 0
        self.skipped_blocks = 0  # blocks of gaps too long to backfill

    def follow(self, follower: HeadListener) -> None:
        """`follower` gets every on_block / on_reorg from now on (feeds come and go with client subscriptions)."""
        self._followers = (*self._followers, follower)

    def unfollow(self, follower: HeadListener) -> None:
        self._followers = tuple(f for f in self._followers if f is not follower)

    def is_canonical(self, block_hash: str) -> bool:
        """Was this block delivered as part of the canonical chain (within the remembered history)?"""
        return block_hash in self._numbers

    def hash_at(self, number: int) -> str | None:
        """The canonical block's hash at `number`, within the remembered history."""
        return self.history.get(number)

    def number_of(self, block_hash: str) -> int | None:
        """The number of a canonical block, within the remembered history."""
        return self._numbers.get(block_hash)

    # ------------------------------------------------------------------ input

    def offer(self, header: dict) -> None:
        """A winning newHeads notification (or a head fetched over HTTP when no provider WebSocket delivers)."""
        number = hex_number(header.get("number"))
        block_hash = header.get("hash")
        if number is None or not isinstance(block_hash, str) or block_hash in self._numbers:
            return
        if not self._queue and (self._worker is None or self._worker.done()):
            if self.last_number is None or (
                number == self.last_number + 1 and header.get("parentHash") == self.last_hash
            ):
                self._deliver(header, number, False)
                return
        self._queue.append(header)
        if self._worker is None or self._worker.done():
            self._worker = self._spawn(f"{self.chain}/heads/backfill", self._work())

    # ------------------------------------------------------------------ the slow path

    async def _work(self) -> None:
        backoff = Backoff(base=0.2, cap=5.0)
        tries = 0
        while self._queue:
            header = self._queue[0]
            try:
                await self._place(header)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                tries += 1
                if tries >= MAX_TRIES or (len(self._queue) > 1 and tries >= 2):
                    # this head cannot be placed (its ancestry is unfetchable); skip it — the next head's
                    # placement backfills from the last delivered block, so nothing is lost by skipping
                    log.warning("head could not be placed; skipped",
                                extra={"chain": self.chain, "error": type(exc).__name__, "tries": tries})
                    self.skipped += 1
                    self._queue.popleft()
                    tries = 0
                    continue
                delay = backoff.next()
                log.warning(
                    "head backfill failed; retrying",
                    extra={"chain": self.chain, "error": type(exc).__name__, "delay_s": round(delay, 3)},
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            tries = 0
            self._queue.popleft()

    async def _place(self, header: dict) -> None:
        number = hex_number(header.get("number"))
        block_hash = header["hash"]
        if number is None or block_hash in self._numbers:
            return
        last = self.last_number
        if last is None or (number == last + 1 and header.get("parentHash") == self.last_hash):
            self._deliver(header, number, False)
            return
        if number > last + 1 and number - last - 1 <= self.max_backfill:
            if number - last - 1 > BATCH and self.wanted is not None and not self.wanted():
                self._deliver(header, number, False)  # nobody needs the blocks in between: they cost nothing
                return
            missing = await self._blocks(last + 1, number)
            if missing[0].get("parentHash") == self.last_hash and all(
                b.get("parentHash") == a.get("hash") for a, b in itertools.pairwise(missing)
            ) and header.get("parentHash") == missing[-1].get("hash"):
                for block in missing:
                    self.backfilled += 1
                    self._deliver(header_of(block), hex_number(block["number"]), True)
                self._deliver(header, number, False)
                return
        elif number > last + 1:
            log.warning("head gap too long to backfill: skipped ahead",
                        extra={"chain": self.chain, "from": last, "to": number, "max_backfill_blocks": self.max_backfill})
            self.skipped_blocks += number - last - 1
            if self._on_skip is not None:
                self._on_skip(last, number)
            self._deliver(header, number, False)
            return
        await self._reorg(header, number)

    async def _blocks(self, low: int, high: int) -> list[dict]:
        """Blocks low..high-1, in order (batched when a `fetch_many` is given); raises when one is missing."""
        numbers = range(low, high)
        if self._fetch_many is not None:
            found: list = []
            for start in range(low, high, BATCH):
                chunk = [[hex(n), False] for n in range(start, min(high, start + BATCH))]
                found += await self._fetch_many("eth_getBlockByNumber", chunk)
        else:
            found = [await self._fetch("eth_getBlockByNumber", [hex(n), False]) for n in numbers]
        for n, block in zip(numbers, found, strict=True):
            if not isinstance(block, dict):
                raise LookupError(f"block {n} not available yet")
        return found

    async def _reorg(self, header: dict, number: int) -> None:
        """Walk back from `header` by parent hash to a delivered block; report orphans; deliver the branch."""
        branch = [header]
        parent = header.get("parentHash")
        fork = None
        for _ in range(MAX_REORG_DEPTH):
            parent_number = hex_number(branch[-1].get("number"))
            if parent_number is None:
                break
            if parent_number - 1 in self.history and self.history[parent_number - 1] == parent:
                fork = parent_number - 1
                break
            if not self.history or parent_number - 1 < next(iter(self.history)):
                # the branch reached below every block remembered (a short history, e.g. just after start):
                # its parent cannot be compared, so the blocks remembered above it are the orphaned ones
                fork = parent_number - 1
                break
            block = await self._fetch("eth_getBlockByHash", [parent, False])
            if not isinstance(block, dict):
                raise LookupError("parent block not available")
            branch.append(header_of(block))
            parent = block.get("parentHash")
        if fork is None:
            # nothing in common within reach: a new chain as far as we can tell; deliver the head alone
            log.warning("reorg deeper than history; restarting the head stream", extra={"chain": self.chain})
            fork = number - 1
            branch = [header]
        orphaned = [(n, h) for n, h in reversed(self.history.items()) if n > fork]
        for n, h in orphaned:
            del self.history[n]
            self._numbers.pop(h, None)
        self.last_number, self.last_hash = fork, self.history.get(fork)
        if orphaned:
            self.reorgs += 1
            log.info("reorg", extra={"chain": self.chain, "fork": fork, "orphaned": len(orphaned)})
            for listener in self._followers:
                listener.on_reorg(fork, orphaned)
        for block in reversed(branch):
            self._deliver(block, hex_number(block["number"]), False)

    # ------------------------------------------------------------------ output

    def _deliver(self, header: dict, number: int | None, backfilled: bool) -> None:
        if number is None:
            return
        block_hash = header["hash"]
        self.last_number, self.last_hash = number, block_hash
        self.history[number] = block_hash
        self._numbers[block_hash] = number
        while len(self.history) > HISTORY:
            _, old = self.history.popitem(last=False)
            self._numbers.pop(old, None)
        self.delivered += 1
        for listener in self._followers:
            listener.on_block(header, backfilled)
