"""The confirm stage (integrity): an empty answer is confirmed with a second provider.

A null for a transaction, a receipt or a block that is there, or no logs where there are some, is the lie a
check of the answer alone cannot see. So an empty answer — a null from eth_getTransactionByHash,
eth_getTransactionReceipt, eth_getBlockByHash / ByNumber (a block at or below the best head),
eth_getBlockReceipts, or `[]` from eth_getLogs — is asked of another provider too. When that one has data,
the first is counted as having failed a check (`Provider.failed_check`: logged, shown, in Prometheus):

    observe    the client gets the first answer at once; the confirmation runs afterwards, off the request
               path, at most `integrity.confirm_per_second` per chain (a budget: empty answers are common)
    enforce    every empty answer is confirmed before the client gets it; the client gets the data, and the
               provider that had none is quarantined (cooled down) for `integrity.quarantine`

An empty answer confirmed empty is simply the answer. Requests pinned to one provider are not confirmed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from livechain.errors import LivechainError
from livechain.jsonrpc.replies import Answer
from livechain.pipeline.stage import Proceed, Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call

log = logging.getLogger("livechain.pipeline")

CONFIRMED = frozenset({
    "eth_getTransactionByHash", "eth_getTransactionReceipt", "eth_getBlockByHash", "eth_getBlockByNumber",
    "eth_getBlockReceipts", "eth_getLogs",
})
MAX_BACKGROUND = 4  # confirmations running at once in observe


class ConfirmView(Protocol):
    def best_head(self) -> int | None: ...

    def forward_other(self, call: Call, exclude: str) -> Any:
        """Awaitable: `call` forwarded to any provider but `exclude`."""
        ...

    def caught(self, provider: str, method: str, reason: str, quarantine: float | None) -> None:
        """`provider` answered empty where another had data."""
        ...

    def spawn(self, name: str, coro: Any) -> asyncio.Task: ...


class Confirm(Stage):
    name = "confirm"
    methods = CONFIRMED

    def __init__(
        self, view: ConfirmView, *, enforce: bool, quarantine: float, per_second: float, clock: Callable[[], float]
    ) -> None:
        self._view = view
        self._enforce = enforce
        self._quarantine = quarantine
        self._rate = per_second
        self._clock = clock
        self._tokens = per_second
        self._stamp = clock()
        self._running = 0
        self.confirmed = 0  # empty answers asked again
        self.caught_empty = 0  # ... of which another provider had data

    async def around(self, call: Call, proceed: Proceed) -> Answer:
        answer = await proceed(call)
        if call.route.pinned is not None or not answer.provider or not self._empty(call, answer):
            return answer
        if self._enforce:
            other = await self._second(call, answer.provider)
            return answer if other is None else other
        if self._running < MAX_BACKGROUND and self._take():
            self._running += 1
            self._view.spawn(f"confirm/{call.request.method}", self._background(call, answer.provider))
        return answer

    def _empty(self, call: Call, answer: Answer) -> bool:
        reply = answer.value()
        if reply.error is not None:
            return False
        result = reply.result
        if result == []:
            return call.request.method == "eth_getLogs"
        if result is not None or call.request.method == "eth_getLogs":
            return False
        if call.request.method == "eth_getBlockByNumber":  # a null for a block above the head is the truth
            best = self._view.best_head()
            ref = call.read()
            return ref is not None and ref.kind == "number" and best is not None and ref.number <= best
        return True

    def _take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def _second(self, call: Call, first: str) -> Answer | None:
        """Another provider's answer when it has data (the first is then counted), else None."""
        self.confirmed += 1
        try:
            other = await self._view.forward_other(call, first)
        except LivechainError:
            return None  # nobody else could answer: the first answer stands
        if self._empty(call, other):
            return None
        self.caught_empty += 1
        self._view.caught(first, call.request.method, "empty answer where another provider has data",
                          self._quarantine if self._enforce else None)
        return other

    async def _background(self, call: Call, first: str) -> None:
        try:
            await self._second(call, first)
        except Exception:  # never let a confirmation's failure escape its task
            log.exception("confirming an empty answer failed", extra={"method": call.request.method})
        finally:
            self._running -= 1
