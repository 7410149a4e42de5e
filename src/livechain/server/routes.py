"""Which handler answers which path. The route table of the whole web edge.

    POST /rpc/{chain}                      JSON-RPC, the chain's strategy
    POST /rpc/{strategy}/{chain}           JSON-RPC, a named strategy
    POST /rpc/provider/{provider}/{chain}  JSON-RPC, pinned to one provider
    GET  /ws/rpc/{chain}, /ws/rpc/{strategy}/{chain}   WebSocket JSON-RPC (upgrade)
    GET  /api/health | /api/chains | /api/chains/{chain}/...     JSON API
    GET  /metrics                          Prometheus
    POST /admin/reload                     reload the config (admin token)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import orjson

from livechain.chains.registry import ChainRegistry
from livechain.chains.snapshots import Snapshots
from livechain.config.store import ConfigStore
from livechain.errors import LivechainError, UnknownChain
from livechain.events import EventBus
from livechain.jsonrpc.messages import error_body
from livechain.routing.strategies import STRATEGIES
from livechain.server import api
from livechain.server.access import Access, client_address
from livechain.server.http import Request, Response
from livechain.server.prometheus import MetricsEndpoint
from livechain.server.rpc import RpcEndpoint

log = logging.getLogger("livechain.server")

JSON = "application/json"
CORS_ALLOW_HEADERS = "content-type, authorization, x-api-key"


def json_response(value: object, status: int = 200) -> Response:
    return Response(status, orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


class Routes:
    def __init__(
        self,
        registry: ChainRegistry,
        config_store: ConfigStore,
        events: EventBus,
        snapshots: Snapshots,
        *,
        admin_token: str | None,
        reload: Callable[[], dict] | None = None,
    ) -> None:
        self.registry = registry
        self.snapshots = snapshots
        self.config_store = config_store
        self.events = events
        self.admin_token = admin_token or None
        self.rpc = RpcEndpoint(registry)
        self.access = Access(config_store.current.auth)
        self.metrics = MetricsEndpoint(registry, events, config_store.current.region)
        self._reload = reload
        #: WebSocket upgrade handler, set by the app once the WS endpoint exists
        self.ws_upgrade: Callable[[Request, asyncio.Transport, bytes], asyncio.Protocol | None] | None = None
        #: more handlers (the dashboard): each returns a Response, or None when the path is not theirs
        self.extra: list[Callable[[Request], Awaitable[Response | None]]] = []

    # ------------------------------------------------------------------ Dispatcher protocol

    async def dispatch(self, request: Request) -> Response:
        path = request.path
        method = request.method
        if method == "OPTIONS":
            response = Response(204)
        elif path.startswith("/rpc/"):
            response = await self._rpc(request) if method == "POST" else self._not_allowed("POST")
        elif (extra := await self._extra(request)) is not None:
            response = extra
        elif path.startswith("/api/"):
            response = await self._api(request) if method in ("GET", "HEAD") else self._not_allowed("GET")
        elif path == "/metrics":
            response = Response(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/admin/reload":
            response = self._admin_reload(request) if method == "POST" else self._not_allowed("POST")
        elif path in ("/", ""):
            response = json_response({"name": "livechain", "rpc": "/rpc/{chain}", "ws": "/ws/rpc/{chain}",
                                      "api": "/api/chains", "health": "/api/health", "metrics": "/metrics",
                                      "dashboard": "/dashboard"})
        else:
            response = self.error_response(404, f"no route for {path[:100]}")
        self._cors(request, response)
        return response

    async def _extra(self, request: Request) -> Response | None:
        for handler in self.extra:
            response = await handler(request)
            if response is not None:
                return response
        return None

    def upgrade(self, request: Request, transport: asyncio.Transport, rest: bytes) -> asyncio.Protocol | None:
        if self.ws_upgrade is None or not request.path.startswith("/ws/"):
            return None
        return self.ws_upgrade(request, transport, rest)

    def error_response(self, status: int, message: str) -> Response:
        code = -32600 if status < 500 else -32603
        if status in (413, 429):  # a limit, like the rate limits' -32005
            code = -32005
        body = error_body(_EdgeError(code, message))
        return Response(status, body, close=status in (400, 408, 413, 431))

    # ------------------------------------------------------------------ handlers

    async def _rpc(self, request: Request) -> Response:
        route = rpc_route(request.path[5:].strip("/").split("/"))
        if route is None:
            exc = UnknownChain(f"no JSON-RPC route {request.path[:100]}; use /rpc/{{chain}}")
            return Response(404, error_body(exc))
        chain, strategy, provider, path_key = route
        access = self.access
        charge = None
        if access.required or access.config.per_ip.rate > 0:
            try:
                name = access.identify(path_key or request.headers.get("x-api-key"))
            except LivechainError as exc:
                return Response(exc.http_status, error_body(exc))
            address = client_address(request.peer, request.headers, access.config.trust_forwarded_for)
            charge = lambda n: access.charge(name, address, n)  # noqa: E731
        return await self.rpc.handle(chain, request.body, strategy=strategy, provider_id=provider, charge=charge)

    async def _api(self, request: Request) -> Response:
        parts = request.path[5:].strip("/").split("/")
        query = {k: v[-1] for k, v in parse_qs(request.query, max_num_fields=20).items()}
        if parts == ["health"]:
            return json_response(api.health(self.registry))
        if parts == ["chains"]:
            return json_response(api.chains(self.registry, self.snapshots))
        if parts == ["events"]:
            return json_response(api.events(self.events, _int(query.get("since"), 0), _int(query.get("limit"), 200, 1000)))
        if len(parts) >= 2 and parts[0] == "chains":
            chain = self.registry.resolve(parts[1])
            if chain is None:
                return json_response({"error": f"unknown chain {parts[1][:64]}"}, 404)
            rest = parts[2:]
            if not rest:
                return json_response(chain.snapshot())
            if rest == ["providers"]:
                return json_response(api.providers(chain))
            region = query.get("region") or None
            store = self.snapshots.store_for(chain.name, region)
            if store is None:
                return json_response({"error": f"no data for region {str(region)[:64]}"}, 404)
            live = store is chain.store
            if rest == ["leaderboard"]:
                return json_response(api.leaderboard(
                    chain, store, live=live, event=query.get("event", "newHeads"), method=query.get("method") or None
                ))
            if rest == ["methods"]:
                return json_response(api.methods(chain, store))
            if rest == ["history"]:
                kind = query.get("kind", "rpc")
                if kind not in ("rpc", "race"):
                    return json_response({"error": "kind must be rpc or race"}, 400)
                since = _float(query.get("since"), time.time() - 3600)
                key = query.get("method") if kind == "rpc" else query.get("event")
                return json_response(await api.history(
                    chain, self.snapshots, store, kind=kind, since=since, provider=query.get("provider") or None,
                    key=key or None,
                ))
        return json_response({"error": f"no API route {request.path[:100]}"}, 404)

    def _admin_reload(self, request: Request) -> Response:
        denied = self._check_admin(request)
        if denied is not None:
            return denied
        if self._reload is None:
            return json_response({"ok": False, "error": "reload is not available"}, 503)
        result = self._reload()
        return json_response(result, 200 if result.get("ok") else 400)

    def authorized(self, request: Request) -> bool:
        """Does the request carry the admin token (Authorization: Bearer …, or X-Admin-Token)?"""
        return self._check_admin(request) is None

    def _check_admin(self, request: Request) -> Response | None:
        if self.admin_token is None:
            return json_response({"error": "admin endpoints are disabled: set LIVECHAIN_ADMIN_TOKEN"}, 403)
        supplied = request.headers.get("x-admin-token") or ""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            supplied = auth[7:].strip()
        if not hmac.compare_digest(supplied.encode(), self.admin_token.encode()):
            return json_response({"error": "admin token required"}, 401)
        return None

    def _not_allowed(self, allowed: str) -> Response:
        response = self.error_response(405, f"method not allowed; use {allowed}")
        response.headers.append(("allow", f"{allowed}, OPTIONS"))
        return response

    def _cors(self, request: Request, response: Response) -> None:
        origin = request.headers.get("origin")
        if origin is None:
            return
        allowed = self.config_store.current.server.cors_origins
        if "*" in allowed:
            response.headers.append(("access-control-allow-origin", "*"))
        elif origin in allowed:
            response.headers.append(("access-control-allow-origin", origin))
            response.headers.append(("vary", "origin"))
        else:
            return
        if request.method == "OPTIONS":
            response.headers.append(("access-control-allow-methods", "POST, GET, OPTIONS"))
            response.headers.append(("access-control-allow-headers", CORS_ALLOW_HEADERS))
            response.headers.append(("access-control-max-age", "600"))
        else:
            response.headers.append(("access-control-expose-headers", "x-livechain-provider, x-livechain-attempts"))


def rpc_route(parts: list[str]) -> tuple[str, str | None, str | None, str | None] | None:
    """(chain, strategy, provider, key) of /rpc/… path segments:
    {chain}[/{key}], {strategy}/{chain}[/{key}], provider/{id}/{chain}[/{key}]."""
    if not parts or not parts[0]:
        return None
    if parts[0] == "provider" and len(parts) in (3, 4):
        return parts[2], None, parts[1], parts[3] if len(parts) == 4 else None
    if parts[0] in STRATEGIES and len(parts) in (2, 3):
        return parts[1], parts[0], None, parts[2] if len(parts) == 3 else None
    if len(parts) in (1, 2):
        return parts[0], None, None, parts[1] if len(parts) == 2 else None
    return None


def _int(value: str | None, default: int, high: int | None = None) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        number = default
    return min(number, high) if high is not None else number


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


class _EdgeError(LivechainError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

