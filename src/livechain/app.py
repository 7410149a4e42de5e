"""The application: builds everything from the config and owns its lifetime.

    App.start()   chains (health loops), the store folding timer, the HTTP/WS server
    App.reload()  re-read the config file; on success chains and providers are reconciled in place
    App.stop()    graceful: stop accepting, let in-flight requests finish within shutdown_grace, close
                  WebSocket clients with a close code, write the final snapshot, close providers

`run()` adds the process side: uvloop, SIGHUP → reload, SIGTERM/SIGINT → graceful stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from livechain.chains.registry import ChainRegistry
from livechain.chains.snapshots import Snapshots
from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config.schema import Config
from livechain.config.store import ConfigStore
from livechain.events import EventBus
from livechain.failsafe import TaskSet, supervise
from livechain.faults import FaultProxy
from livechain.log import REDACTOR
from livechain.server.dashboard import Dashboard
from livechain.server.http import ConnectionTracker, HttpConnection, Limits
from livechain.server.routes import Routes
from livechain.server.ws import WsEndpoint
from livechain.server.wsconn import WsSettings

log = logging.getLogger("livechain.app")

FOLD_INTERVAL = 0.02  # small, frequent folds: one long fold would stall the loop (p99, bench/variants.py)
EXPIRE_INTERVAL = 60.0
SCORE_INTERVAL = 1.0


def register_secrets(config: Config) -> None:
    """Teach the log redactor every provider URL and header value of `config`."""
    for chain in config.chains.values():
        for provider in chain.providers:
            REDACTOR.register_url(provider.http_url, provider.id)
            if provider.ws_url:
                REDACTOR.register_url(provider.ws_url, provider.id)
            for value in provider.headers.values():
                REDACTOR.register(value, "<secret>")


def limits_of(config: Config) -> Limits:
    server = config.server
    return Limits(
        max_body_bytes=server.max_body_bytes,
        header_timeout=server.header_timeout,
        idle_timeout=server.idle_timeout,
        max_connections_per_ip=server.max_connections_per_ip,
    )


class App:
    def __init__(
        self,
        store: ConfigStore,
        *,
        clock: Clock = SYSTEM_CLOCK,
        admin_token: str | None = None,
        faults: Mapping[str, FaultProxy] | None = None,
        demo: bool = False,
    ) -> None:
        self.config_store = store
        #: fault proxies in front of the providers ("chain/provider" → proxy), when Livechain runs them (demo)
        self.faults = dict(faults or {})
        #: demo mode: the dashboard's controls work without the admin token (local, simulated providers)
        self.demo = demo
        self.clock = clock
        self.events = EventBus()
        register_secrets(store.current)
        self.registry = ChainRegistry(store.current, events=self.events, clock=clock)
        self.tracker = ConnectionTracker()
        self.limits = limits_of(store.current)
        if admin_token is None:
            admin_token = os.environ.get("LIVECHAIN_ADMIN_TOKEN")
        self.snapshots = Snapshots(self.registry, store.current, clock)
        self.routes = Routes(
            self.registry, store, self.events, self.snapshots, admin_token=admin_token, reload=self.reload
        )
        ws = store.current.server.ws
        self.ws = WsEndpoint(
            self.registry,
            WsSettings(
                max_message_bytes=ws.max_message_bytes,
                send_queue=ws.send_queue,
                ping_interval=ws.ping_interval,
                ping_timeout=ws.ping_timeout,
            ),
            max_subscriptions=ws.max_subscriptions,
            max_connections_per_ip=store.current.server.max_connections_per_ip,
            access=self.routes.access,
        )
        self.routes.ws_upgrade = self.ws.upgrade
        self.dashboard = Dashboard(self)
        self.routes.extra.append(self.dashboard.handle)
        self.tasks = TaskSet("app")
        self.server: asyncio.AbstractServer | None = None
        self.host = ""
        self.port = 0
        self.started_at = time.time()
        self._stopped = asyncio.Event()
        store.subscribe(self._adopt)

    @property
    def config(self) -> Config:
        return self.config_store.current

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        cfg = self.config.server
        await self.snapshots.open()
        self.registry.start()
        self.tasks.spawn("app/fold", supervise("app/fold", self._fold_loop))
        self.tasks.spawn("app/snapshots", supervise("app/snapshots", self.snapshots.run))
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: HttpConnection(self.routes, self.limits, self.tracker),
            host if host is not None else cfg.host,
            port if port is not None else cfg.port,
            reuse_address=True,
            backlog=2048,
        )
        sock = self.server.sockets[0].getsockname()
        self.host, self.port = sock[0], sock[1]
        gc.collect()
        gc.freeze()  # everything built so far lives as long as the app: keep it out of every GC pass
        log.info(
            "listening",
            extra={"host": self.host, "port": self.port, "chains": [c.name for c in self.registry],
                   "region": self.config.region},
        )
        return self.port

    async def _fold_loop(self) -> None:
        last_expire = last_score = time.monotonic()
        while True:
            await asyncio.sleep(FOLD_INTERVAL)
            for chain in self.registry:
                chain.store.fold()
            if time.monotonic() - last_score >= SCORE_INTERVAL:
                last_score = time.monotonic()
                for chain in self.registry:
                    chain.refresh_scores()
            if time.monotonic() - last_expire >= EXPIRE_INTERVAL:
                last_expire = time.monotonic()
                for chain in self.registry:
                    chain.store.expire()

    async def stop(self) -> None:
        """Graceful shutdown. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.server.shutdown_grace
        log.info("shutting down", extra={"grace_s": grace})
        self.tracker.accepting = False
        if self.server is not None:
            self.server.close()
        for conn in list(self.tracker.connections):
            conn.close_if_idle()
        self.ws.close_all(1001, "server shutting down")
        await self.dashboard.close()
        try:
            await asyncio.wait_for(self.tracker.wait_empty(), grace)
        except TimeoutError:
            log.warning("shutdown grace elapsed; closing remaining connections",
                        extra={"connections": len(self.tracker.connections)})
        for conn in list(self.tracker.connections):
            if conn.transport is not None:
                conn.transport.abort()
        await self.tasks.close(timeout=5)
        try:
            await self.snapshots.close()  # the final snapshot
        except Exception:
            log.exception("final snapshot failed")
        await self.registry.close()
        log.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # ------------------------------------------------------------------ reload

    def reload(self) -> dict[str, Any]:
        result = self.config_store.reload()
        out = {"ok": result.ok, "version": result.version, "changed": result.changed}
        if not result.ok:
            out["problems"] = [f"{path}: {msg}" for path, msg in result.problems]
            log.error("reload rejected; keeping the last good config", extra={"problems": out["problems"]})
        return out

    def _adopt(self, old: Config, new: Config) -> None:
        register_secrets(new)
        self.registry.apply(new)
        self.snapshots.config = new
        self.routes.access.configure(new.auth)
        limits = limits_of(new)
        for name in ("max_body_bytes", "header_timeout", "idle_timeout", "max_connections_per_ip"):
            setattr(self.limits, name, getattr(limits, name))
        self.events.publish("reload", chains=sorted(new.chains))
        log.info("config reloaded", extra={"chains": sorted(new.chains)})


async def serve(app: App, host: str | None = None, port: int | None = None) -> None:
    """Run `app` until SIGTERM/SIGINT; SIGHUP reloads the config."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app.reload)
    try:
        await app.start(host, port)
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await app.stop()


def run(coro: Any) -> Any:
    """asyncio.run with uvloop when available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)
