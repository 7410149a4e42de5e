"""Resumable subscriptions: `eth_subscribe("newHeads", {"fromBlock": N})` and `eth_subscribe("logs", {…filter,
"fromBlock": N})` deliver every event from block N on, in order, then the live stream — no gap and no duplicate
at the seam. A client that reconnects passes the block after the last one it saw.

How the seam is kept: a `Resume` is attached to the feed *first* (from then on it holds every live
notification), and only then are the missed events fetched — block headers N..seam (`seam` = the head stream's
last block when it was attached) or one `eth_getLogs` over N..seam (split like any client's). `release()`, called
by the session right after it answered the subscribe with the id, sends the missed events, then the held live
ones that are not among them (by block hash for heads; by (blockHash, logIndex, removed) for logs; nothing
below N), and puts the client's own sink in its place on the feed: from then on the client costs what any
subscriber costs. Held live notifications are bounded (`MAX_HELD`); past it the resume fails and the client
gets an error instead of a subscription with a hole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from livechain.errors import InvalidParams, LimitExceeded
from livechain.evm.events import LOGS, NEW_HEADS, header_of, hex_number
from livechain.subscriptions.feeds import Feed, Sink

#: live notifications held while the missed ones are fetched
MAX_HELD = 10_000
#: headers fetched at once
PARALLEL = 8

Query = Callable[[str, list], Awaitable[Any]]  # (method, params) → result, through the chain's pipeline


def split_resume(params: Any) -> tuple[Any, int | None]:
    """(the params without `fromBlock`, the block to resume from or None). Only newHeads and logs resume."""
    if not isinstance(params, list) or len(params) != 2 or not isinstance(params[1], dict):
        return params, None
    options = params[1]
    if "fromBlock" not in options or params[0] not in (NEW_HEADS, LOGS):
        return params, None
    raw = options["fromBlock"]
    start = hex_number(raw) if isinstance(raw, str) else None
    if start is None:
        raise InvalidParams(f"eth_subscribe {params[0]}: fromBlock must be a block number (0x-hex)")
    rest = {k: v for k, v in options.items() if k != "fromBlock"}
    return ([params[0], rest] if rest or params[0] == LOGS else [params[0]]), start


class Resume:
    """A feed `Sink` standing in for a client while its missed events are fetched (see the module doc)."""

    def __init__(
        self, feed: Feed, sink: Sink, sid: bytes, start: int, seam: int | None, query: Query,
        canonical: Callable[[int], str | None],
    ) -> None:
        """`canonical(number)`: the head stream's hash at that height, when it still remembers it."""
        self.feed = feed
        self._canonical = canonical
        self.sink = sink
        self.sid = sid
        self.start = start
        self.seam = seam
        self._query = query
        self._missed: list[bytes] = []
        self._seen: set = set()
        self._held: list[bytes] = []
        self.overflowed = False

    # ------------------------------------------------------------------ live, meanwhile

    def send_notification(self, sid: bytes, result_json: bytes) -> None:
        if len(self._held) >= MAX_HELD:
            self.overflowed = True
            return
        self._held.append(result_json)

    # ------------------------------------------------------------------ the missed events

    async def fetch(self) -> None:
        """Fetch what the client missed (raises a client-facing error when it cannot be had)."""
        if self.seam is None or self.start > self.seam:
            return  # nothing missed: only live events from `start` on
        if self.feed.kind == NEW_HEADS:
            await self._headers(self.start, self.seam)
        else:
            query = {**(self.feed.params[1] if len(self.feed.params) > 1 else {}),
                     "fromBlock": hex(self.start), "toBlock": hex(self.seam)}
            found = await self._query("eth_getLogs", [query])
            if not isinstance(found, list):
                raise InvalidParams("eth_subscribe logs: the logs since fromBlock could not be read")
            found.sort(key=lambda e: (hex_number(e.get("blockNumber")) or 0, hex_number(e.get("logIndex")) or 0))
            for entry in found:
                if isinstance(entry, dict) and not entry.get("removed"):
                    self._seen.add((entry.get("blockHash"), entry.get("logIndex"), False))
                    self._missed.append(orjson.dumps(entry))

    async def _headers(self, low: int, high: int) -> None:
        gate = asyncio.Semaphore(PARALLEL)

        async def one(number: int) -> dict:
            async with gate:
                block = await self._query("eth_getBlockByNumber", [hex(number), False])
                known = self._canonical(number)
                if isinstance(block, dict) and known is not None and block.get("hash") != known:
                    block = await self._query("eth_getBlockByHash", [known, False])  # the head stream's branch
            if not isinstance(block, dict):
                raise LimitExceeded(f"eth_subscribe newHeads: block {number} could not be read; try again")
            return header_of(block)

        headers = await asyncio.gather(*(one(n) for n in range(low, high + 1)))
        for header in headers:
            self._seen.add(header.get("hash"))
            self._missed.append(orjson.dumps(header))

    # ------------------------------------------------------------------ hand over

    def release(self) -> Sink:
        """Send the missed events, then the live ones held meanwhile (not sent twice, none below `start`), and
        return the client's own sink, which takes this one's place on the feed."""
        sink, sid = self.sink, self.sid
        for payload in self._missed:
            sink.send_notification(sid, payload)
        heads = self.feed.kind == NEW_HEADS
        for payload in self._held:
            entry = orjson.loads(payload)
            if not isinstance(entry, dict):
                continue
            number = hex_number(entry.get("number" if heads else "blockNumber"))
            if number is not None and number < self.start:
                continue
            key = entry.get("hash") if heads else (entry.get("blockHash"), entry.get("logIndex"),
                                                    bool(entry.get("removed", False)))
            if key in self._seen:
                continue
            self._seen.add(key)
            sink.send_notification(sid, payload)
        self._missed, self._held = [], []
        self.feed.detach(self, sid)
        self.feed.attach(sink, sid)
        return sink
