"""The web edge of one Livechain: everything that listens on a socket, built from the config in one place.

    WebEdge.start(host, port)   listen (HTTP/1.1 with WebSocket upgrades) → the port
    WebEdge.adopt(config)       a reloaded config: keys, rate limits, body and connection limits, timeouts
    WebEdge.stop(grace)         stop accepting, close idle connections, close WebSockets with 1001, end the
                                live push and the plugins, let requests in flight finish within `grace`

It owns the connection tracker, client access (`clients.access`), the route table and its handlers. The
chains are reached only through the registry's `Chain` facades.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from livechain.cache.store import MemoryStore
from livechain.chains.registry import ChainRegistry
from livechain.chains.snapshots import Snapshots
from livechain.clients.access import Access, AddressCounts
from livechain.config.schema import Config
from livechain.events import EventBus
from livechain.server.admin import Admin
from livechain.server.api import Api
from livechain.server.http import ConnectionTracker, HttpConnection, Limits
from livechain.server.live import LiveHub
from livechain.server.plugins import EdgeServices, PluginFactory
from livechain.server.prometheus import MetricsEndpoint
from livechain.server.routes import Routes
from livechain.server.rpc import RpcEndpoint
from livechain.server.static import StaticFiles
from livechain.server.ws import WsEndpoint
from livechain.server.wsconn import WsSettings

log = logging.getLogger("livechain.server")


def limits_of(config: Config) -> Limits:
    server = config.server
    return Limits(
        max_body_bytes=server.max_body_bytes, header_timeout=server.header_timeout, idle_timeout=server.idle_timeout
    )


def ws_settings_of(config: Config) -> WsSettings:
    ws = config.server.ws
    return WsSettings(
        max_message_bytes=ws.max_message_bytes, send_queue=ws.send_queue, ping_interval=ws.ping_interval,
        ping_timeout=ws.ping_timeout,
    )


class WebEdge:
    def __init__(
        self,
        registry: ChainRegistry,
        config: Callable[[], Config],
        events: EventBus,
        snapshots: Snapshots,
        restarts: Mapping[str, int],
        *,
        admin_token: str | None = None,
        reload: Callable[[], dict] | None = None,
        plugins: Sequence[PluginFactory] = (),
        cache: MemoryStore | None = None,
    ) -> None:
        """`cache`: the process's response cache, for /metrics."""
        current = config()
        self._config = config
        self.access = Access(current.auth)
        self.per_address = AddressCounts(current.server.max_connections_per_ip)
        self.tracker = ConnectionTracker(self.per_address)
        self.limits = limits_of(current)
        self.admin = Admin(admin_token, reload)
        self.api = Api(registry, snapshots, events, restarts)
        self.plugins = [make(EdgeServices(registry, events, self.admin, self.address)) for make in plugins]
        self.live = LiveHub(registry, events, self.api, [plugin.live for plugin in self.plugins])
        self.ws = WsEndpoint(
            registry, ws_settings_of(current), access=self.access, per_address=self.per_address,
            max_subscriptions=current.server.ws.max_subscriptions,
        )
        self.routes = Routes(
            rpc=RpcEndpoint(registry), access=self.access, api=self.api,
            metrics=MetricsEndpoint(registry, events, current.region, restarts, cache), admin=self.admin,
            static=StaticFiles(), live=self.live, ws=self.ws, plugins=self.plugins,
            cors_origins=lambda: self._config().server.cors_origins,
        )
        self.server: asyncio.AbstractServer | None = None
        self.host = ""
        self.port = 0

    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: HttpConnection(self.routes, self.limits, self.tracker), host, port, reuse_address=True,
            backlog=2048,
        )
        sock = self.server.sockets[0].getsockname()
        self.host, self.port = sock[0], sock[1]
        return self.port

    def adopt(self, config: Config) -> None:
        self.access.configure(config.auth)
        limits = limits_of(config)
        for name in ("max_body_bytes", "header_timeout", "idle_timeout"):
            setattr(self.limits, name, getattr(limits, name))
        self.per_address.limit = config.server.max_connections_per_ip

    async def stop(self, grace: float) -> None:
        self.tracker.accepting = False
        if self.server is not None:
            self.server.close()
        for conn in list(self.tracker.connections):
            conn.close_if_idle()
        self.ws.close_all(1001, "server shutting down")
        await self.live.close()
        for plugin in self.plugins:
            await plugin.close()
        try:
            await asyncio.wait_for(self.tracker.wait_empty(), grace)
        except TimeoutError:
            log.warning("shutdown grace elapsed; closing remaining connections",
                        extra={"connections": len(self.tracker.connections)})
        for conn in list(self.tracker.connections):
            if conn.transport is not None:
                conn.transport.abort()
