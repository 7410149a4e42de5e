"""The consensus stage: methods answered by several providers at once (`consensus:` per chain and method).

    broadcast        every eligible provider at once; the first success answers ("already known" is one: the
                     transaction is there). The others run on to their end, so the transaction reaches every
                     provider. For eth_sendRawTransaction (opt-in).
    highest / {highest: N}
                     N (3) providers at once; the highest quantity wins — a nonce from a provider that has not
                     seen the sender's latest transaction is lower. eth_getTransactionCount at latest / pending
                     (the default), eth_blockNumber (opt-in). A request about a fixed block needs one answer.
    {quorum: K}      K providers at once; the answer most give wins when it is a majority (K // 2 + 1), and the
                     providers that gave another are recorded (`Provider.disagreements`); no majority → an
                     error that says so. Opt-in: eth_call and gas estimates legitimately differ between nodes.
    first_non_null   one provider after another until one answers non-null: not here — it is the consistency
                     stage's check (a null fails over).

Requests pinned to one provider are answered by it alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from livechain.config.schema import Highest, Quorum
from livechain.errors import AllAttemptsFailed, ProviderError, QuorumFailed
from livechain.evm.errors import ErrorMeaning, classify
from livechain.evm.events import hex_number
from livechain.jsonrpc.replies import Answer, Reply
from livechain.pipeline.stage import Proceed, Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call
    from livechain.providers.provider import Provider
    from livechain.routing.forwarder import Enough

Replies = list[tuple["Provider", Reply]]
HIGHEST = 3
_BLOCK_TAGS = frozenset({"latest", "pending"})


class Together(Protocol):
    async def together(self, call: Call, count: int | None, enough: Enough) -> tuple[Replies, list[ProviderError], int]:
        """Attempts of `call` on `count` providers at once (None: every eligible one), see `Forwarder.together`."""
        ...


class Consensus(Stage):
    name = "consensus"

    def __init__(self, modes: Mapping[str, Any], view: Together) -> None:
        """`modes`: method → "broadcast" | "highest" | Highest | Quorum ("first_non_null" ones are ignored here)."""
        self._modes = {m: mode for m, mode in modes.items() if mode != "first_non_null" and mode is not False}
        self._view = view
        self.methods = frozenset(self._modes)

    async def around(self, call: Call, proceed: Proceed) -> Answer:
        if call.route.pinned is not None:
            return await proceed(call)
        mode = self._modes[call.request.method]
        if mode == "broadcast":
            return await self._broadcast(call)
        if mode == "highest" or isinstance(mode, Highest):
            if not _about_the_head(call):
                return await proceed(call)
            return await self._highest(call, HIGHEST if mode == "highest" else mode.highest)
        if isinstance(mode, Quorum):
            return await self._quorum(call, mode.quorum)
        return await proceed(call)

    async def _broadcast(self, call: Call) -> Answer:
        replies, failures, attempts = await self._view.together(call, None, lambda got: any(_landed(r) for _, r in got))
        for provider, reply in replies:
            if _landed(reply):
                return _answer(call, provider, reply, attempts)
        if replies:  # every provider refused it (nonce too low, underpriced …): the first refusal
            return _answer(call, *replies[0], attempts)
        raise AllAttemptsFailed(attempts, failures[-1] if failures else None)

    async def _highest(self, call: Call, count: int) -> Answer:
        replies, failures, attempts = await self._view.together(call, count, lambda got: len(got) >= count)
        best: tuple[Provider, Reply] | None = None
        best_value = -1
        for provider, reply in replies:
            value = hex_number(reply.result) if reply.error is None else None
            if value is not None and value > best_value:
                best, best_value = (provider, reply), value
        if best is None:
            if replies:
                return _answer(call, *replies[0], attempts)
            raise AllAttemptsFailed(attempts, failures[-1] if failures else None)
        return _answer(call, *best, attempts)

    async def _quorum(self, call: Call, size: int) -> Answer:
        majority = size // 2 + 1

        def enough(got: Replies) -> bool:
            if len(got) >= size:
                return True
            counts: dict[bytes, int] = {}
            for _, reply in got:
                key = _vote(reply)
                counts[key] = counts.get(key, 0) + 1
                if counts[key] >= majority:
                    return True
            return False

        replies, failures, attempts = await self._view.together(call, size, enough)
        votes: dict[bytes, list[tuple[Provider, Reply]]] = {}
        for provider, reply in replies:
            votes.setdefault(_vote(reply), []).append((provider, reply))
        winner = max(votes.values(), key=len, default=None)
        if winner is None:
            raise AllAttemptsFailed(attempts, failures[-1] if failures else None)
        if len(winner) < majority:
            raise QuorumFailed(size, sorted(len(v) for v in votes.values()), len(failures))
        for provider, reply in replies:
            if _vote(reply) != _vote(winner[0][1]):
                provider.disagreed(call.request.method)
        return _answer(call, *winner[0], attempts)


def _answer(call: Call, provider: Provider, reply: Reply, attempts: int) -> Answer:
    return Answer(reply.for_client(call.request.reply_id), provider.id, attempts, reply)


def _landed(reply: Reply) -> bool:
    """A transaction the provider took: its hash, or "already known"."""
    return reply.error is None or classify(reply.error, "eth_sendRawTransaction") is ErrorMeaning.ALREADY_KNOWN


def _vote(reply: Reply) -> bytes:
    if reply.error is not None:
        return b"e" + orjson.dumps([reply.error.get("code"), reply.error.get("message")])
    return b"r" + orjson.dumps(reply.result, option=orjson.OPT_SORT_KEYS)


def _about_the_head(call: Call) -> bool:
    """eth_blockNumber, or a request at latest / pending (explicit or omitted): several providers may differ."""
    method = call.request.method
    if method == "eth_blockNumber":
        return True
    params = call.request.params
    if not isinstance(params, list) or len(params) < 2:
        return True
    return params[-1] in _BLOCK_TAGS
