"""The logs stage: an eth_getLogs wider than providers accept is split into ranges they do accept, fetched
with bounded concurrency and merged in order — the client gets one correct answer instead of an error.

    1. The range (`fromBlock`..`toBlock`, tags from the best head; a blockHash query is one block) goes whole to
       the providers that accept it (`max_logs_range`, or what their refusals taught; unknown = accepted).
    2. When none does — or all that were asked refused it (which teaches their limit) — it is split into chunks
       of the largest accepted range, for the providers that allow splitting (`split_logs`); a provider with
       splitting off never receives a range over its limit.
    3. A chunk refused for too many results ("query returned more than 10000 results") is halved, down to one
       block; any other error of a chunk is the client's answer.

The client-facing `max_block_range` (the limits stage) stays the guard against abusive queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from livechain.errors import LimitExceeded, NoProviderAvailable
from livechain.evm.blocks import block_number
from livechain.evm.errors import ErrorMeaning, classify
from livechain.jsonrpc.messages import Request, result_response
from livechain.jsonrpc.replies import Answer, Reply
from livechain.pipeline.stage import Proceed, Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call

Accept = Callable[[Any], bool]
PARALLEL = 4  # chunks in flight at once, per client request


class LogsView(Protocol):
    def best_head(self) -> int | None: ...

    def logs_plan(self, span: int) -> tuple[Accept | None, tuple[int, Accept] | None]:
        """(providers that accept `span` blocks whole, or None when none does; the chunk size and the
        providers a split may use, or None when none allows splitting)."""
        ...


def _refused(reply: Reply) -> ErrorMeaning | None:
    if reply.error is None:
        return None
    meaning = classify(reply.error, "eth_getLogs")
    return meaning if meaning in (ErrorMeaning.LOGS_RANGE, ErrorMeaning.TOO_MANY_RESULTS) else None


class LogsSplit(Stage):
    name = "logs_split"
    methods = frozenset({"eth_getLogs"})

    def __init__(self, view: LogsView) -> None:
        self._view = view

    async def around(self, call: Call, proceed: Proceed) -> Answer:
        params = call.request.params
        if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], dict) or "blockHash" in params[0]:
            return await proceed(call)
        best = self._view.best_head()
        low = block_number(params[0].get("fromBlock"), best)
        high = block_number(params[0].get("toBlock"), best)
        if low is None or high is None or high - low < 1:
            return await proceed(call)
        span = high - low + 1
        whole, chunks = self._view.logs_plan(span)
        answer = None
        if whole is not None:
            call.accept = whole
            try:
                answer = await proceed(call)
            except NoProviderAvailable:  # those that accept it whole are down: split for the others
                answer = None
            else:
                if _refused(answer.value()) is None:
                    return answer
                whole, chunks = self._view.logs_plan(span)  # the refusals taught limits
        if chunks is None:
            if answer is not None:
                return answer
            raise LimitExceeded(f"no provider accepts an eth_getLogs range of {span} blocks, and none may split it")
        return await self._split(call, proceed, params[0], low, high, *chunks)

    async def _split(
        self, call: Call, proceed: Proceed, flt: dict, low: int, high: int, size: int, accept: Accept
    ) -> Answer:
        gate = asyncio.Semaphore(PARALLEL)
        providers: set[str] = set()
        attempts = 0

        async def fetch(a: int, b: int) -> list | Reply:
            nonlocal attempts
            async with gate:
                part = call.__class__(Request("eth_getLogs", [{**flt, "fromBlock": hex(a), "toBlock": hex(b)}], 1),
                                      call.route, call.client)
                part.accept = accept
                answer = await proceed(part)
            attempts += answer.attempts
            if answer.provider:
                providers.add(answer.provider)
            reply = answer.value()
            if _refused(reply) is not None and b > a:  # too many results here: halve it
                middle = (a + b) // 2
                left, right = await asyncio.gather(fetch(a, middle), fetch(middle + 1, b))
                if isinstance(left, Reply):
                    return left
                return right if isinstance(right, Reply) else left + right
            if reply.error is not None or not isinstance(reply.result, list):
                return reply
            return reply.result

        parts = await asyncio.gather(*(fetch(a, min(a + size - 1, high)) for a in range(low, high + 1, size)))
        rid = call.request.reply_id
        for part in parts:
            if isinstance(part, Reply):  # a chunk's error is the client's answer
                return Answer(part.for_client(rid), ",".join(sorted(providers)), attempts, part)
        merged = [entry for part in parts for entry in part]  # type: ignore[union-attr]
        body = result_response(rid, merged)
        return Answer(body, ",".join(sorted(providers)), attempts, Reply(body, rid, merged, None))
