"""The fixes stages: replies a provider gave that a client must never see as they are (Ethereum facts in
`livechain.evm.fixes`).

    BlockNumberFloor     eth_blockNumber never goes backwards for a chain's clients
    AlreadyKnown         eth_sendRawTransaction that failed over: a later provider's "already known" means an
                         earlier attempt delivered the transaction → the transaction's hash
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from livechain.evm.errors import ErrorMeaning, classify
from livechain.evm.fixes import Floor, transaction_hash
from livechain.evm.methods import SEND_RAW_TRANSACTION
from livechain.jsonrpc.messages import result_response
from livechain.jsonrpc.replies import Answer, Reply
from livechain.pipeline.stage import Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call


def _with_result(call: Call, answer: Answer, result: str) -> Answer:
    rid = call.request.reply_id
    body = result_response(rid, result)
    return Answer(body, answer.provider, answer.attempts, Reply(body, rid, result, None), answer.cache)


class BlockNumberFloor(Stage):
    name = "fixes/block_number_floor"
    methods = frozenset({"eth_blockNumber"})

    def __init__(self, floor: Floor | None = None) -> None:
        self.floor = floor or Floor()  # kept across config reloads by the chain

    def after(self, call: Call, answer: Answer) -> Answer:
        reply = answer.value()  # a cache hit carries no decoded reply
        if reply.error is not None:
            return answer
        raised = self.floor.raise_to_floor(reply.result)
        return answer if raised is None else _with_result(call, answer, raised)


class AlreadyKnown(Stage):
    name = "fixes/already_known"
    methods = frozenset({SEND_RAW_TRANSACTION})

    def after(self, call: Call, answer: Answer) -> Answer:
        reply = answer.reply
        if answer.attempts < 2 or reply is None or reply.error is None:
            return answer
        if classify(reply.error) is not ErrorMeaning.ALREADY_KNOWN:
            return answer
        tx_hash = transaction_hash(call.request.params)
        return answer if tx_hash is None else _with_result(call, answer, tx_hash)
