"""The WebSocket edge: `GET /ws/rpc/{chain}` and `/ws/rpc/{strategy}/{chain}` (key: `/…/{key}`, `X-Api-Key` or
`?key=`).

Framing only: `WsEndpoint.upgrade` resolves the route, admits the client (`clients.access`), takes a
connection slot of the client's address, and hands the connection to `server.wsconn` (handshake, frames,
back-pressure, keepalive). Every message then goes to the client's `clients.session.RpcSession` — the same
JSON-RPC session the in-process library uses — and everything the session sends goes out as a text frame.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from livechain.chains.registry import ChainRegistry
from livechain.clients.access import Access, AddressCounts
from livechain.clients.session import RpcSession
from livechain.errors import LivechainError, NoRoute, RateLimited, UnknownChain
from livechain.server.messages import Request, refuse
from livechain.server.rpc import rpc_route
from livechain.server.wsconn import WsServerConnection, WsSettings, accept_upgrade

log = logging.getLogger("livechain.server")


class WsRpc:
    """One client WebSocket carrying a JSON-RPC session (`wsconn.WsSession`)."""

    def __init__(self, endpoint: WsEndpoint, peer: str) -> None:
        self._endpoint = endpoint
        self.peer = peer
        self.session: RpcSession | None = None
        self.conn: WsServerConnection | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def subscriptions(self) -> int:
        return len(self.session.subscriptions) if self.session is not None else 0

    def send(self, payload: bytes) -> None:
        if self.conn is not None:
            self.conn.send_text(payload)

    def on_open(self, conn: WsServerConnection) -> None:
        self.conn = conn

    def on_message(self, data: bytes, binary: bool) -> None:
        # binary frames are JSON too: web3.py sends its requests that way; bytes that are not UTF-8 JSON get
        # -32700 like any other unparsable message
        if self.session is not None:
            self.session.receive(data)

    def on_close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        if code == 1008 and self.session is not None:
            log.warning("client disconnected: %s", reason, extra={"chain": self.session.chain.name, "peer": self.peer})
        if self.session is not None:
            self.session.close()
        self._endpoint.closed(self)


class WsEndpoint:
    """Accepts WebSocket upgrades on /ws/rpc/…; owns the open connections (for shutdown)."""

    def __init__(
        self,
        registry: ChainRegistry,
        settings: WsSettings,
        *,
        access: Access,
        per_address: AddressCounts,
        max_subscriptions: int,
    ) -> None:
        self.registry = registry
        self.access = access
        self.settings = settings
        self.per_address = per_address
        self.max_subscriptions = max_subscriptions
        self.sessions: set[WsRpc] = set()

    def upgrade(self, request: Request, transport: asyncio.Transport, rest: bytes) -> WsServerConnection | None:
        try:
            ws = self._admit(request)
        except LivechainError as exc:
            refuse(transport, exc)
            return None
        conn = accept_upgrade(request, transport, rest, ws, self.settings)
        if conn is None:  # the handshake itself was refused (and answered)
            self.per_address.release(ws.peer)
        else:
            self.sessions.add(ws)
        return conn

    def _admit(self, request: Request) -> WsRpc:
        parts = request.path.strip("/").split("/")  # ws, rpc, …
        found = rpc_route(parts[2:]) if parts[:2] == ["ws", "rpc"] else None
        if found is None or found[2] is not None:
            raise NoRoute("no WebSocket route; use /ws/rpc/{chain}")
        chain_key, strategy, _, path_key = found
        chain = self.registry.resolve(chain_key)
        if chain is None:
            raise UnknownChain(f"unknown chain: {chain_key[:64]}")
        route = chain.route(strategy)
        key = path_key or request.headers.get("x-api-key")
        if key is None and request.query:
            key = (parse_qs(request.query, max_num_fields=10).get("key") or [None])[-1]
        client = self.access.admit(key, request.peer, request.headers)
        if not self.per_address.acquire(request.peer):
            raise RateLimited("too many connections from this address")
        ws = WsRpc(self, request.peer)
        ws.session = RpcSession(
            chain, route, client, ws.send, max_subscriptions=self.max_subscriptions,
            name=f"ws/{chain.name}/{request.peer}", fresh="no-cache" in request.headers.get("cache-control", ""),
            session=request.headers.get("x-livechain-session"), owner=client.name or client.address or request.peer,
        )
        return ws

    def closed(self, ws: WsRpc) -> None:
        if ws in self.sessions:
            self.sessions.discard(ws)
            self.per_address.release(ws.peer)

    def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        for ws in list(self.sessions):
            if ws.conn is not None:
                ws.conn.close(code, reason)
