"""The coalescing stage: identical requests in flight at the same time share one upstream attempt.

Identical = same chain, method and normalized params (`call.key` from the cache stage, else
`evm.requests.plain_key`), whatever strategy routes them. The first caller forwards; the others wait for its
answer and each gets it with its own id ("coalesced"); an error is shared like a result. One caller going away
cancels nothing of the others: when the first is cancelled while others wait, one of them forwards again.
Never coalesced:
eth_sendRawTransaction (each client's transaction is its own), requests pinned to one provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from livechain.errors import LivechainError
from livechain.evm.methods import SEND_RAW_TRANSACTION
from livechain.evm.requests import plain_key
from livechain.jsonrpc.replies import Answer
from livechain.pipeline.stage import Proceed, Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call

_ABANDONED = object()  # the first caller went away: a waiting one forwards instead


class _Shared:
    """A request in flight. Its future exists only once a second caller waits (most requests have none)."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future | None = None

    def wait(self) -> asyncio.Future:
        if self.future is None:
            self.future = asyncio.get_running_loop().create_future()
        return self.future

    def settle(self, outcome: object) -> None:
        if self.future is not None:
            self.future.set_result(outcome)


class Coalesce(Stage):
    name = "coalesce"

    def __init__(self, count: Callable[[str, str], None] | None = None) -> None:
        """`count(method, "coalesced")` for every request that shared another's attempt."""
        self._inflight: dict[bytes, _Shared] = {}
        self._count = count

    def applies(self, method: str) -> bool:
        return method != SEND_RAW_TRANSACTION

    async def around(self, call: Call, proceed: Proceed) -> Answer:
        if call.route.pinned is not None:
            return await proceed(call)
        key = call.key or plain_key(call.request.method, call.request.params)
        if key is None:
            return await proceed(call)
        inflight = self._inflight
        while True:
            shared = inflight.get(key)
            if shared is None:
                return await self._first(call, key, proceed)
            outcome = await asyncio.shield(shared.wait())  # this caller's cancellation must not cancel the shared one
            if outcome is _ABANDONED:
                continue
            if isinstance(outcome, LivechainError):
                raise outcome
            if self._count is not None:
                self._count(call.request.method, "coalesced")
            reply = outcome.value()
            return Answer(reply.for_client(call.request.reply_id), outcome.provider, outcome.attempts, reply,
                          "coalesced")

    async def _first(self, call: Call, key: bytes, proceed: Proceed) -> Answer:
        shared = self._inflight[key] = _Shared()
        try:
            answer = await proceed(call)
        except LivechainError as exc:
            shared.settle(exc)
            raise
        except BaseException:
            shared.settle(_ABANDONED)  # cancelled (or a bug): whoever waits forwards by itself
            raise
        finally:
            if self._inflight.get(key) is shared:
                del self._inflight[key]
        shared.settle(answer)
        return answer
