"""Race aggregator, head tracker and logs feed, with a scripted chain instead of providers (no sockets)."""

from __future__ import annotations

import asyncio
import itertools

import orjson

from livechain.clock import ManualClock
from livechain.metrics.scoring import race_factors, race_score
from livechain.metrics.store import BenchmarkStore
from livechain.subscriptions.aggregator import RaceAggregator
from livechain.subscriptions.feeds import LogsFeed
from livechain.subscriptions.heads import HeadTracker

MS = 1_000_000


def test_first_arrival_wins_and_later_arrivals_lose_by_their_margin():
    store = BenchmarkStore("c", clock=ManualClock())
    agg = RaceAggregator("newHeads", store, {})
    assert agg.race("0xa", "fast", 100 * MS)
    assert not agg.race("0xa", "slow", 130 * MS)
    assert not agg.race("0xa", "slower", 180 * MS)
    assert not agg.race("0xa", "slow", 190 * MS)  # the same provider again is no new race
    races = store.races()
    assert races["fast"]["newHeads"]["wins"] == 1
    assert races["slow"]["newHeads"]["avg_margin_ms"] == 30.0
    assert races["slower"]["newHeads"]["avg_margin_ms"] == 80.0
    assert agg.duplicates == 1


def test_seen_set_is_bounded_and_counts_silent_misses_of_subscribed_providers():
    """Providers subscribed before an event that never delivered it get a miss when it leaves the
    window; a provider that subscribed after the event does not."""
    store = BenchmarkStore("c", clock=ManualClock())
    live = {"a": 0, "b": 0, "late": 10_000 * MS}
    agg = RaceAggregator("newHeads", store, live, max_events=100, max_age=1.0)
    for i in range(1000):
        agg.race(f"0x{i}", "a", 1000 * MS + i * MS)
    assert len(agg) <= 100
    agg.expire(10**12)
    assert len(agg) == 0
    races = store.races()
    assert races["b"]["newHeads"]["missed"] == 1000
    assert "late" not in races  # subscribed after every event: never expected to have them
    assert races["a"]["newHeads"]["missed"] == 0


def test_race_score_is_the_seeds_formula():
    assert race_score(1.0, 0.0, 100) == 2.0
    assert race_score(0.5, 100.0, 10) == 0.25
    assert race_score(0.9, 50.0, 1) == 0.0  # one race proves nothing: log10(1) = 0
    assert race_score(None, 0.0, 0) == 0.0
    factors = race_factors({"a": 2.0, "b": 1.0, "new": 0.5}, {"a": 100, "b": 100, "new": 3})
    assert factors == {"a": 1.0, "b": 0.75, "new": 1.0}


# ----------------------------------------------------------------------------- a scripted chain


def block(n: int, fork: str = "", parent_fork: str | None = None) -> dict:
    parent_fork = fork if parent_fork is None else parent_fork
    return {
        "number": hex(n),
        "hash": f"0x{fork}{n:064x}"[-66:] if not fork else f"0x{fork}{n:062x}",
        "parentHash": (f"0x{parent_fork}{n - 1:062x}" if parent_fork else f"0x{n - 1:064x}") if n else "0x0",
    }


class Chain:
    """Canonical blocks by number/hash; fetches go here; counts how often."""

    def __init__(self) -> None:
        self.by_number: dict[int, dict] = {}
        self.by_hash: dict[str, dict] = {}
        self.logs: list[dict] = []
        self.fetches: list[tuple] = []
        self.fail = 0

    def add(self, b: dict) -> dict:
        self.by_number[int(b["number"], 16)] = b
        self.by_hash[b["hash"]] = b
        return b

    async def fetch(self, method: str, params: list):
        self.fetches.append((method, params))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("provider down")
        if method == "eth_getBlockByNumber":
            return self.by_number.get(int(params[0], 16))
        if method == "eth_getBlockByHash":
            return self.by_hash.get(params[0])
        if method == "eth_getLogs":
            lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            return [e for e in self.logs if lo <= int(e["blockNumber"], 16) <= hi]
        raise AssertionError(method)


class Recorder:
    def __init__(self) -> None:
        self.blocks: list[tuple[int, str, bool]] = []
        self.reorgs: list[tuple[int, list]] = []

    def on_block(self, header: dict, backfilled: bool) -> None:
        self.blocks.append((int(header["number"], 16), header["hash"], backfilled))

    def on_reorg(self, fork: int, orphaned: list) -> None:
        self.reorgs.append((fork, orphaned))


def tracker_for(chain: Chain) -> tuple[HeadTracker, Recorder, list]:
    tasks: list[asyncio.Task] = []

    def spawn(name, coro):
        task = asyncio.get_running_loop().create_task(coro, name=name)
        tasks.append(task)
        return task

    tracker = HeadTracker("c", chain.fetch, spawn=spawn)
    rec = Recorder()
    tracker.follow(rec)
    return tracker, rec, tasks


def logs_feed(tracker: HeadTracker, tasks: list, filter_: dict, fetch) -> tuple[LogsFeed, list[dict]]:
    """A logs feed on `tracker` with one client attached; returns it and the list of what the client got."""

    def spawn(name, coro):
        task = asyncio.get_running_loop().create_task(coro, name=name)
        tasks.append(task)
        return task

    store = BenchmarkStore("c", clock=ManualClock())
    feed = LogsFeed(["logs", filter_], ("logs",), store, tracker, fetch, spawn, "c/logs")
    sent: list[dict] = []

    class Sink:
        def send_notification(self, sid, payload):
            sent.append(orjson.loads(payload))

    feed.attach(Sink(), b"0x1")
    return feed, sent


async def settle(tasks):
    for _ in range(50):
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)


async def test_contiguous_heads_are_delivered_synchronously_and_duplicates_dropped():
    chain = Chain()
    tracker, rec, tasks = tracker_for(chain)
    for n in range(1, 6):
        tracker.offer(chain.add(block(n)))
    tracker.offer(chain.by_number[3])
    assert [b[0] for b in rec.blocks] == [1, 2, 3, 4, 5] and not tasks and not chain.fetches


async def test_a_gap_is_backfilled_in_order_before_the_new_head_and_retried_on_failure():
    chain = Chain()
    tracker, rec, tasks = tracker_for(chain)
    for n in range(1, 11):
        chain.add(block(n))
    tracker.offer(chain.by_number[1])
    chain.fail = 1  # the first fetch fails: retried with backoff, nothing skipped
    tracker.offer(chain.by_number[5])
    tracker.offer(chain.by_number[6])  # arrives while the backfill runs: queued behind it
    await settle(tasks)
    assert [(n, bf) for n, _, bf in rec.blocks] == [(1, False), (2, True), (3, True), (4, True), (5, False), (6, False)]


async def test_reorg_reports_orphans_newest_first_then_the_new_branch():
    chain = Chain()
    tracker, rec, tasks = tracker_for(chain)
    for n in range(1, 6):
        tracker.offer(chain.add(block(n)))
    # blocks 4' and 5' replace 4 and 5; then 6' arrives
    b4 = chain.add(block(4, fork="bb", parent_fork=""))
    b4["parentHash"] = chain.by_number[3]["hash"]
    b5 = chain.add(block(5, fork="bb"))
    b6 = chain.add(block(6, fork="bb"))
    tracker.offer(b6)
    await settle(tasks)
    assert rec.reorgs == [(3, [(5, block(5)["hash"]), (4, block(4)["hash"])])]
    assert [b[1] for b in rec.blocks[-3:]] == [b4["hash"], b5["hash"], b6["hash"]]
    assert tracker.last_number == 6 and tracker.reorgs == 1


async def test_a_reorg_just_after_start_orphans_what_is_remembered_instead_of_walking_back_forever():
    """The head stream knew one block (the head when Livechain started) when that block was replaced: the new
    branch's walk back reaches below everything remembered, so the remembered block is the orphan and the
    new branch is delivered — no retry loop fetching ever older parents."""
    chain = Chain()
    for n in range(1, 6):
        chain.add(block(n))
    tracker, rec, tasks = tracker_for(chain)
    tracker.offer(chain.by_number[5])  # the first head seen
    b5 = chain.add(block(5, fork="cc", parent_fork=""))
    b5["parentHash"] = chain.by_number[4]["hash"]
    b6 = chain.add(block(6, fork="cc"))
    tracker.offer(b6)
    await settle(tasks)
    assert rec.reorgs == [(4, [(5, block(5)["hash"])])]
    assert [b[1] for b in rec.blocks] == [block(5)["hash"], b5["hash"], b6["hash"]]
    assert len(chain.fetches) == 1  # the new block 5, and nothing older


async def test_logs_feed_removes_orphaned_logs_then_backfills_the_new_branch():
    """After a reorg: the delivered logs of orphaned blocks come back with removed: true (newest first),
    then the new branch's logs, fetched with eth_getLogs over the subscription's own filter."""
    chain = Chain()
    tracker, _, tasks = tracker_for(chain)
    feed, sent = logs_feed(tracker, tasks, {"address": ["0x" + "11" * 20]}, chain.fetch)
    feed.bind("p", "0xup", 0)
    for n in range(1, 4):
        b = chain.add(block(n))
        tracker.offer(b)
        entry = {"blockHash": b["hash"], "blockNumber": b["number"], "logIndex": "0x0", "address": "0x" + "11" * 20}
        feed.receive("p", entry, n * MS)
        feed.receive("q", entry, n * MS + 5)  # a second provider: deduplicated by the race
    assert len(sent) == 3
    new3 = chain.add(block(3, fork="cc", parent_fork=""))
    new3["parentHash"] = chain.by_number[2]["hash"]
    chain.logs = [{"blockHash": new3["hash"], "blockNumber": "0x3", "logIndex": "0x0", "address": "0x" + "11" * 20}]
    tracker.offer(new3)
    await settle(tasks)
    assert sent[3]["removed"] is True and sent[3]["blockHash"] == block(3)["hash"]
    assert sent[4]["blockHash"] == new3["hash"] and not sent[4].get("removed")
    assert len(sent) == 5
    assert chain.fetches[-1][1][0]["address"] == ["0x" + "11" * 20]


async def test_logs_backfill_after_a_long_outage_goes_in_provider_sized_ranges_and_halves_on_refusal():
    """2,400 blocks missed while no provider was subscribed: eth_getLogs in contiguous ranges of at most
    BACKFILL_SPAN blocks; a provider that refuses more than 300 blocks per query (as public nodes do) makes
    the span halve until it is accepted. Every missed log arrives once, in order."""
    chain = Chain()
    refused: list[tuple[int, int]] = []
    plain_fetch = chain.fetch

    async def limited_fetch(method: str, params: list):
        if method == "eth_getLogs":
            lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            if hi - lo + 1 > 300:
                chain.fetches.append((method, params))
                refused.append((lo, hi))
                raise ValueError("query exceeds max block range 300")
        return await plain_fetch(method, params)

    tracker, _, tasks = tracker_for(chain)
    feed, sent = logs_feed(tracker, tasks, {}, limited_fetch)
    feed.bind("p", "0xup", 0)
    tracker.offer(chain.add(block(1)))
    feed.unbind("p")  # every provider lost: what happens now must be backfilled
    for n in range(2, 2402):
        tracker.offer(chain.add(block(n)))
    chain.logs = [
        {"blockHash": chain.by_number[n]["hash"], "blockNumber": hex(n), "logIndex": "0x0", "address": "0x" + "22" * 20}
        for n in range(2, 2402, 7)
    ]
    feed.bind("p", "0xup", 0)
    tracker.offer(chain.add(block(2402)))
    await settle(tasks)
    for _ in range(500):  # the halvings' backoff sleeps add up to well under a second
        if feed._worker is not None and feed._worker.done():
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the backfill never finished: it keeps asking for ranges the provider refuses")
    ranges = [(int(p[0]["fromBlock"], 16), int(p[0]["toBlock"], 16)) for m, p in chain.fetches if m == "eth_getLogs"]
    accepted = [r for r in ranges if r not in refused]
    assert ranges[0] == (2, 1001) and refused[:2] == [(2, 1001), (2, 501)]  # 1,000 → 500 → 250 blocks
    assert all(hi - lo + 1 <= 250 for lo, hi in accepted)
    assert accepted[0][0] == 2 and accepted[-1][1] == 2402
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(accepted))  # contiguous, no overlap
    assert [int(e["blockNumber"], 16) for e in sent] == list(range(2, 2402, 7))
    assert feed.backfilled == len(sent)
