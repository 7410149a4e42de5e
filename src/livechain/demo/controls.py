"""The load simulator and the fault controls, plugged into the web edge (`server.plugins.Plugin`).

    GET    /api/simulator                         runs per chain, limits, whether controls are allowed
    POST   /api/simulator                         {"action": "start"|"stop", "chain": ..., settings}
    GET    /api/faults                            fault state per "chain/provider" (when there are proxies)
    PUT    /api/faults/{chain}/{provider}         body: a Fault → set it
    DELETE /api/faults/{chain}/{provider}         back to the baseline (`?to=none`: no fault at all)
    POST   /api/faults/{chain}/{provider}/drop    abort the provider's live connections

Reading is open; anything that changes something needs the admin token, or demo mode (local, simulated
providers). A control request with a foreign Origin (another site's page) is refused whatever the mode.
Errors are the JSON API's `{"error": message}` with their status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from livechain.demo.simulator import LIMITS, SimSettings, Simulator, SimulatorError
from livechain.errors import (
    BadHttpRequest,
    Conflict,
    Forbidden,
    LivechainError,
    MethodNotAllowed,
    NoRoute,
    UnknownChain,
)
from livechain.faults import Fault, FaultError, FaultProxy
from livechain.server.messages import Request, Response, error_response, json_response
from livechain.server.plugins import EdgeServices

MAX_FAULT_MS = 60_000


class Controls:
    def __init__(self, services: EdgeServices, faults: Mapping[str, FaultProxy] | None = None, *, demo: bool = False) -> None:
        self._services = services
        self.simulator = Simulator(services.address)
        #: "chain/provider" → the fault proxy in front of that provider (when Livechain runs them)
        self.faults = dict(faults or {})
        self.demo = demo
        #: each proxy's fault when the controls were built (the demo's provider profiles): what "clear" returns to
        self.baseline: dict[str, Fault] = {name: proxy.fault for name, proxy in self.faults.items()}

    @classmethod
    def factory(cls, faults: Mapping[str, FaultProxy] | None = None, *, demo: bool = False):
        """A `PluginFactory` for the edge."""
        return lambda services: cls(services, faults, demo=demo)

    # ------------------------------------------------------------------ Plugin

    async def handle(self, request: Request) -> Response | None:
        path = request.path
        if path != "/api/simulator" and path != "/api/faults" and not path.startswith("/api/faults/"):
            return None
        try:
            if path == "/api/simulator":
                return await self._simulator(request)
            return self._faults(request)
        except LivechainError as exc:
            extra = {"known": sorted(self.faults)} if isinstance(exc, NoRoute) and path.startswith("/api/faults/") else {}
            return error_response(exc, api=True, **extra)

    def live(self) -> dict[str, Any]:
        return {"simulators": self.simulator.status()}

    async def close(self) -> None:
        await self.simulator.close()

    # ------------------------------------------------------------------ authorization

    def controls(self, request: Request) -> dict[str, bool]:
        admin = self._services.admin
        authorized = admin.authorized(request)
        return {"demo": self.demo, "token_configured": admin.configured, "authorized": authorized,
                "allowed": self.demo or authorized}

    def _check(self, request: Request) -> None:
        origin = request.headers.get("origin")
        hosts = (request.headers.get("host"), request.headers.get("x-forwarded-host"))
        if origin is not None and urlsplit(origin).netloc not in hosts:
            # browsers send Origin on every POST/PUT/DELETE: another site must not drive the controls
            raise Forbidden("cross-origin control requests are not accepted")
        if self.demo:
            return
        admin = self._services.admin
        if not admin.configured:
            raise Forbidden("controls are disabled: set LIVECHAIN_ADMIN_TOKEN (or run the demo)")
        admin.check(request)

    # ------------------------------------------------------------------ simulator

    async def _simulator(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response({"controls": self.controls(request), "limits": LIMITS, "runs": self.simulator.status()})
        if request.method != "POST":
            raise MethodNotAllowed("GET", "POST")
        self._check(request)
        body = _object(request.body or b"{}")
        action = body.get("action")
        chain = self._services.registry.resolve(str(body.get("chain", "")))
        if chain is None:
            raise UnknownChain(f"unknown chain {str(body.get('chain'))[:64]!r}")
        events = self._services.events
        if action == "stop":
            run = await self.simulator.stop(chain.name)
            if run is None:
                raise NoRoute(f"no simulator run on {chain.name}")
            events.publish("simulator", chain=chain.name, action="stop", sent=run.stats.sent)
            return json_response(run.status())
        if action != "start":
            raise BadHttpRequest("action must be 'start' or 'stop'")
        try:
            settings = SimSettings.parse(chain.name, body)
        except SimulatorError as exc:
            raise BadHttpRequest(str(exc)) from None
        try:
            run = self.simulator.start(settings)
        except RuntimeError as exc:
            raise Conflict(str(exc)) from None
        events.publish("simulator", chain=chain.name, action="start", rate=settings.rate,
                       transport=settings.transport, subscribers=settings.subscribers, duration_s=settings.duration_s)
        return json_response(run.status())

    # ------------------------------------------------------------------ faults

    def _faults(self, request: Request) -> Response:
        faults = self.faults
        parts = request.path[len("/api/faults"):].strip("/").split("/") if request.path != "/api/faults" else []
        if not parts:
            if request.method != "GET":
                raise MethodNotAllowed("GET")
            return json_response({"enabled": bool(faults), "controls": self.controls(request),
                                  "faults": {name: self._state(name, proxy) for name, proxy in faults.items()}})
        drop = len(parts) == 3 and parts[2] == "drop"
        if len(parts) != 2 and not drop:
            raise NoRoute("use /api/faults/{chain}/{provider}[/drop]")
        name = f"{parts[0]}/{parts[1]}"
        allowed = ("POST",) if drop else ("GET", "PUT", "DELETE")
        if request.method not in allowed:
            raise MethodNotAllowed(*allowed)
        if request.method != "GET":
            self._check(request)
        proxy = faults.get(name)
        if proxy is None:
            raise NoRoute(f"no fault proxy for {name[:100]!r}")
        chain, provider = parts[0], parts[1]
        events = self._services.events
        try:
            if drop:
                dropped = proxy.drop_connections()
                events.publish("fault", chain=chain, provider=provider, action="drop", dropped=dropped)
                return json_response({"dropped": dropped, **self._state(name, proxy)})
            if request.method == "DELETE":  # back to the baseline; ?to=none clears everything
                fault = Fault() if "to=none" in request.query else self.baseline.get(name, Fault())
                proxy.set(fault)
                events.publish("fault", chain=chain, provider=provider, action="clear", mode=fault.mode)
            elif request.method == "PUT":
                fault = _parse_fault(request.body)
                proxy.set(fault)
                lie = {"lie": fault.lie, "lie_blocks": fault.lie_blocks} if fault.mode == "lie" else {}
                events.publish("fault", chain=chain, provider=provider, action="set", mode=fault.mode,
                               latency_ms=fault.latency_ms, status=fault.status, probability=fault.probability, **lie)
        except FaultError as exc:
            raise BadHttpRequest(str(exc)) from None
        except OSError as exc:
            raise Conflict(f"cannot listen again: {exc.strerror or type(exc).__name__}") from None
        return json_response(self._state(name, proxy))

    def _state(self, name: str, proxy: FaultProxy) -> dict:
        chain, _, provider = name.partition("/")
        baseline = self.baseline.get(name, Fault())
        return {"chain": chain, "provider": provider, "fault": proxy.fault.to_dict(), "baseline": baseline.to_dict(),
                "injected": proxy.fault != baseline, "stats": proxy.stats}


def _object(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadHttpRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadHttpRequest("body must be a JSON object")
    return data


def _parse_fault(body: bytes) -> Fault:
    try:
        data = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        raise FaultError("body is not valid JSON") from None
    try:
        fault = Fault.from_dict(data)
    except TypeError as exc:
        raise FaultError(str(exc)) from None
    for name in ("latency_ms", "jitter_ms"):
        if getattr(fault, name) > MAX_FAULT_MS:
            raise FaultError(f"{name} must be <= {MAX_FAULT_MS}, got {getattr(fault, name):g}")
    return fault
