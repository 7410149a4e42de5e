"""The live dashboard: static page, Server-Sent Events push, load simulator and fault controls.

    GET    /dashboard, /dashboard/{file}          the page (plain HTML/CSS/JS modules, vendored uPlot)
    GET    /api/live?chain=&since=                Server-Sent Events, one `tick` every ~200 ms
    GET    /api/simulator                         runs per chain, limits, whether controls are allowed
    POST   /api/simulator                         {"action": "start"|"stop", "chain": ..., settings}
    GET    /api/faults                            fault state per "chain/provider" (when Livechain runs them)
    PUT    /api/faults/{chain}/{provider}         body: a Fault → set it
    DELETE /api/faults/{chain}/{provider}         clear it
    POST   /api/faults/{chain}/{provider}/drop    abort the provider's live connections

Reading is open; anything that changes something needs the admin token (`Authorization: Bearer …`) or
demo mode.

Live push — why SSE and not a WebSocket: the page only *receives* (controls are ordinary POSTs), and
EventSource gives reconnection with `Last-Event-ID` for free. One broadcaster task builds each tick ONCE
for every client, off the request path: the events published since the last tick (at most 200; `skipped`
says how many were left out), the `/api/chains` overview and simulator state, and once a second each
watched chain's leaderboard. JSON fragments are serialized once and spliced per chain, then written to
every client's transport. A client whose unsent bytes exceed `buffer_limit` is dropped (it reconnects and
catches up from its last event id) — a slow dashboard never slows the proxy or the other dashboards.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mimetypes
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

import livechain
from livechain.faults import Fault, FaultError
from livechain.server.http import Request, Response, StreamResponse
from livechain.server.simulator import LIMITS, SimSettings, Simulator, SimulatorError

log = logging.getLogger("livechain.dashboard")

STATIC_ROOT = Path(livechain.__file__).resolve().parent / "dashboard" / "static"
MAX_FAULT_MS = 60_000
_SECURITY_HEADERS = [
    ("cache-control", "no-cache"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
]
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'")


def _json(value: Any, status: int = 200) -> Response:
    return Response(status, orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


def _error(status: int, message: str, **extra: Any) -> Response:
    return _json({"error": message, **extra}, status)


class Dashboard:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.simulator = Simulator(lambda: app.port)
        self.live = LiveHub(app, self.simulator)
        self._static: dict[Path, tuple[float, bytes]] = {}
        #: each proxy's fault when the app was built (the demo's provider profiles): what "clear" returns to
        self.baseline: dict[str, Fault] = {name: proxy.fault for name, proxy in app.faults.items()}

    async def handle(self, request: Request) -> Response | None:
        path = request.path
        if path == "/dashboard" or path.startswith("/dashboard/"):
            return self._file(request)
        if path == "/api/live":
            return self.live.open(request) if request.method == "GET" else _error(405, "use GET")
        if path == "/api/simulator":
            return await self._simulator(request)
        if path == "/api/faults" or path.startswith("/api/faults/"):
            return self._faults(request)
        return None

    async def close(self) -> None:
        """End every SSE stream and every simulator run (app shutdown)."""
        await self.live.close()
        await self.simulator.close()

    # ------------------------------------------------------------------ authorization

    def controls(self, request: Request) -> dict[str, bool]:
        routes = self.app.routes
        authorized = routes.admin_token is not None and routes.authorized(request)
        return {"demo": bool(self.app.demo), "token_configured": routes.admin_token is not None,
                "authorized": authorized, "allowed": bool(self.app.demo) or authorized}

    def _denied(self, request: Request) -> Response | None:
        origin = request.headers.get("origin")
        hosts = (request.headers.get("host"), request.headers.get("x-forwarded-host"))
        if origin is not None and urlsplit(origin).netloc not in hosts:
            # browsers send Origin on every POST/PUT/DELETE: another site must not drive the demo's controls
            return _error(403, "cross-origin control requests are not accepted")
        if self.app.demo or self.app.routes.authorized(request):
            return None
        if self.app.routes.admin_token is None:
            return _error(403, "controls are disabled: set LIVECHAIN_ADMIN_TOKEN (or run the demo)")
        return _error(401, "admin token required")

    # ------------------------------------------------------------------ static files

    def _file(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _error(405, "use GET")
        rel = request.path[len("/dashboard"):].strip("/") or "index.html"
        target = (STATIC_ROOT / rel).resolve()
        if not target.is_relative_to(STATIC_ROOT) or not target.is_file():
            return _error(404, f"no dashboard file {rel[:80]}")
        mtime = target.stat().st_mtime
        cached = self._static.get(target)
        if cached is None or cached[0] != mtime:
            cached = self._static[target] = (mtime, target.read_bytes())
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "text/javascript"):
            ctype += "; charset=utf-8"
        headers = list(_SECURITY_HEADERS)
        if target.name == "index.html":
            headers.append(("content-security-policy", _CSP))
        return Response(200, cached[1], ctype, headers)

    # ------------------------------------------------------------------ simulator

    async def _simulator(self, request: Request) -> Response:
        if request.method == "GET":
            return _json({"controls": self.controls(request), "limits": LIMITS, "runs": self.simulator.status()})
        if request.method != "POST":
            return _error(405, "use GET or POST")
        denied = self._denied(request)
        if denied is not None:
            return denied
        try:
            body = orjson.loads(request.body or b"{}")
        except orjson.JSONDecodeError:
            return _error(400, "body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        action = body.get("action")
        chain = self.app.registry.resolve(str(body.get("chain", "")))
        if chain is None:
            return _error(404, f"unknown chain {str(body.get('chain'))[:64]!r}")
        if action == "stop":
            run = await self.simulator.stop(chain.name)
            if run is None:
                return _error(404, f"no simulator run on {chain.name}")
            self.app.events.publish("simulator", chain=chain.name, action="stop", sent=run.stats.sent)
            return _json(run.status())
        if action != "start":
            return _error(400, "action must be 'start' or 'stop'")
        try:
            settings = SimSettings.parse(chain.name, body)
        except SimulatorError as exc:
            return _error(400, str(exc))
        try:
            run = self.simulator.start(settings)
        except RuntimeError as exc:
            return _error(409, str(exc))
        self.app.events.publish("simulator", chain=chain.name, action="start", rate=settings.rate,
                                transport=settings.transport, subscribers=settings.subscribers,
                                duration_s=settings.duration_s)
        return _json(run.status())

    # ------------------------------------------------------------------ faults

    def _faults(self, request: Request) -> Response:
        faults = self.app.faults
        parts = request.path[len("/api/faults"):].strip("/").split("/") if request.path != "/api/faults" else []
        if not parts:
            if request.method != "GET":
                return _error(405, "use GET")
            return _json({"enabled": bool(faults), "controls": self.controls(request),
                          "faults": {name: self._state(name, proxy) for name, proxy in faults.items()}})
        drop = len(parts) == 3 and parts[2] == "drop"
        if len(parts) != 2 and not drop:
            return _error(404, "use /api/faults/{chain}/{provider}[/drop]")
        name = f"{parts[0]}/{parts[1]}"
        allowed = ("POST",) if drop else ("GET", "PUT", "DELETE")
        if request.method not in allowed:
            return _error(405, f"use {' or '.join(allowed)}")
        if request.method != "GET":
            denied = self._denied(request)
            if denied is not None:
                return denied
        proxy = faults.get(name)
        if proxy is None:
            return _error(404, f"no fault proxy for {name[:100]!r}", known=sorted(faults))
        chain, provider = parts[0], parts[1]
        try:
            if drop:
                dropped = proxy.drop_connections()
                self.app.events.publish("fault", chain=chain, provider=provider, action="drop", dropped=dropped)
                return _json({"dropped": dropped, **self._state(name, proxy)})
            if request.method == "DELETE":  # back to the baseline; ?to=none clears everything
                fault = Fault() if "to=none" in request.query else self.baseline.get(name, Fault())
                proxy.set(fault)
                self.app.events.publish("fault", chain=chain, provider=provider, action="clear", mode=fault.mode)
            elif request.method == "PUT":
                fault = _parse_fault(request.body)
                proxy.set(fault)
                self.app.events.publish("fault", chain=chain, provider=provider, action="set", mode=fault.mode,
                                        latency_ms=fault.latency_ms, status=fault.status,
                                        probability=fault.probability)
        except FaultError as exc:
            return _error(400, str(exc))
        except OSError as exc:
            return _error(409, f"cannot listen again: {exc.strerror or type(exc).__name__}")
        return _json(self._state(name, proxy))

    def _state(self, name: str, proxy: Any) -> dict:
        chain, _, provider = name.partition("/")
        baseline = self.baseline.get(name, Fault())
        return {"chain": chain, "provider": provider, "fault": proxy.fault.to_dict(), "baseline": baseline.to_dict(),
                "injected": proxy.fault != baseline, "stats": proxy.stats}


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


# ---------------------------------------------------------------------------------------------- live push


class _Client:
    __slots__ = ("chain", "done", "peer", "transport")

    def __init__(self, transport: asyncio.Transport, chain: str | None, peer: str) -> None:
        self.transport = transport
        self.chain = chain
        self.peer = peer
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class LiveHub:
    """The SSE broadcaster. One tick = one shared batch, written to every client."""

    tick = 0.2
    leaderboard_every = 1.0
    max_events = 200
    buffer_limit = 512 * 1024  # unsent bytes per client before it is dropped
    max_clients = 256

    def __init__(self, app: Any, simulator: Simulator) -> None:
        self.app = app
        self.simulator = simulator
        self.clients: set[_Client] = set()
        self.seq: int | None = None  # last event seq included in a tick
        self.ticks = 0
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False
        self._leaderboards: dict[str, bytes] = {}
        self._leaderboard_at = 0.0
        self._overview = b"null"

    # ------------------------------------------------------------------ connecting

    def open(self, request: Request) -> Response:
        if self._closed:
            return _error(503, "server is shutting down")
        if len(self.clients) >= self.max_clients:
            return _error(503, f"too many live dashboards (limit {self.max_clients})")
        query = parse_qs(request.query)
        chain_name = (query.get("chain") or [""])[0]
        chain = self.app.registry.resolve(chain_name) if chain_name else None
        since_raw = request.headers.get("last-event-id") or (query.get("since") or [""])[0]
        since = int(since_raw) if since_raw.isdigit() else None
        return StreamResponse(
            200, b"", "text/event-stream; charset=utf-8",
            [("cache-control", "no-cache, no-transform"), ("x-accel-buffering", "no")], close=True,
            stream=functools.partial(self._stream, chain.name if chain else None, since, request.peer),
        )

    async def _stream(self, chain: str | None, since: int | None, peer: str, transport: asyncio.Transport) -> None:
        if self._task is None:
            self.seq = self.app.events.seq
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dashboard/live")
        client = _Client(transport, chain, peer)
        if self._overview == b"null":
            self._overview = await self._get("/api/chains")
        board = b""
        if chain is not None:
            board = self._leaderboards.get(chain) or await self._get(f"/api/chains/{chain}/leaderboard")
        if transport.is_closing() or self._closed:
            return
        # from here on no await until the client is registered: the next tick continues exactly after `seq`
        if not self.clients:  # idle hub: nobody is owed the events since the last tick, start from now
            self.seq = self.app.events.seq
        seq = self.seq or 0
        if since is None:
            since = max(0, seq - self.max_events)
        events = [e for e in self.app.events.since(min(since, seq), self.max_events) if e["seq"] <= seq]
        hello = self._message(seq, self._head(seq, events, 0), b',"leaderboard":' + board if board else b"")
        transport.write(b"retry: 2000\n\n" + hello)
        self.clients.add(client)
        self._wake.set()
        try:
            await client.done
        finally:
            self.clients.discard(client)

    # ------------------------------------------------------------------ broadcasting

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._closed:
            if not self.clients:
                self._wake.clear()
                await self._wake.wait()
                next_at = loop.time()
                continue
            next_at += self.tick
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a busy loop): skip the missed ticks rather than bunching them
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)
            try:
                await self._tick()
            except Exception:
                log.exception("dashboard tick failed")

    async def _tick(self) -> None:
        self._overview = await self._get("/api/chains")
        now = time.monotonic()
        fresh = now - self._leaderboard_at >= self.leaderboard_every
        if fresh:
            self._leaderboard_at = now
            watched = sorted({c.chain for c in self.clients if c.chain is not None})
            self._leaderboards = {name: await self._get(f"/api/chains/{name}/leaderboard") for name in watched}
        # no await from here on: the events taken are exactly those after the previous tick's seq
        bus = self.app.events
        seq = self.seq if self.seq is not None else bus.seq
        events = bus.since(seq, self.max_events)
        skipped = max(0, bus.seq - seq - len(events))
        self.seq = bus.seq
        self.ticks += 1
        head = self._head(self.seq, events, skipped)
        per_chain: dict[str | None, bytes] = {None: self._message(self.seq, head, b"")}
        for client in list(self.clients):
            message = per_chain.get(client.chain)
            if message is None:
                board = self._leaderboards.get(client.chain) if fresh else None
                extra = b',"leaderboard":' + board if board else b""
                message = per_chain[client.chain] = self._message(self.seq, head, extra)
            self._send(client, message)

    def _head(self, seq: int, events: list, skipped: int) -> bytes:
        return orjson.dumps({"seq": seq, "ts": round(time.time(), 3), "skipped": skipped, "events": events,
                             "simulators": self.simulator.status()}, option=orjson.OPT_NON_STR_KEYS)

    def _message(self, seq: int, head: bytes, extra: bytes) -> bytes:
        """One SSE message; `head` is a serialized object, the overview and `extra` are spliced into it."""
        return b"id: %d\nevent: tick\ndata: %s,\"overview\":%s%s}\n\n" % (seq, head[:-1], self._overview, extra)

    def _send(self, client: _Client, message: bytes) -> None:
        transport = client.transport
        if transport.is_closing():
            self._forget(client)
            return
        transport.write(message)
        if transport.get_write_buffer_size() > self.buffer_limit:
            self.dropped += 1
            log.warning("slow dashboard client dropped", extra={"peer": client.peer,
                                                                "buffered": transport.get_write_buffer_size()})
            transport.abort()
            self._forget(client)

    def _forget(self, client: _Client) -> None:
        self.clients.discard(client)
        if not client.done.done():
            client.done.set_result(None)

    async def _get(self, path: str) -> bytes:
        """A JSON API view, through the app's own route table (the documented shapes), as bytes."""
        path, _, query = path.partition("?")
        request = Request("GET", path, query, {}, b"", "dashboard")
        response = await self.app.routes.dispatch(request)
        return response.body if response.status == 200 and response.body else b"null"

    async def close(self) -> None:
        self._closed = True
        for client in list(self.clients):
            self._forget(client)
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def stats(self) -> dict[str, int]:
        return {"clients": len(self.clients), "ticks": self.ticks, "dropped": self.dropped}
