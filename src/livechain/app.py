"""`livechain serve`: a Livechain with its web edge, as a process.

    App.start(host, port)   the library's start (chains, timers, snapshot restore) + the web edge
    App.stop()              graceful (see `Livechain.stop`)
    serve(app)              until SIGTERM/SIGINT; SIGHUP reloads the config
    run(coro)               asyncio.run with uvloop
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Sequence
from typing import Any

from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.config import ConfigStore
from livechain.library import Livechain
from livechain.server.plugins import PluginFactory


class App(Livechain):
    """Livechain serving its edge: the server process of `livechain serve` and `livechain demo`."""

    def __init__(
        self,
        store: ConfigStore,
        *,
        clock: Clock = SYSTEM_CLOCK,
        admin_token: str | None = None,
        plugins: Sequence[PluginFactory] = (),
    ) -> None:
        super().__init__(store, clock=clock)
        self._admin_token = admin_token
        self._plugins = tuple(plugins)

    async def start(self, host: str | None = None, port: int | None = None) -> int:  # type: ignore[override]
        if self.edge is None:
            await self.serve(host, port, admin_token=self._admin_token, plugins=self._plugins)
            gc.collect()
            gc.freeze()  # everything built so far lives as long as the process: keep it out of every GC pass
        return self.port


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
