"""`FaultControlServer`: a small HTTP API that switches the faults of named proxies at run time.

    GET    /faults               {"name": {"fault": {...}, "stats": {...}}, ...}
    GET    /faults/{name}        {"fault": {...}, "stats": {...}}
    PUT    /faults/{name}        body: a JSON Fault (missing fields take defaults) → 200 + new state
    DELETE /faults/{name}        clear the fault → 200 + new state
    POST   /faults/{name}/drop   abort every live connection → 200 {"dropped": n, ...state}

Errors are JSON `{"error": "..."}`: 400 for invalid JSON, fields or modes, 404 for an unknown name,
409 when the port cannot be re-bound after `refuse`. Proxies are shown by name only, never by target
address (real provider addresses carry API keys).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from livechain.faults.faults import Fault, FaultError
from livechain.faults.proxy import FaultProxy

__all__ = ["FaultControlServer"]


def _state(proxy: FaultProxy) -> dict[str, Any]:
    return {"fault": proxy.fault.to_dict(), "stats": proxy.stats}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


class FaultControlServer:
    """HTTP control port for a dict of named `FaultProxy`s; binds 127.0.0.1 on an ephemeral port."""

    def __init__(self, proxies: dict[str, FaultProxy], host: str = "127.0.0.1", port: int = 0) -> None:
        self.proxies = proxies
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/faults", self._list)
        app.router.add_get("/faults/{name}", self._get)
        app.router.add_put("/faults/{name}", self._put)
        app.router.add_delete("/faults/{name}", self._delete)
        app.router.add_post("/faults/{name}/drop", self._drop)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FaultControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _proxy(self, request: web.Request) -> FaultProxy:
        name = request.match_info["name"]
        proxy = self.proxies.get(name)
        if proxy is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"unknown proxy {name!r}", "known": sorted(self.proxies)}),
                content_type="application/json",
            )
        return proxy

    async def _list(self, request: web.Request) -> web.Response:
        return _json({name: _state(proxy) for name, proxy in self.proxies.items()})

    async def _get(self, request: web.Request) -> web.Response:
        return _json(_state(self._proxy(request)))

    async def _put(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        raw = await request.read()
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return _json({"error": f"body is not valid JSON: {exc}"}, 400)
        try:
            fault = Fault.from_dict(data)
        except (FaultError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        try:
            proxy.set(fault)
        except OSError as exc:
            return _json({"error": f"cannot listen again on port {proxy.port}: {exc.strerror or exc}"}, 409)
        return _json(_state(proxy))

    async def _delete(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        try:
            proxy.clear()
        except OSError as exc:
            return _json({"error": f"cannot listen again on port {proxy.port}: {exc.strerror or exc}"}, 409)
        return _json(_state(proxy))

    async def _drop(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        return _json({"dropped": proxy.drop_connections(), **_state(proxy)})
