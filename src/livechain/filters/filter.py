"""One stateful filter (`eth_newFilter`, `eth_newBlockFilter`, `eth_newPendingTransactionFilter`): the changes
buffered for its owner since the last poll, as the encoded JSON of each entry (a poll answers by joining them).

    BlockFilter     the hash of every new canonical block (the chain's head stream: in order, without gaps;
                    a reorg's new branch is new blocks, as geth's block filters report it)
    PendingFilter   the hash of every pending transaction the chain's raced pending feed sees
    LogFilter       the logs of its criteria from the chain's raced logs feed (reorg removals included, as
                    `removed: true` entries); with a `fromBlock` in the past, the first poll also returns the
                    logs from there to the head at creation (one eth_getLogs, split like a client's), never an
                    entry twice; entries outside `fromBlock`..`toBlock` are not kept

Every filter is a feed `Sink` (its subscription on the chain's feed delivers into it) and is bounded: past
`limit` entries it overflows, stops buffering, and its next poll gets an error (the client recreates it).
"""

from __future__ import annotations

from typing import Any

import orjson

from livechain.evm.events import hex_number

BLOCKS = "blocks"
PENDING = "pending"
LOGS = "logs"
#: keys of backfilled logs remembered to drop their late live copies, until the head is this far past the seam
DEDUP_BLOCKS = 64


class Filter:
    kind = ""

    __slots__ = ("entries", "id", "limit", "overflowed", "owner", "polled", "subscription")

    def __init__(self, fid: str, owner: str, limit: int, now: float) -> None:
        self.id = fid
        self.owner = owner
        self.limit = limit
        self.entries: list[bytes] = []
        self.overflowed = False
        self.polled = now  # the last poll (or creation): a filter not polled for the ttl expires
        self.subscription: Any = None  # its subscription on a chain feed (none for block filters)

    def add(self, payload: bytes) -> None:
        if self.overflowed:
            return
        if len(self.entries) >= self.limit:
            self.overflowed = True
            self.entries = []  # nobody will read them: the next poll is an error
            return
        self.entries.append(payload)

    def take(self) -> list[bytes]:
        entries, self.entries = self.entries, []
        return entries

    def send_notification(self, sid: bytes, result_json: bytes) -> None:
        """The feed `Sink`: one entry from the chain's raced feed."""
        self.add(result_json)


class BlockFilter(Filter):
    kind = BLOCKS
    __slots__ = ()


class PendingFilter(Filter):
    kind = PENDING
    __slots__ = ()


class LogFilter(Filter):
    """`criteria`: what eth_getFilterLogs asks (the client's filter, normalized); `low`/`high`: the numeric
    `fromBlock`/`toBlock` bounds (None: open); `missed`: the range to fetch at the first poll ((from, to) or
    the criteria's blockHash), None when there is nothing to fetch; `seam`: the head at creation."""

    kind = LOGS
    __slots__ = ("_seen", "criteria", "high", "low", "missed", "seam")

    def __init__(
        self, fid: str, owner: str, limit: int, now: float, criteria: dict, low: int | None, high: int | None,
        missed: tuple[int, int] | str | None, seam: int | None,
    ) -> None:
        super().__init__(fid, owner, limit, now)
        self.criteria = criteria
        self.low = low
        self.high = high
        self.missed = missed
        self.seam = seam
        self._seen: set[tuple] = set()  # (blockHash, logIndex) of the backfilled logs

    @property
    def live(self) -> bool:
        """Does it take entries from the live feed (False: a range wholly in the past, or one block by hash)?"""
        return not isinstance(self.missed, str) and (self.high is None or self.seam is None or self.high > self.seam)

    def send_notification(self, sid: bytes, result_json: bytes) -> None:
        if self.low is None and self.high is None and not self._seen:
            self.add(result_json)
            return
        entry = orjson.loads(result_json)
        if not isinstance(entry, dict):
            return
        number = hex_number(entry.get("blockNumber"))
        if number is None or (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            return
        if not entry.get("removed") and (entry.get("blockHash"), entry.get("logIndex")) in self._seen:
            return  # a late live copy of a log the first poll fetched
        self.add(result_json)

    def backfilled(self, logs: list, head: int | None) -> list[bytes]:
        """The fetched missed logs, encoded, in chain order; the live entries buffered meanwhile that they
        contain are dropped."""
        logs = [entry for entry in logs if isinstance(entry, dict) and not entry.get("removed")]
        logs.sort(key=lambda e: (hex_number(e.get("blockNumber")) or 0, hex_number(e.get("logIndex")) or 0))
        self._seen = {(e.get("blockHash"), e.get("logIndex")) for e in logs}
        self.missed = None
        if self.entries:
            kept = []
            for payload in self.entries:
                entry = orjson.loads(payload)
                if entry.get("removed") or (entry.get("blockHash"), entry.get("logIndex")) not in self._seen:
                    kept.append(payload)
            self.entries = kept
        self.forget(head)
        return [orjson.dumps(e) for e in logs]

    def forget(self, head: int | None) -> None:
        """Stop remembering the backfilled keys once the head is well past the seam (no late copy comes)."""
        if self._seen and (head is None or self.seam is None or head > self.seam + DEDUP_BLOCKS):
            self._seen = set()
