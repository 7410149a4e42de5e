"""Filters as units: the registry (ids, owners, bounds, expiry with an injected clock) and a log filter's
buffer (range bounds, the first poll's backfill without duplicates)."""

from __future__ import annotations

import orjson
import pytest

from livechain.clock import ManualClock
from livechain.errors import FilterNotFound, FilterOverflow, LimitExceeded
from livechain.filters import BlockFilter, Filters, LogFilter


def registry(clock: ManualClock, released: list) -> Filters:
    return Filters(ttl=60, max=4, max_per_client=2, max_entries=3, clock=clock.monotonic, release=released.append)


def test_ids_are_random_owned_bounded_and_expire():
    clock, released = ManualClock(), []
    filters = registry(clock, released)
    a = BlockFilter(filters.new_id("alice"), "alice", filters.max_entries, clock.monotonic())
    filters.add(a)
    assert a.id.startswith("0x") and len(a.id) == 34
    with pytest.raises(FilterNotFound):
        filters.get(a.id, "bob")  # someone else's: as if it did not exist
    assert filters.remove(a.id, "bob") is False and len(filters) == 1
    filters.add(BlockFilter(filters.new_id("alice"), "alice", 3, clock.monotonic()))
    with pytest.raises(LimitExceeded, match="per client"):
        filters.new_id("alice")
    clock.advance(30)
    assert filters.get(a.id, "alice") is a  # polled: its ttl starts again
    clock.advance(45)
    assert filters.expire() == 1 and len(released) == 1  # the other one, not polled for 75 s
    clock.advance(61)
    with pytest.raises(FilterNotFound):
        filters.get(a.id, "alice")
    assert len(filters) == 0 and len(released) == 2


def test_a_filter_that_overflows_says_so_once_then_is_gone():
    clock, released = ManualClock(), []
    filters = registry(clock, released)
    blocks = BlockFilter(filters.new_id("a"), "a", filters.max_entries, clock.monotonic())
    filters.add(blocks)
    for n in range(4):
        filters.on_block({"hash": f"0x{n:064x}", "number": hex(n)}, False)
    with pytest.raises(FilterOverflow, match="more than 3"):
        filters.get(blocks.id, "a")
    with pytest.raises(FilterNotFound):
        filters.get(blocks.id, "a")


def log(number: int, index: int, removed: bool = False) -> bytes:
    return orjson.dumps({"blockNumber": hex(number), "blockHash": f"0x{number:064x}", "logIndex": hex(index),
                         "removed": removed})


def test_a_log_filter_keeps_its_range_and_never_returns_a_backfilled_log_twice():
    flt = LogFilter("0x1", "a", 100, 0.0, {}, 5, 9, (5, 7), 7)
    for payload in (log(4, 0), log(7, 0), log(8, 0), log(10, 0)):
        flt.send_notification(b"", payload)  # 4 and 10 are outside 5..9; 7 arrives live and in the backfill
    past = [orjson.loads(log(n, 0)) for n in (6, 5, 7)]
    first = flt.backfilled(past, head=8) + flt.take()
    assert [orjson.loads(p)["blockNumber"] for p in first] == ["0x5", "0x6", "0x7", "0x8"]
    flt.send_notification(b"", log(7, 0))  # a late copy
    flt.send_notification(b"", log(7, 0, removed=True))  # a reorg's removal does go through
    assert [orjson.loads(p)["removed"] for p in flt.take()] == [True]
