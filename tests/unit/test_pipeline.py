"""The request pipeline and its stages, each alone: no sockets, no providers (the forwarder is a stub here,
the one place a fake stands in — its own behaviour is tested against anvil)."""

from __future__ import annotations

import logging

import orjson
import pytest

from livechain.errors import AllAttemptsFailed, InternalError, LimitExceeded, MethodNotFound
from livechain.evm.fixes import Floor, transaction_hash
from livechain.evm.methods import MethodPolicy
from livechain.jsonrpc.messages import Request, result_response
from livechain.jsonrpc.replies import Answer, Reply, parse_reply
from livechain.metrics.traffic import Traffic
from livechain.pipeline import Call, Pipeline, Route, Stage
from livechain.pipeline.fixes import AlreadyKnown, BlockNumberFloor
from livechain.pipeline.limits import LogsRange
from livechain.pipeline.policy import Policy
from livechain.pipeline.record import Record
from livechain.routing.strategies import Priority

ROUTE = Route(Priority())
SIGNED = "0x02f86b827a6980843b9aca00847735940082520894" + "11" * 20 + "80c0"


def call(method: str, params: object = None, rid: object = 1) -> Call:
    return Call(Request(method, [] if params is None else params, rid), ROUTE)


def answer(result: object, rid: object = 1, attempts: int = 1, provider: str = "p0") -> Answer:
    body = result_response(rid, result)
    return Answer(body, provider, attempts, parse_reply(body))


def error_answer(code: int, message: str, attempts: int = 1) -> Answer:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}})
    return Answer(body, "p1", attempts, parse_reply(body))


class Recorder(Stage):
    """A stage that notes when its hooks run, and optionally answers."""

    def __init__(self, name: str, log: list, answers: Answer | None = None, methods=None) -> None:
        self.name = name
        self.log = log
        self.answers = answers
        self.methods = methods

    def before(self, call: Call) -> Answer | None:
        self.log.append(f"before {self.name}")
        return self.answers

    def after(self, call: Call, given: Answer) -> Answer:
        self.log.append(f"after {self.name}")
        return given


def pipeline(stages: list[Stage], log: list | None = None, result: object = "0x1", traffic: Traffic | None = None):
    async def forward(c: Call) -> Answer:
        if log is not None:
            log.append("forward")
        if isinstance(result, Exception):
            raise result
        return answer(result, c.request.reply_id)

    return Pipeline(stages, forward, Record("c", traffic or Traffic()))


# ---------------------------------------------------------------------------------------------- the pipeline


async def test_stages_run_in_order_around_the_forwarder_and_after_hooks_unwind_in_reverse():
    log: list[str] = []
    p = pipeline([Recorder("a", log), Recorder("b", log)], log)
    await p.run(call("eth_chainId"))
    assert log == ["before a", "before b", "forward", "after b", "after a"]
    assert p.describe() == ["a", "b", "forward"]


async def test_a_stage_that_answers_skips_the_forwarder_and_only_earlier_stages_see_the_answer():
    log: list[str] = []
    cached = answer("0xcafe", provider="")
    p = pipeline([Recorder("a", log), Recorder("cache", log, answers=cached), Recorder("c", log)], log)
    got = await p.run(call("eth_chainId"))
    assert got is cached
    assert log == ["before a", "before cache", "after a"]


async def test_a_stage_applies_only_to_its_methods():
    log: list[str] = []
    p = pipeline([Recorder("logs-only", log, methods=frozenset({"eth_getLogs"})), Recorder("all", log)], log)
    await p.run(call("eth_chainId"))
    assert log == ["before all", "forward", "after all"]
    log.clear()
    await p.run(call("eth_getLogs", [{}]))
    assert log == ["before logs-only", "before all", "forward", "after all", "after logs-only"]


async def test_every_call_is_recorded_as_client_traffic_and_a_routing_failure_is_logged(caplog):
    traffic = Traffic()
    ok = pipeline([], traffic=traffic)
    await ok.run(call("eth_chainId"))
    failing = pipeline([], result=AllAttemptsFailed(3, None), traffic=traffic)
    with caplog.at_level(logging.WARNING, logger="livechain.pipeline"), pytest.raises(AllAttemptsFailed):
        await failing.run(call("eth_chainId"))
    assert (traffic.total_requests, traffic.total_errors) == (2, 1)
    assert "all 3 attempt(s) failed" in caplog.text


async def test_a_bug_in_a_stage_leaves_as_internal_error_with_its_traceback_in_the_log(caplog):
    class Broken(Stage):
        name = "broken"

        def before(self, call: Call) -> None:
            raise KeyError("a bug")

    traffic = Traffic()
    with caplog.at_level(logging.ERROR, logger="livechain.pipeline"), pytest.raises(InternalError) as caught:
        await pipeline([Broken()], traffic=traffic).run(call("eth_chainId"))
    assert caught.value.message == "internal error" and caught.value.__cause__ is None
    assert "KeyError: 'a bug'" in caplog.text and traffic.total_errors == 1


# ---------------------------------------------------------------------------------------------- policy


async def test_policy_refuses_methods_the_chain_does_not_serve_and_says_why():
    """The verdict is taken per method when the plan is compiled: the stage applies only to refused methods."""
    stage = Policy("dev", MethodPolicy(allow=["anvil_mine"], deny=["eth_getProof"]))
    assert not stage.applies("eth_chainId") and not stage.applies("anvil_mine")
    p = pipeline([stage])
    assert (await p.run(call("anvil_mine"))).reply.result == "0x1"
    for method, why in [("eth_sign", "does not exist"), ("eth_getProof", "does not exist"),
                        ("eth_subscribe", "/ws/rpc/dev"), ("eth_unsubscribe", "/ws/rpc/dev")]:
        assert stage.applies(method)
        with pytest.raises(MethodNotFound) as caught:
            await p.run(call(method))
        assert why in caught.value.message, method


# ---------------------------------------------------------------------------------------------- limits


def test_the_logs_range_limit_counts_tags_from_the_best_head_and_zero_disables_it():
    head = {"n": 1000}
    stage = LogsRange(100, lambda: head["n"])
    assert stage.applies("eth_getLogs") and not stage.applies("eth_call")
    assert stage.before(call("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x64"}])) is None  # 100 blocks
    with pytest.raises(LimitExceeded) as caught:
        stage.before(call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}]))
    assert caught.value.data == {"limit": 100, "requested": 1001}
    assert stage.before(call("eth_getLogs", [{"blockHash": "0x" + "ab" * 32}])) is None
    assert LogsRange(0, lambda: head["n"]).before(call("eth_getLogs", [{"fromBlock": "0x0"}])) is None


# ---------------------------------------------------------------------------------------------- fixes


def test_block_number_never_goes_backwards_and_other_answers_pass_untouched():
    floor = Floor()
    stage = BlockNumberFloor(floor)
    first = answer("0x10")
    assert stage.after(call("eth_blockNumber"), first) is first
    lower = stage.after(call("eth_blockNumber", rid="x"), answer("0xe", rid="x", attempts=2))
    assert orjson.loads(lower.body) == {"jsonrpc": "2.0", "id": "x", "result": "0x10"}
    assert lower.reply.result == "0x10" and lower.attempts == 2 and lower.provider == "p0"
    error = error_answer(-32000, "boom")
    assert stage.after(call("eth_blockNumber"), error) is error
    assert floor.highest == 16
    assert Floor().raise_to_floor("not a number") is None


def test_already_known_after_a_failover_is_the_transactions_hash():
    stage = AlreadyKnown()
    tx_hash = transaction_hash([SIGNED])
    assert tx_hash is not None and len(tx_hash) == 66
    fixed = stage.after(call("eth_sendRawTransaction", [SIGNED]), error_answer(-32000, "already known", attempts=2))
    assert fixed.reply == Reply(fixed.body, 1, tx_hash, None)
    first_attempt = error_answer(-32000, "already known", attempts=1)  # nothing was sent before: an answer
    assert stage.after(call("eth_sendRawTransaction", [SIGNED]), first_attempt) is first_attempt
    other = error_answer(-32000, "nonce too low", attempts=2)
    assert stage.after(call("eth_sendRawTransaction", [SIGNED]), other) is other
    assert transaction_hash(["0xzz"]) is None and transaction_hash([]) is None
