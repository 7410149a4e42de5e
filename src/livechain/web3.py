"""web3.py on an in-process Livechain: two providers, no socket hop.

    from web3 import AsyncWeb3
    from livechain.web3 import LivechainProvider, LivechainSocketProvider

    w3 = AsyncWeb3(LivechainProvider(lc, "ethereum"))               # requests and batches
    await w3.eth.get_balance(address)
    async with w3.batch_requests() as batch: ...

    async with AsyncWeb3(LivechainSocketProvider(lc, "ethereum")) as w3:   # + subscriptions
        await w3.eth.subscribe("newHeads")
        async for message in w3.socket.process_subscriptions(): ...

`LivechainProvider` is a web3.py `AsyncJSONBaseProvider` (web3.py batches only with one of those): each request
is encoded the way web3.py's HTTP provider encodes it (its JSON encoder's rules for bytes, AttributeDicts and
models) and goes through the chain's pipeline like an HTTP request. `LivechainSocketProvider` is web3.py's `PersistentConnectionProvider` — the
interface of its WebSocket and IPC providers, which `w3.eth.subscribe` requires — whose "socket" is the same
JSON-RPC session a Livechain WebSocket client gets (`clients.session.RpcSession`): subscriptions are on the
chain's raced feeds, every block once and in order. Its messages still pass through web3.py's request
processor (which polls its response cache), so for plain requests `LivechainProvider` is the cheaper one.
Neither is subject to API keys or rate limits: the embedding program is the client.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
from hexbytes import HexBytes
from pydantic import BaseModel
from web3.datastructures import AttributeDict
from web3.exceptions import PersistentConnectionClosedOK, ProviderConnectionError
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.providers.persistent import PersistentConnectionProvider
from web3.types import RPCEndpoint, RPCResponse

from livechain.clients.access import OPEN
from livechain.clients.session import RpcSession
from livechain.errors import LivechainError
from livechain.jsonrpc.messages import Invalid, parse_body
from livechain.library import Livechain

#: messages the socket provider may hold for a consumer that does not read (beyond: the session ends)
SOCKET_QUEUE = 4096


def _web3_default(value: Any) -> Any:
    """web3.py's Web3JsonEncoder rules, for orjson."""
    if isinstance(value, AttributeDict):
        return dict(value)
    if isinstance(value, HexBytes | bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _encode(rid: int, method: str, params: Any) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": rid, "method": method, "params": [] if params is None else params},
        default=_web3_default,
    )


class LivechainProvider(AsyncJSONBaseProvider):
    def __init__(self, livechain: Livechain, chain: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._livechain = livechain
        self._chain = livechain.chain(chain)
        self._ids = itertools.count(1)

    def __str__(self) -> str:
        return f"<LivechainProvider {self._chain.name}>"

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        rid = next(self._ids)
        try:
            request = parse_body(_encode(rid, method, params))
            if isinstance(request, Invalid):
                raise request.error
            answer = await self._chain.call(request)  # type: ignore[arg-type]
        except LivechainError as exc:
            return {"jsonrpc": "2.0", "id": rid, "error": exc.to_error()}  # type: ignore[typeddict-item]
        reply = answer.value()
        if reply.error is not None:
            return {"jsonrpc": "2.0", "id": rid, "error": reply.error}  # type: ignore[typeddict-item]
        return {"jsonrpc": "2.0", "id": rid, "result": reply.result}

    async def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        try:
            self._chain.check_batch(len(requests))
        except LivechainError as exc:
            return {"jsonrpc": "2.0", "id": None, "error": exc.to_error()}  # type: ignore[typeddict-item]
        return list(await asyncio.gather(*(self.make_request(method, params) for method, params in requests)))

    async def is_connected(self, show_traceback: bool = False) -> bool:
        response = await self.make_request(RPCEndpoint("eth_chainId"), [])
        if "result" in response:
            return True
        if show_traceback:
            raise ProviderConnectionError(f"Livechain chain {self._chain.name}: {response['error']['message']}")
        return False


class LivechainSocketProvider(PersistentConnectionProvider):
    def __init__(self, livechain: Livechain, chain: str, *, max_subscriptions: int = 100, **kwargs: Any) -> None:
        self._chain = livechain.chain(chain)
        self.endpoint_uri = f"livechain://{self._chain.name}"  # what web3.py logs; no URL of any provider
        super().__init__(**kwargs)
        self._max_subscriptions = max_subscriptions
        self._session: RpcSession | None = None
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._overflowed = False

    def __str__(self) -> str:
        return f"<LivechainSocketProvider {self._chain.name}>"

    async def is_connected(self, show_traceback: bool = False) -> bool:
        connected = self._session is not None and not self._session.closed
        if not connected and show_traceback:
            raise ProviderConnectionError(f"Livechain chain {self._chain.name}: not connected")
        return connected

    def _deliver(self, payload: bytes) -> None:
        if self._inbox.qsize() >= SOCKET_QUEUE:
            self._overflowed = True  # the consumer stopped reading: end the session, as a WebSocket would
            if self._session is not None:
                self._session.close()
            self._inbox.put_nowait(None)
            return
        self._inbox.put_nowait(payload)

    async def socket_send(self, request_data: bytes) -> None:
        session = self._session
        if session is None or session.closed:
            raise ProviderConnectionError(f"Livechain chain {self._chain.name}: not connected")
        session.receive(request_data)

    async def socket_recv(self) -> RPCResponse:
        payload = await self._inbox.get()
        if payload is None:
            self._inbox.put_nowait(None)
            if self._overflowed:
                raise ProviderConnectionError(
                    f"Livechain chain {self._chain.name}: the session ended, {SOCKET_QUEUE} messages were not read"
                )
            raise PersistentConnectionClosedOK(user_message="Livechain session closed")
        return orjson.loads(payload)

    async def _provider_specific_connect(self) -> None:
        self._inbox = asyncio.Queue()
        self._overflowed = False
        self._session = RpcSession(
            self._chain, self._chain.route(), OPEN, self._deliver, max_subscriptions=self._max_subscriptions,
            name=f"web3/{self._chain.name}",
        )

    async def _provider_specific_disconnect(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
            self._inbox.put_nowait(None)

    async def _provider_specific_socket_reader(self) -> RPCResponse:
        return await self.socket_recv()
