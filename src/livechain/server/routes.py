"""Which handler answers which path: the route table of the whole web edge.

    POST /rpc/{chain}, /rpc/{strategy}/{chain}, /rpc/provider/{id}/{chain} [/{key}]   JSON-RPC (server.rpc)
    GET  /ws/rpc/{chain}, /ws/rpc/{strategy}/{chain} [/{key}]                         WebSocket (server.ws)
    GET  /api/health | /api/chains | /api/events | /api/chains/{chain}/…              JSON API (server.api)
    GET  /api/live                                          the dashboard's live push (server.live)
    GET  /dashboard, /dashboard/{file}                      the dashboard (server.static)
    GET  /metrics                                           Prometheus (server.prometheus)
    POST /admin/reload                                      reload the config (server.admin)
    …    plugged-in routes (the demo's /api/simulator, /api/faults: livechain.demo.controls)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from livechain.clients.access import OPEN, Access
from livechain.errors import LivechainError, MethodNotAllowed, NoRoute, UnknownChain
from livechain.server.admin import Admin
from livechain.server.api import Api
from livechain.server.live import LiveHub
from livechain.server.messages import Request, Response, error_response, json_response
from livechain.server.plugins import Plugin
from livechain.server.prometheus import MetricsEndpoint
from livechain.server.rpc import Later, RpcEndpoint, rpc_route
from livechain.server.static import StaticFiles
from livechain.server.ws import WsEndpoint

CORS_ALLOW_HEADERS = "content-type, authorization, x-api-key, cache-control, x-livechain-session, x-livechain-explain"
_INDEX = {"name": "livechain", "rpc": "/rpc/{chain}", "ws": "/ws/rpc/{chain}", "api": "/api/chains",
          "health": "/api/health", "metrics": "/metrics", "dashboard": "/dashboard"}


class Routes:
    def __init__(
        self,
        *,
        rpc: RpcEndpoint,
        access: Access,
        api: Api,
        metrics: MetricsEndpoint,
        admin: Admin,
        static: StaticFiles,
        live: LiveHub,
        ws: WsEndpoint,
        plugins: Sequence[Plugin],
        cors_origins: Callable[[], tuple[str, ...]],
    ) -> None:
        self.rpc = rpc
        self.access = access
        self.api = api
        self.metrics = metrics
        self.admin = admin
        self.static = static
        self.live = live
        self.ws = ws
        self.plugins = tuple(plugins)
        self._cors_origins = cors_origins

    # ------------------------------------------------------------------ Dispatcher protocol (server.http)

    async def dispatch(self, request: Request) -> Response:
        path = request.path
        method = request.method
        if method == "OPTIONS":
            response = Response(204)
        elif path.startswith("/rpc/"):
            if method == "POST":
                now = self._rpc(request)
                response = now if type(now) is Response else await now()  # type: ignore[operator]
            else:
                response = self._not_allowed("POST")
        elif path == "/dashboard" or path.startswith("/dashboard/"):
            response = self.static.handle(request)
        elif path == "/api/live":
            response = self.live.open(request) if method == "GET" else self._not_allowed("GET")
        elif (plugged := await self._plugins(request)) is not None:
            response = plugged
        elif path.startswith("/api/"):
            response = await self.api.handle(request) if method in ("GET", "HEAD") else self._not_allowed("GET")
        elif path == "/metrics":
            response = Response(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/admin/reload":
            response = self.admin.reload(request) if method == "POST" else self._not_allowed("POST")
        elif path in ("/", ""):
            response = json_response(_INDEX)
        else:
            response = error_response(NoRoute(f"no route for {path[:100]}"))
        self._cors(request, response)
        return response

    def answer_now(self, request: Request) -> Response | Later | None:
        """A JSON-RPC POST as far as it goes without waiting (`RpcEndpoint.handle_now`): the response (a cache
        hit, a refusal), or a function whose awaitable is the rest; None for every other request."""
        if request.method != "POST" or not request.path.startswith("/rpc/"):
            return None
        now = self._rpc(request)
        if type(now) is Response:
            self._cors(request, now)
            return now
        if "origin" not in request.headers:
            return now

        async def later() -> Response:
            response = await now()  # type: ignore[operator]
            self._cors(request, response)
            return response

        return later

    def upgrade(self, request: Request, transport: asyncio.Transport, rest: bytes) -> asyncio.Protocol | None:
        if not request.path.startswith("/ws/"):
            return None
        return self.ws.upgrade(request, transport, rest)

    # ------------------------------------------------------------------ handlers

    def _rpc(self, request: Request) -> Response | Later:
        route = rpc_route(request.path[5:].strip("/").split("/"))
        if route is None:
            return error_response(UnknownChain(f"no JSON-RPC route {request.path[:100]}; use /rpc/{{chain}}"))
        chain, strategy, provider, path_key = route
        access = self.access
        if access.open:
            client = OPEN
        else:
            try:
                client = access.admit(path_key or request.headers.get("x-api-key"), request.peer, request.headers)
            except LivechainError as exc:
                return error_response(exc)
        headers = request.headers
        fresh = "no-cache" in headers.get("cache-control", "")
        return self.rpc.handle_now(chain, request.body, strategy=strategy, provider_id=provider, client=client,
                                   fresh=fresh, session=headers.get("x-livechain-session"), peer=request.peer,
                                   explain=headers.get("x-livechain-explain", "") in ("1", "true"))

    async def _plugins(self, request: Request) -> Response | None:
        for plugin in self.plugins:
            response = await plugin.handle(request)
            if response is not None:
                return response
        return None

    @staticmethod
    def _not_allowed(allowed: str) -> Response:
        return error_response(MethodNotAllowed(allowed))

    def _cors(self, request: Request, response: Response) -> None:
        origin = request.headers.get("origin")
        if origin is None:
            return
        allowed = self._cors_origins()
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
            response.headers.append(
                ("access-control-expose-headers",
                 "x-livechain-provider, x-livechain-attempts, x-livechain-cache, x-livechain-explain")
            )
