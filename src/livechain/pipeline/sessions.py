"""Per-client consistency: the highest block each client of a chain was given, so that nothing it is served
later is from below it — the chain never goes backwards across one client's own calls.

`Sessions` keeps the floors; the consistency stage routes a client's reads at latest to providers at or above
its floor (and fails over from answers below it); the `SessionFloor` stage — before the cache, so that its
answers count too — raises the floor with every answer and raises an eth_blockNumber below it to it.

A client is what `Call.client` names: an X-Livechain-Session value (scoped by the API key, if any), a
WebSocket connection, an API key, or the client's address when access control is configured. State is
bounded: at most `max` clients (the least recently active forgotten first), and a client silent for `idle`
seconds is forgotten — it then starts again from the chain's best head, which is above anything it saw.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from livechain.evm.events import hex_number
from livechain.jsonrpc.messages import result_response
from livechain.jsonrpc.replies import Answer
from livechain.pipeline.stage import Stage

if TYPE_CHECKING:
    from livechain.pipeline.call import Call


class Sessions:
    __slots__ = ("_clock", "_floors", "idle", "max")

    def __init__(self, max: int, idle: float, clock: Callable[[], float]) -> None:
        self.max = max
        self.idle = idle
        self._clock = clock
        self._floors: OrderedDict[str, list] = OrderedDict()  # client → [highest block given, last active]

    def configure(self, max: int, idle: float) -> None:
        self.max, self.idle = max, idle
        while len(self._floors) > max:
            self._floors.popitem(last=False)

    def floor(self, client: str) -> int | None:
        """The highest block `client` was given, None when it is new (or was forgotten)."""
        entry = self._floors.get(client)
        if entry is None:
            return None
        if self._clock() - entry[1] > self.idle:
            del self._floors[client]
            return None
        return entry[0]

    def given(self, client: str, number: int) -> None:
        """`client` was given block `number` (its floor rises to it; it never falls)."""
        floors = self._floors
        now = self._clock()
        entry = floors.get(client)
        if entry is None:
            floors[client] = [number, now]
            if len(floors) > self.max:
                floors.popitem(last=False)
            return
        if number > entry[0]:
            entry[0] = number
        entry[1] = now
        floors.move_to_end(client)

    def __len__(self) -> int:
        return len(self._floors)


class HeadsView(Protocol):
    def provider_head(self, provider: str) -> int | None: ...


class SessionFloor(Stage):
    name = "sessions"

    def __init__(self, sessions: Sessions, view: HeadsView, methods: frozenset[str]) -> None:
        self._sessions = sessions
        self._view = view
        self.methods = methods

    def after(self, call: Call, answer: Answer) -> Answer:
        client = call.client
        if client is None:
            return answer
        reply = answer.value() if answer.reply is None else answer.reply
        if reply.error is not None:
            return answer
        result: Any = reply.result
        method = call.request.method
        sessions = self._sessions
        given: int | None = None
        if method == "eth_blockNumber":
            given = hex_number(result)
            floor = sessions.floor(client)
            if given is not None and floor is not None and given < floor:  # every provider lagged: raise it
                return Answer(result_response(call.request.reply_id, hex(floor)), answer.provider, answer.attempts,
                              None, answer.cache)
        elif result is None:
            return answer
        elif method == "eth_getBlockByNumber" and type(result) is dict:
            given = hex_number(result.get("number"))
        elif call.need is not None:  # the block the consistency stage asked the provider to have reached
            head = self._view.provider_head(answer.provider) if answer.provider else None
            given = call.need if head is None else min(call.need, head)
        if given is not None:
            sessions.given(client, given)
        return answer
