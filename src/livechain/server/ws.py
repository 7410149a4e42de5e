"""JSON-RPC over WebSocket: `GET /ws/rpc/{chain}` and `/ws/rpc/{strategy}/{chain}`.

One `RpcSession` per client connection. Requests (single and batch) are forwarded with the same
selection, breakers and failover as HTTP; `eth_subscribe` / `eth_unsubscribe` attach the client to the
chain's shared, raced feeds. Subscription ids are Livechain's own (random, stable for the connection).
The reply to eth_subscribe is always sent before the subscription's first notification.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from livechain.chains.chain import Chain
from livechain.chains.registry import ChainRegistry
from livechain.errors import InvalidParams, LimitExceeded, LivechainError, MethodNotFound
from livechain.jsonrpc.messages import Invalid, Request, error_body, parse_body, result_response
from livechain.routing.strategies import Strategy
from livechain.server.access import Access, client_address
from livechain.server.http import REASONS
from livechain.server.http import Request as HttpRequest
from livechain.server.routes import rpc_route
from livechain.server.rpc import run_one
from livechain.server.wsconn import WsServerConnection, WsSettings, accept_upgrade
from livechain.subscriptions.feeds import Feed

log = logging.getLogger("livechain.server")

MAX_INFLIGHT = 256  # concurrent requests per connection
_LOCAL = frozenset({"eth_subscribe", "eth_unsubscribe"})
_NOTE_HEAD = b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
_NOTE_MID = b'","result":'
_NOTE_TAIL = b"}}"


class RpcSession:
    def __init__(
        self,
        endpoint: WsEndpoint,
        chain: Chain,
        strategy: Strategy,
        settings: WsSettings,
        peer: str,
        charge: Callable[[int], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._charge = charge
        self.chain = chain
        self.strategy = strategy
        self.settings = settings
        self.peer = peer
        self.conn: WsServerConnection | None = None
        self.subs: dict[bytes, Feed] = {}
        self._tasks: set[asyncio.Task] = set()
        self.max_subscriptions = endpoint.max_subscriptions
        self.close_code: int | None = None
        self.close_reason = ""

    # ------------------------------------------------------------------ WsSession

    def on_open(self, conn: WsServerConnection) -> None:
        self.conn = conn
        self.endpoint.sessions.add(self)

    def on_close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        if code == 1008:
            log.warning("client disconnected: %s", reason, extra={"chain": self.chain.name, "peer": self.peer})
        self.endpoint.closed(self)
        for sid, feed in list(self.subs.items()):
            self.chain.subscriptions.detach(feed, self, sid)
        self.subs.clear()
        for task in list(self._tasks):
            task.cancel()

    def on_message(self, data: bytes, binary: bool) -> None:
        # binary frames are accepted as JSON too: web3.py sends its requests that way; bytes that are not
        # UTF-8 JSON get -32700 like any other unparsable message
        try:
            parsed = parse_body(data)
        except LivechainError as exc:
            self._send(error_body(exc))
            return
        if isinstance(parsed, Invalid):
            self._send(error_body(parsed.error, parsed.id))
            return
        if self._charge is not None:
            try:
                self._charge(len(parsed) if isinstance(parsed, list) else 1)
            except LivechainError as exc:
                self._send(error_body(exc, parsed.reply_id if isinstance(parsed, Request) else None))
                return
        if isinstance(parsed, Request) and parsed.method in _LOCAL:
            self._send_opt(self._answer_local(parsed))  # nothing to await: answered in order, no task
            return
        if len(self._tasks) >= MAX_INFLIGHT:
            self._refuse(parsed, LimitExceeded(f"more than {MAX_INFLIGHT} requests in flight on this connection"))
            return
        if isinstance(parsed, Request):
            self._spawn(self._single(parsed))
        else:
            limit = self.chain.config.batch_limit
            if len(parsed) > limit:
                self._send(error_body(LimitExceeded(f"batch of {len(parsed)} requests exceeds this chain's limit of {limit}")))
                return
            self._spawn(self._batch(parsed))

    def _refuse(self, parsed: Request | list[Request | Invalid], exc: LivechainError) -> None:
        """One error per request that has an id, so a client can match (and retry) each; null when none has."""
        if isinstance(parsed, Request):
            self._send(error_body(exc, parsed.reply_id))
            return
        ids = [item.id for item in parsed if not (isinstance(item, Request) and item.notification)]
        if ids:
            self._send(b"[" + b",".join(error_body(exc, rid) for rid in ids) + b"]")
        else:
            self._send(error_body(exc))

    # ------------------------------------------------------------------ requests

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"ws/{self.chain.name}/{self.peer}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _single(self, request: Request) -> None:
        self._send_opt(await self._answer(request))

    async def _batch(self, items: list[Request | Invalid]) -> None:
        async def one(item: Request | Invalid) -> bytes | None:
            if isinstance(item, Invalid):
                return error_body(item.error, item.id)
            return await self._answer(item)

        replies = [r for r in await asyncio.gather(*(one(i) for i in items)) if r is not None]
        if replies:
            self._send(b"[" + b",".join(replies) + b"]")

    async def _answer(self, request: Request) -> bytes | None:
        """The reply bytes for one request (None for a notification)."""
        if request.method in _LOCAL:
            return self._answer_local(request)
        reply = (await run_one(self.chain, request, self.strategy, None, over_http=False)).body
        return None if request.notification else reply

    def _answer_local(self, request: Request) -> bytes | None:
        """eth_subscribe / eth_unsubscribe: answered by Livechain itself, synchronously."""
        try:
            if request.method == "eth_subscribe":
                reply = self._subscribe(request)
            else:
                reply = self._unsubscribe(request)
        except LivechainError as exc:
            reply = error_body(exc, request.reply_id)
        except Exception:
            log.exception("unexpected error in %s", request.method, extra={"chain": self.chain.name})
            reply = error_body(LivechainError("internal error"), request.reply_id)
        return None if request.notification else reply

    def _subscribe(self, request: Request) -> bytes:
        if self.chain.policy.denies_subscriptions:
            raise MethodNotFound("eth_subscribe is denied on this chain")
        if len(self.subs) >= self.max_subscriptions:
            raise LimitExceeded(f"at most {self.max_subscriptions} subscriptions per connection")
        sid = ("0x" + secrets.token_hex(16)).encode()
        feed = self.chain.subscriptions.attach(request.params, self, sid)
        self.subs[sid] = feed
        # sent before any notification: attach() and this send happen in the same step of the loop
        return result_response(request.reply_id, sid.decode())

    def _unsubscribe(self, request: Request) -> bytes:
        params = request.params
        if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], str):
            raise InvalidParams("eth_unsubscribe takes one subscription id")
        sid = params[0].encode()
        feed = self.subs.pop(sid, None)
        if feed is not None:
            self.chain.subscriptions.detach(feed, self, sid)
        return result_response(request.reply_id, feed is not None)

    # ------------------------------------------------------------------ sending

    def _send_opt(self, payload: bytes | None) -> None:
        if payload is not None:
            self._send(payload)

    def _send(self, payload: bytes) -> None:
        if self.conn is not None:
            self.conn.send_text(payload)

    def send_notification(self, sid: bytes, result_json: bytes) -> None:
        conn = self.conn
        if conn is not None:
            conn.send_text(b"".join((_NOTE_HEAD, sid, _NOTE_MID, result_json, _NOTE_TAIL)))


class WsEndpoint:
    """Accepts WebSocket upgrades on /ws/rpc/..., owns the open sessions (for shutdown and per-IP limits)."""

    def __init__(self, registry: ChainRegistry, settings: WsSettings, *, max_subscriptions: int,
                 max_connections_per_ip: int, access: Access | None = None) -> None:
        self.registry = registry
        self.access = access
        self.settings = settings
        self.max_subscriptions = max_subscriptions
        self.max_connections_per_ip = max_connections_per_ip
        self.sessions: set[RpcSession] = set()
        self.per_ip: dict[str, int] = {}

    def upgrade(self, request: HttpRequest, transport: asyncio.Transport, rest: bytes) -> WsServerConnection | None:
        parts = request.path.strip("/").split("/")  # ws, rpc, …
        route = rpc_route(parts[2:]) if parts[:2] == ["ws", "rpc"] else None
        if route is None or route[2] is not None:
            return self._refuse(transport, 404, "no WebSocket route; use /ws/rpc/{chain}")
        chain_key, strategy_name, _, path_key = route
        chain = self.registry.resolve(chain_key)
        if chain is None:
            return self._refuse(transport, 404, f"unknown chain: {chain_key[:64]}")
        access = self.access
        charge = None
        if access is not None and (access.required or access.config.per_ip.rate > 0):
            query = parse_qs(request.query, max_num_fields=10)
            key = path_key or request.headers.get("x-api-key") or (query.get("key") or [None])[-1]
            try:
                name = access.identify(key)
            except LivechainError as exc:
                return self._refuse(transport, exc.http_status, exc.message)
            address = client_address(request.peer, request.headers, access.config.trust_forwarded_for)
            charge = lambda n: access.charge(name, address, n)  # noqa: E731
        if self.per_ip.get(request.peer, 0) >= self.max_connections_per_ip:
            return self._refuse(transport, 429, "too many WebSocket connections from this address")
        strategy = chain.strategies[strategy_name] if strategy_name else chain.strategy
        session = RpcSession(self, chain, strategy, self.settings, request.peer, charge)
        conn = accept_upgrade(request, transport, rest, session, self.settings)
        if conn is not None:
            self.per_ip[request.peer] = self.per_ip.get(request.peer, 0) + 1
        return conn

    def closed(self, session: RpcSession) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            n = self.per_ip.get(session.peer, 1) - 1
            if n <= 0:
                self.per_ip.pop(session.peer, None)
            else:
                self.per_ip[session.peer] = n

    @staticmethod
    def _refuse(transport: asyncio.Transport, status: int, message: str) -> None:
        body = error_body(_Refused(status, message))
        transport.write(
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body
        )
        transport.close()
        return None

    def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        for session in list(self.sessions):
            if session.conn is not None:
                session.conn.close(code, reason)


class _Refused(LivechainError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.code = -32001 if status == 404 else -32005

