"""The filters stage: stateful filters served by Livechain itself, over every entry point (HTTP, WebSocket,
batches, the library), never forwarded — a provider's filter would be lost on failover.

    eth_newFilter(criteria)            a LogFilter on the chain's raced logs feed for (address, topics)
    eth_newBlockFilter()               a BlockFilter on the chain's head stream
    eth_newPendingTransactionFilter()  a PendingFilter on the chain's raced newPendingTransactions feed
    eth_getFilterChanges(id)           what arrived since the last poll (a log filter's first poll also
                                       fetches its past range: see `filters.filter`)
    eth_getFilterLogs(id)              every log of a log filter's criteria: an eth_getLogs through the chain
    eth_uninstallFilter(id)            true when the caller had that filter

Semantics are geth's (and its "filter not found" error, which makes clients recreate their filters); ids are
bound to the caller (`Call.owner`). A poll that has nothing to fetch is answered synchronously (`before`);
the others go on to `around`, which never proceeds to the providers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from livechain.errors import FilterNotFound, InvalidParams, LimitExceeded, ProviderError
from livechain.evm.blocks import block_number
from livechain.evm.events import LOGS as LOGS_KIND
from livechain.evm.events import PENDING as PENDING_KIND
from livechain.evm.methods import FILTER_METHODS
from livechain.filters.filter import BlockFilter, Filter, LogFilter, PendingFilter
from livechain.filters.registry import Filters
from livechain.jsonrpc.messages import Request, dumps, result_response
from livechain.jsonrpc.replies import Answer
from livechain.pipeline.stage import Proceed, Stage
from livechain.subscriptions.params import canonical

if TYPE_CHECKING:
    from livechain.pipeline.call import Call

_HEAD = b'{"jsonrpc":"2.0","id":'
_OPEN = b',"result":['
_TAIL = b"]}"


class FiltersView(Protocol):
    def head(self) -> int | None:
        """The head stream's last canonical block."""
        ...

    def max_range(self) -> int:
        """The chain's `max_block_range` (0: no limit)."""
        ...

    def subscribe_now(self, params: Any, sink: Any, sid: bytes) -> Any:
        """A subscription on the chain's feed, live now (raises SubscriptionUnavailable when it cannot be)."""
        ...

    def subscribe(self, params: Any, sink: Any, sid: bytes) -> Awaitable[Any]:
        """A subscription on the chain's feed once a provider subscription is live for it (or its HTTP
        fallback runs); SubscriptionUnavailable after a few seconds when neither can be had."""
        ...

    def call(self, request: Request) -> Awaitable[Answer]:
        """A request through the chain's pipeline."""
        ...


def _id_param(params: Any, method: str) -> object:
    if not isinstance(params, list) or len(params) != 1:
        raise InvalidParams(f"{method} takes one filter id")
    return params[0]


def _answer(body: bytes) -> Answer:
    return Answer(body, "", 0, None, "bypass")


def _result(call: Call, result: Any) -> Answer:
    return _answer(result_response(call.request.reply_id, result))


def _entries(rid: Any, entries: list[bytes]) -> Answer:
    return _answer(b"".join((_HEAD, dumps(rid), _OPEN, b",".join(entries), _TAIL)))


class FilterStage(Stage):
    name = "filters"
    methods = FILTER_METHODS

    def __init__(self, filters: Filters, view: FiltersView) -> None:
        self.filters = filters
        self._view = view
        self._sync: dict[str, Callable[[Call], Answer | None]] = {
            "eth_newBlockFilter": self._new_blocks,
            "eth_newFilter": self._new_logs,
            "eth_getFilterChanges": self._changes,
            "eth_uninstallFilter": self._uninstall,
        }

    # ------------------------------------------------------------------ synchronous answers

    def before(self, call: Call) -> Answer | None:
        answer = self._sync.get(call.request.method)
        return answer(call) if answer is not None else None

    def _new_blocks(self, call: Call) -> Answer:
        owner = call.owner or ""
        flt = BlockFilter(self.filters.new_id(owner), owner, self.filters.max_entries, self.filters.now())
        self.filters.add(flt)
        return _result(call, flt.id)

    async def _new_pending(self, call: Call) -> Answer:
        """Answered once the chain's pending feed is live on a provider (it has no HTTP fallback)."""
        owner = call.owner or ""
        flt = PendingFilter(self.filters.new_id(owner), owner, self.filters.max_entries, self.filters.now())
        flt.subscription = await self._view.subscribe([PENDING_KIND], flt, flt.id.encode())
        self.filters.add(flt)
        return _result(call, flt.id)

    def _new_logs(self, call: Call) -> Answer:
        params = call.request.params
        if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], dict):
            raise InvalidParams("eth_newFilter takes one filter object")
        raw = params[0]
        unknown = set(raw) - {"address", "topics", "fromBlock", "toBlock", "blockHash"}
        if unknown:
            raise InvalidParams(f"eth_newFilter: unknown filter field(s): {', '.join(sorted(unknown))[:100]}")
        live = {k: raw[k] for k in ("address", "topics") if raw.get(k) is not None}
        _, upstream, _ = canonical([LOGS_KIND, live])  # validates address and topics
        head = self._view.head()
        criteria: dict = dict(upstream[1])
        missed: tuple[int, int] | str | None = None
        low = high = None
        if raw.get("blockHash") is not None:
            if raw.get("fromBlock") is not None or raw.get("toBlock") is not None:
                raise InvalidParams("eth_newFilter: blockHash cannot be combined with fromBlock/toBlock")
            block_hash = raw["blockHash"]
            if not isinstance(block_hash, str) or len(block_hash) != 66 or not block_hash.startswith("0x"):
                raise InvalidParams("eth_newFilter: blockHash must be a 32-byte hex hash")
            criteria["blockHash"] = missed = block_hash.lower()
        else:
            low = self._bound(raw.get("fromBlock"), "fromBlock")
            high = self._bound(raw.get("toBlock"), "toBlock")
            if low is not None and high is not None and low > high:
                raise InvalidParams("eth_newFilter: fromBlock is above toBlock")
            for key in ("fromBlock", "toBlock"):
                if raw.get(key) is not None:
                    criteria[key] = raw[key]
            if low is not None and head is not None and low <= head:
                end = head if high is None else min(high, head)
                limit = self._view.max_range()
                if limit and end - low + 1 > limit:
                    raise LimitExceeded(f"eth_newFilter: fromBlock is {end - low + 1} blocks back; at most "
                                        f"{limit} blocks (max_block_range) can be fetched for a filter")
                missed = (low, end)
        owner = call.owner or ""
        flt = LogFilter(self.filters.new_id(owner), owner, self.filters.max_entries, self.filters.now(), criteria,
                        low, high, missed, head)
        if flt.live:
            flt.subscription = self._view.subscribe_now([LOGS_KIND, live], flt, flt.id.encode())
        self.filters.add(flt)
        return _result(call, flt.id)

    @staticmethod
    def _bound(value: Any, name: str) -> int | None:
        """A numeric bound; None for an open one (absent, latest, pending, safe, finalized)."""
        if value is None or value in ("latest", "pending", "safe", "finalized"):
            return None
        number = block_number(value, None)
        if number is None:
            raise InvalidParams(f"eth_newFilter: {name} must be a block number (0x-hex) or a block tag")
        return number

    def _changes(self, call: Call) -> Answer | None:
        flt = self.filters.get(_id_param(call.request.params, "eth_getFilterChanges"), call.owner or "")
        if isinstance(flt, LogFilter):
            if flt.missed is not None:
                return None  # its past range is fetched first: `around`
            flt.forget(self._view.head())
        return _entries(call.request.reply_id, flt.take())

    def _uninstall(self, call: Call) -> Answer:
        removed = self.filters.remove(_id_param(call.request.params, "eth_uninstallFilter"), call.owner or "")
        return _result(call, removed)

    # ------------------------------------------------------------------ what needs the providers

    async def around(self, call: Call, proceed: Proceed) -> Answer:
        """eth_newPendingTransactionFilter, eth_getFilterLogs, and a log filter's first poll (an eth_getLogs
        through the chain)."""
        if call.request.method == "eth_newPendingTransactionFilter":
            return await self._new_pending(call)
        rid = call.request.reply_id
        flt = self.filters.get(_id_param(call.request.params, call.request.method), call.owner or "")
        if not isinstance(flt, LogFilter):
            raise FilterNotFound()  # geth: eth_getFilterLogs of a block or pending filter
        if call.request.method == "eth_getFilterLogs":
            answer = await self._view.call(Request("eth_getLogs", [flt.criteria], rid))
            return Answer(answer.value().for_client(rid), answer.provider, answer.attempts, None, answer.cache)
        missed = flt.missed
        if missed is not None:
            query = {k: v for k, v in flt.criteria.items() if k in ("address", "topics")}
            if isinstance(missed, str):
                query["blockHash"] = missed
            else:
                query.update(fromBlock=hex(missed[0]), toBlock=hex(missed[1]))
            reply = (await self._view.call(Request("eth_getLogs", [query], rid))).value()
            if reply.error is not None or not isinstance(reply.result, list):
                raise ProviderError("the filter's past logs could not be read; poll again", provider="")
            if flt.missed is missed:  # not fetched meanwhile by a concurrent poll
                return _entries(rid, flt.backfilled(reply.result, self._view.head()) + flt.take())
        return _entries(rid, flt.take())


def release(flt: Filter, unsubscribe: Callable[[Any], None]) -> None:
    """End what `flt` subscribed to on the chain's feeds."""
    if flt.subscription is not None:
        unsubscribe(flt.subscription)
        flt.subscription = None

