"""The consistency machinery alone: trusted heads, client sessions, the consistency stage's routing and
checks, the consensus stage's modes, the forwarder's plan — real Provider objects with an injected clock."""

from __future__ import annotations

import orjson
import pytest

from livechain.clock import ManualClock
from livechain.config import ConfigError, parse_config
from livechain.config.schema import Highest, Quorum
from livechain.errors import AnswerInvalid, AnswerLagging, QuorumFailed
from livechain.events import EventBus
from livechain.jsonrpc.messages import Request, result_response
from livechain.jsonrpc.replies import Answer, parse_reply
from livechain.outcomes import Outcome, Verdict
from livechain.pipeline import Call, Route
from livechain.pipeline.consensus import Consensus
from livechain.pipeline.consistency import Consistency
from livechain.pipeline.sessions import SessionFloor, Sessions
from livechain.routing.forwarder import Forwarder
from livechain.routing.strategies import Priority
from tests.unit.test_strategies import pool_of

ROUTE = Route(Priority())


def call(method: str, params: object = None, client: str | None = None) -> Call:
    return Call(Request(method, [] if params is None else params, 1), ROUTE, client)


def reply(result: object):
    return parse_reply(result_response(1, result))


# ---------------------------------------------------------------------------------------------- trusted heads


@pytest.mark.parametrize(("heads", "best"), [
    ((100,), 100),  # alone: trusted
    ((100, 98, 99), 100),  # within reach of the others
    ((100_000, 100, 99), 100),  # far ahead of every other: not believed
    ((100_000, 100), 100),  # two far apart: the lower (the least claim)
    ((164, 100), 164),  # exactly max_head_lead (64) ahead: within reach
    ((165, 100), 100),
])
def test_the_best_head_is_the_highest_head_another_provider_confirms_within_max_head_lead(heads, best):
    pool, _ = pool_of(len(heads))
    for provider, head in zip(pool.providers, heads, strict=True):
        pool.observe_head(provider, head)
    assert pool.best_head == best


def test_a_head_goes_down_only_from_a_poll_sent_after_it_arrived():
    pool, clock = pool_of(1)
    p = pool.providers[0]
    pool.observe_head(p, 50)
    sent_before = clock.monotonic()
    clock.advance(1)
    pool.observe_head(p, 60)  # pushed (WebSocket)
    pool.observe_head(p, 55, since=sent_before)  # a poll that was out while 60 arrived: stale, ignored
    assert p.head == 60
    pool.observe_head(p, 40)  # pushed and lower: ignored
    assert p.head == 60
    clock.advance(1)
    pool.observe_head(p, 40, since=clock.monotonic())  # a later poll: the head really is lower
    assert p.head == 40 and pool.best_head == 40


# ---------------------------------------------------------------------------------------------- sessions


def test_sessions_keep_the_highest_block_given_forget_the_idle_and_stay_bounded():
    clock = ManualClock()
    sessions = Sessions(2, 10.0, clock.monotonic)
    sessions.given("a", 5)
    sessions.given("a", 3)
    assert sessions.floor("a") == 5  # never falls
    sessions.given("b", 7)
    sessions.given("c", 9)  # over the bound: the least recently active ("a") is forgotten
    assert sessions.floor("a") is None and sessions.floor("b") == 7 and len(sessions) == 2
    clock.advance(11)
    assert sessions.floor("b") is None  # idle too long


class HeadsOf:
    def __init__(self, heads: dict[str, int]) -> None:
        self.heads = heads

    def provider_head(self, provider: str) -> int | None:
        return self.heads.get(provider)


def test_an_eth_block_number_below_the_clients_floor_is_raised_to_it_and_answers_raise_the_floor():
    sessions = Sessions(10, 60.0, ManualClock().monotonic)
    stage = SessionFloor(sessions, HeadsOf({"p": 30}), frozenset({"eth_blockNumber", "eth_getBalance"}))
    body = result_response(1, "0x14")
    got = stage.after(call("eth_blockNumber", client="a"), Answer(body, "p", 1, parse_reply(body)))
    assert sessions.floor("a") == 20 and got.body == body
    sessions.given("a", 25)
    got = stage.after(call("eth_blockNumber", client="a"), Answer(body, "p", 1, parse_reply(body)))
    assert orjson.loads(got.body)["result"] == "0x19"  # raised to 25
    read = call("eth_getBalance", ["0x" + "00" * 20, "latest"], client="a")
    read.need = 40
    stage.after(read, Answer(result_response(1, "0x0"), "p", 1, reply("0x0")))
    assert sessions.floor("a") == 30  # the block it could have been given: the answering provider's head


# ---------------------------------------------------------------------------------------------- consistency


class View:
    def __init__(self, best: int | None, lead: int = 64) -> None:
        self.best = best
        self.lead = lead
        self.seen: list[tuple[str, int]] = []

    def best_head(self) -> int | None:
        return self.best

    def canonical_number(self, block_hash: str) -> int | None:
        return 7 if block_hash == "0x" + "77" * 32 else None

    def canonical_hash(self, number: int) -> str | None:
        return None

    def heads_known(self) -> int:
        return 3

    def observed(self, provider, number: int) -> None:
        self.seen.append((provider.id, number))


def providers_at(*heads: int):
    pool, _ = pool_of(len(heads))
    for p, head in zip(pool.providers, heads, strict=True):
        p.head = head
    return list(pool.providers)


@pytest.mark.parametrize(("method", "params", "need"), [
    ("eth_getBalance", ["0x" + "00" * 20, "0x5"], 5),  # a block by number
    ("eth_getBalance", ["0x" + "00" * 20, "latest"], 10),  # latest: the best head (freshness)
    ("eth_getBalance", ["0x" + "00" * 20], None),  # unreadable (no block): nothing to route by
    ("eth_blockNumber", [], 10),
    ("eth_getBlockByHash", ["0x" + "77" * 32, False], 7),  # a hash Livechain placed
    ("eth_getBlockByHash", ["0x" + "66" * 32, False], None),
    ("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x8"}], 8),  # a range's end
    ("eth_chainId", [], None),
])
def test_a_request_prefers_providers_that_reached_the_block_it_names(method, params, need):
    stage = Consistency(View(10), None)
    c = call(method, params)
    stage.before(c)
    assert c.need == need
    low, high, liar = providers_at(4, 10, 500)
    if need is not None:
        assert [c.prefer(p) for p in (low, high, liar)] == [need <= 4, True, False]  # a head past the lead: never


def test_a_session_floor_above_the_best_head_raises_what_a_latest_read_needs():
    sessions = Sessions(10, 60.0, ManualClock().monotonic)
    sessions.given("a", 12)
    stage = Consistency(View(10), sessions)
    c = call("eth_getBalance", ["0x" + "00" * 20, "latest"], client="a")
    stage.before(c)
    assert c.need == 12
    other = call("eth_getBalance", ["0x" + "00" * 20, "latest"], client="b")
    stage.before(other)
    assert other.need == 10  # another session: its own floor (none)


def test_empty_answers_from_behind_are_lag_and_far_future_heads_are_invalid():
    view = View(10)
    stage = Consistency(view, None)
    behind, at_head = providers_at(8, 10)
    c = call("eth_getTransactionReceipt", ["0x" + "ab" * 32])
    stage.before(c)
    assert isinstance(stage.judge(c, reply(None), behind), AnswerLagging)
    assert stage.judge(c, reply(None), at_head) is None  # at the head, null is the answer
    logs = call("eth_getLogs", [{"fromBlock": "0x9", "toBlock": "0x9"}])
    stage.before(logs)
    assert isinstance(stage.judge(logs, reply([]), behind), AnswerLagging)
    assert stage.judge(logs, reply([]), at_head) is None
    beyond = call("eth_getBlockByNumber", ["0x20", False])  # nobody has reached block 32: null is the truth
    stage.before(beyond)
    assert stage.judge(beyond, reply(None), at_head) is None
    head = call("eth_blockNumber")
    stage.before(head)
    assert isinstance(stage.judge(head, reply(hex(10 + 65)), at_head), AnswerInvalid)
    assert stage.judge(head, reply(hex(11)), at_head) is None and view.seen == [(at_head.id, 11)]


def test_first_non_null_fails_over_on_any_null():
    stage = Consistency(View(10), None, first_non_null=frozenset({"eth_getTransactionByHash"}))
    c = call("eth_getTransactionByHash", ["0x" + "ab" * 32])
    stage.before(c)
    _, at_head = providers_at(8, 10)
    assert isinstance(stage.judge(c, reply(None), at_head), AnswerLagging)


def test_an_integrity_failure_is_counted_in_observe_and_rejected_and_quarantined_in_enforce():
    def verify(method, params, result, canonical):
        return "block hash is not the hash of its header"

    for enforce in (False, True):
        stage = Consistency(View(10), None, verify=verify, enforce=enforce, quarantine=30.0)
        provider = providers_at(10)[0]
        c = call("eth_getBlockByNumber", ["0x5", False])
        stage.before(c)
        rejected = stage.judge(c, reply({"number": "0x5", "hash": "0x" + "00" * 32}), provider)
        assert provider.integrity_failures == {"eth_getBlockByNumber": 1}
        assert isinstance(rejected, AnswerInvalid) is enforce
        assert provider.cooldown_until > 0 if enforce else provider.cooldown_until == 0


def test_lagging_and_invalid_outcomes_fail_over_lagging_never_trips_the_breaker():
    assert Outcome.LAGGING.fails_over and Outcome.LAGGING.verdict is Verdict.SUCCESS and Outcome.LAGGING.scored
    assert Outcome.INVALID.fails_over and Outcome.INVALID.verdict is Verdict.FAILURE


# ---------------------------------------------------------------------------------------------- consensus


class Fleet:
    """`together` over fixed replies, with real providers (the consensus stage's view)."""

    def __init__(self, results: list[object]) -> None:
        self.providers = providers_at(*([10] * len(results)))
        self.results = results
        self.asked: list[int | None] = []

    async def together(self, c, count, enough):
        self.asked.append(count)
        got = []
        for provider, result in list(zip(self.providers, self.results, strict=True))[: count or len(self.results)]:
            got.append((provider, reply(result) if not isinstance(result, dict) or "code" not in result
                        else parse_reply(orjson.dumps({"jsonrpc": "2.0", "id": 1, "error": result}))))
            if enough(got):
                break
        return got, [], len(got)


async def proceed(c):
    raise AssertionError("not forwarded alone")


async def test_highest_takes_the_highest_quantity_of_several_and_only_about_the_head():
    fleet = Fleet(["0x3", "0x5", "0x4"])
    stage = Consensus({"eth_getTransactionCount": "highest"}, fleet)
    got = await stage.around(call("eth_getTransactionCount", ["0x" + "00" * 20, "pending"]), proceed)
    assert orjson.loads(got.body)["result"] == "0x5" and fleet.asked == [3]

    async def alone(c):
        return Answer(result_response(1, "0x1"), "p", 1, reply("0x1"))

    fixed = await stage.around(call("eth_getTransactionCount", ["0x" + "00" * 20, "0x5"]), alone)
    assert orjson.loads(fixed.body)["result"] == "0x1"  # a fixed block: one answer suffices
    two = Consensus({"eth_blockNumber": Highest(highest=2)}, Fleet(["0x3", "0x5", "0x9"]))
    assert orjson.loads((await two.around(call("eth_blockNumber"), proceed)).body)["result"] == "0x5"


async def test_quorum_takes_the_majority_records_who_disagreed_and_refuses_a_split():
    fleet = Fleet([{"a": 1}, {"a": 2}, {"a": 1}])
    stage = Consensus({"eth_call": Quorum(quorum=3)}, fleet)
    got = await stage.around(call("eth_call", [{"to": "0x" + "00" * 20}, "latest"]), proceed)
    assert orjson.loads(got.body)["result"] == {"a": 1}
    assert fleet.providers[1].disagreements == {"eth_call": 1} and fleet.providers[0].disagreements == {}
    split = Consensus({"eth_call": Quorum(quorum=3)}, Fleet(["0x1", "0x2", "0x3"]))
    with pytest.raises(QuorumFailed) as caught:
        await split.around(call("eth_call", [{"to": "0x" + "00" * 20}, "latest"]), proceed)
    assert caught.value.data == {"asked": 3, "votes": [1, 1, 1], "failed": 0}


async def test_broadcast_answers_with_the_first_provider_that_took_the_transaction():
    known = {"code": -32000, "message": "already known"}
    refused = {"code": -32000, "message": "nonce too low"}
    stage = Consensus({"eth_sendRawTransaction": "broadcast"}, Fleet([refused, known, "0xab"]))
    got = await stage.around(call("eth_sendRawTransaction", ["0x02"]), proceed)
    assert orjson.loads(got.body)["error"]["message"] == "already known"  # taken: the fixes stage makes it the hash
    everyone_refused = Consensus({"eth_sendRawTransaction": "broadcast"}, Fleet([refused, refused]))
    got = await everyone_refused.around(call("eth_sendRawTransaction", ["0x02"]), proceed)
    assert orjson.loads(got.body)["error"]["message"] == "nonce too low"


def test_the_plan_puts_preferred_providers_first_and_the_others_after():
    pool, clock = pool_of(3)
    for p, head in zip(pool.providers, (10, 8, 10), strict=True):
        pool.observe_head(p, head)
    forwarder = Forwarder(pool, EventBus(), clock)
    plan = forwarder.plan("eth_getBalance", Priority(), prefer=lambda p: p.head == 10)
    assert [p.head for p in plan] == [10, 10, 8]


@pytest.mark.parametrize("bad", ["{quorum: 1}", "sometimes", "{highest: 99}", "{quorum: 2, highest: 2}"])
def test_a_bad_consensus_mode_is_a_config_error_at_its_path(bad):
    text = ("chains:\n  dev:\n    chain_id: 1\n    consensus: {eth_call: " + bad + "}\n"
            "    providers: [{id: p, http_url: 'http://127.0.0.1:9/'}]\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert "chains.dev.consensus.eth_call" in str(caught.value)
