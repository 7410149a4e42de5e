"""The dashboard's load simulator: bounded synthetic load sent *through Livechain itself*.

A run targets one chain and sends real JSON-RPC to this process's own edge — HTTP with the lean keep-alive
pool (`HttpPool` → `http://127.0.0.1:{port}/rpc/{chain}`) or WebSocket (`/ws/rpc/{chain}`) — plus optional
WebSocket `newHeads` subscribers. So what it exercises is exactly what a client would: routing, failover,
breakers, racing, the dashboard's numbers.

Bounds (a dashboard must not be able to take the proxy down by accident): rate ≤ 2000 req/s, subscribers
≤ 500, duration ≤ 10 min (the run stops by itself), one run per chain. Every task is named
`simulator/{chain}/...`, owned by its run's TaskSet and cancelled on stop and on app shutdown.

Shape of a run: a pacer adds one token per due request to a bounded queue (a full queue = the workers
cannot keep up: the request is *skipped* and counted, never queued without bound); workers take tokens
and send one request each. Status is a plain dict, read by the API and the dashboard's live push.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import orjson

from livechain.errors import LivechainError
from livechain.failsafe import TaskSet
from livechain.transport.http import HttpPool

MAX_RATE = 2000.0
MAX_SUBSCRIBERS = 500
MAX_DURATION_S = 600.0
METHODS = ("eth_blockNumber", "eth_getBalance", "eth_call", "eth_getLogs")
TRANSPORTS = ("http", "ws")
REQUEST_TIMEOUT = 10.0
WS_RPC_CONNECTIONS = 4
PACER_TICK = 0.01

_ACCOUNT = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # anvil's first dev account
_PARAMS: dict[str, list] = {
    "eth_blockNumber": [],
    "eth_getBalance": [_ACCOUNT, "latest"],
    "eth_call": [{"to": _ACCOUNT, "data": "0x"}, "latest"],
    "eth_getLogs": [{"fromBlock": "latest", "toBlock": "latest"}],
}


class SimulatorError(ValueError):
    """An invalid start request; the message names the field and the allowed range."""


@dataclass(frozen=True, slots=True)
class SimSettings:
    chain: str
    rate: float = 50.0
    mix: tuple[tuple[str, float], ...] = (("eth_blockNumber", 1.0),)
    transport: str = "http"
    subscribers: int = 0
    duration_s: float = 60.0

    @classmethod
    def parse(cls, chain: str, data: Mapping[str, Any]) -> SimSettings:
        """Strictly decode a start request (`rate`, `mix`, `transport`, `subscribers`, `duration_s`)."""
        known = {"action", "chain", "rate", "mix", "transport", "subscribers", "duration_s"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SimulatorError(f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        rate = _num(data, "rate", 50.0, 0.0, MAX_RATE, "req/s")
        duration = _num(data, "duration_s", 60.0, 1.0, MAX_DURATION_S, "seconds")
        subscribers = data.get("subscribers", 0)
        if isinstance(subscribers, bool) or not isinstance(subscribers, int) or not 0 <= subscribers <= MAX_SUBSCRIBERS:
            raise SimulatorError(f"subscribers must be an integer between 0 and {MAX_SUBSCRIBERS}, got {subscribers!r}")
        transport = data.get("transport", "http")
        if transport not in TRANSPORTS:
            raise SimulatorError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        raw_mix = data.get("mix", {"eth_blockNumber": 1})
        if isinstance(raw_mix, list):
            raw_mix = dict.fromkeys(raw_mix, 1)
        if not isinstance(raw_mix, dict):
            raise SimulatorError("mix must be an object {method: weight} or a list of methods")
        mix = []
        for method, weight in raw_mix.items():
            if method not in METHODS:
                raise SimulatorError(f"mix: unknown method {method!r}; allowed: {', '.join(METHODS)}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1000:
                raise SimulatorError(f"mix: weight of {method} must be a number between 0 and 1000")
            if weight > 0:
                mix.append((method, float(weight)))
        if rate > 0 and not mix:
            raise SimulatorError("mix must give at least one method a weight above 0")
        if rate == 0 and subscribers == 0:
            raise SimulatorError("nothing to do: set rate > 0 or subscribers > 0")
        return cls(chain, rate, tuple(mix), transport, subscribers, duration)


def _num(data: Mapping[str, Any], name: str, default: float, low: float, high: float, unit: str) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SimulatorError(f"{name} must be a number ({unit}), got {value!r}")
    if not low <= value <= high:
        raise SimulatorError(f"{name} must be between {low:g} and {high:g} {unit}, got {value:g}")
    return float(value)


class _Stats:
    def __init__(self) -> None:
        self.sent = self.ok = self.errors = self.skipped = 0
        self.latencies: deque[float] = deque(maxlen=2000)
        self.rate_marks: deque[tuple[float, int]] = deque(maxlen=16)  # (monotonic, completed)
        self.last_error: str | None = None
        self.sub_connected = self.sub_notifications = self.sub_errors = 0

    def done(self, ok: bool, ms: float, error: str | None = None) -> None:
        if ok:
            self.ok += 1
            self.latencies.append(ms)
        else:
            self.errors += 1
            self.last_error = error

    def achieved_rate(self) -> float:
        marks = self.rate_marks
        if len(marks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = marks[max(0, len(marks) - 9)], marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values.sort()
    return values[min(len(values) - 1, int(q * len(values)))]


class SimulatorRun:
    """One run against one chain. Start with `start()`; `stop()` (or the duration) ends it."""

    def __init__(self, settings: SimSettings, port: int, *, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.base_http = f"http://{host}:{port}/rpc/{settings.chain}"
        self.base_ws = f"ws://{host}:{port}/ws/rpc/{settings.chain}"
        self.tasks = TaskSet(f"simulator/{settings.chain}")
        self.stats = _Stats()
        self.state = "starting"
        self.started_at = time.time()
        self._t0 = time.monotonic()
        self.ended_at: float | None = None
        self.stop_reason: str | None = None
        self.workers = max(16, min(256, math.ceil(settings.rate / 4)))
        self._tokens: asyncio.Queue[str] = asyncio.Queue(maxsize=self.workers * 2)
        self._pool: HttpPool | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws_rpc: list[_WsRpc] = []
        self._main: asyncio.Task | None = None
        methods, weights = zip(*settings.mix, strict=True) if settings.mix else ((), ())
        self._methods: tuple[str, ...] = methods
        self._weights: tuple[float, ...] = weights
        self._rng = random.Random()

    @property
    def chain(self) -> str:
        return self.settings.chain

    @property
    def running(self) -> bool:
        return self._main is not None and not self._main.done()

    def start(self) -> None:
        self._main = asyncio.get_running_loop().create_task(self._run(), name=f"simulator/{self.chain}")

    async def stop(self, reason: str = "stopped") -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        main = self._main
        if main is not None and not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main

    # ------------------------------------------------------------------ the run

    async def _run(self) -> None:
        s = self.settings
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=5))
        try:
            if s.rate > 0:
                if s.transport == "http":
                    self._pool = HttpPool(self.base_http, name=f"simulator/{self.chain}", max_connections=self.workers)
                else:
                    for i in range(WS_RPC_CONNECTIONS):
                        conn = _WsRpc(self, i)
                        self._ws_rpc.append(conn)
                        self.tasks.spawn(f"simulator/{self.chain}/ws-rpc/{i}", conn.run())
                for i in range(self.workers):
                    self.tasks.spawn(f"simulator/{self.chain}/worker/{i}", self._worker())
                self.tasks.spawn(f"simulator/{self.chain}/pacer", self._pacer())
            for i in range(s.subscribers):
                self.tasks.spawn(f"simulator/{self.chain}/sub/{i}", self._subscriber(i))
            self.state = "running"
            self.tasks.spawn(f"simulator/{self.chain}/meter", self._meter())
            await asyncio.sleep(s.duration_s)
            self.stop_reason = self.stop_reason or "duration elapsed"
        finally:
            self.state = "stopping"
            await self.tasks.close(timeout=5)
            for conn in self._ws_rpc:
                conn.fail_all("simulator stopped")
            if self._pool is not None:
                await self._pool.close()
            await self._session.close()
            self.state = "finished"
            self.ended_at = time.time()

    async def _meter(self) -> None:
        stats = self.stats
        while True:
            stats.rate_marks.append((time.monotonic(), stats.ok + stats.errors))
            await asyncio.sleep(0.25)

    async def _pacer(self) -> None:
        rate = self.settings.rate
        t0 = time.monotonic()
        issued = 0
        tokens = self._tokens
        pick = self._rng.choices
        while True:
            due = int((time.monotonic() - t0) * rate) - issued
            if due > 0:
                issued += due
                for method in pick(self._methods, self._weights, k=due):
                    try:
                        tokens.put_nowait(method)
                    except asyncio.QueueFull:
                        self.stats.skipped += 1
            await asyncio.sleep(max(PACER_TICK, min(0.5, 1.0 / rate)) if rate < 100 else PACER_TICK)

    async def _worker(self) -> None:
        tokens = self._tokens
        stats = self.stats
        bodies = {m: orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": m, "params": _PARAMS[m]}) for m in METHODS}
        while True:
            method = await tokens.get()
            stats.sent += 1
            started = time.perf_counter()
            try:
                if self._pool is not None:
                    response = await self._pool.post(bodies[method], timeout=REQUEST_TIMEOUT)
                    reply = orjson.loads(response.body) if response.body else {}
                    if response.status != 200:
                        raise _Failed(f"HTTP {response.status}")
                else:
                    reply = await self._ws_rpc[stats.sent % len(self._ws_rpc)].call(method)
                error = reply.get("error") if isinstance(reply, dict) else None
                if error:
                    raise _Failed(f"{error.get('code')}: {str(error.get('message'))[:120]}")
                stats.done(True, (time.perf_counter() - started) * 1000)
            except (_Failed, LivechainError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                stats.done(False, 0.0, _describe(exc))

    async def _subscriber(self, index: int) -> None:
        assert self._session is not None
        await asyncio.sleep(index * 0.004)  # stagger the connects
        stats = self.stats
        while True:
            connected = False
            try:
                async with self._session.ws_connect(self.base_ws, compress=0, heartbeat=None, max_msg_size=1 << 22) as ws:
                    await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
                    connected = True
                    stats.sub_connected += 1
                    async for msg in ws:
                        if msg.type is aiohttp.WSMsgType.TEXT and '"eth_subscription"' in msg.data:
                            stats.sub_notifications += 1
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                stats.sub_errors += 1
                stats.last_error = f"subscriber: {_describe(exc)}"
            finally:
                if connected:
                    stats.sub_connected -= 1
            await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ reading

    def status(self) -> dict[str, Any]:
        stats = self.stats
        now = time.monotonic()
        elapsed = (self.ended_at - self.started_at) if self.ended_at else now - self._t0
        latencies = list(stats.latencies)
        p50 = _percentile(latencies, 0.5)
        p99 = _percentile(latencies, 0.99)
        settings = asdict(self.settings)
        settings["mix"] = dict(self.settings.mix)
        return {
            "chain": self.chain,
            "state": self.state,
            "running": self.running,
            "settings": settings,
            "started_at": round(self.started_at, 3),
            "elapsed_s": round(elapsed, 1),
            "remaining_s": round(max(0.0, self.settings.duration_s - elapsed), 1) if self.running else 0.0,
            "stop_reason": self.stop_reason,
            "sent": stats.sent,
            "ok": stats.ok,
            "errors": stats.errors,
            "skipped": stats.skipped,
            "rate": round(stats.achieved_rate(), 1) if self.running else 0.0,
            "p50_ms": round(p50, 2) if p50 is not None else None,
            "p99_ms": round(p99, 2) if p99 is not None else None,
            "subscribers": {
                "target": self.settings.subscribers,
                "connected": stats.sub_connected,
                "notifications": stats.sub_notifications,
                "errors": stats.sub_errors,
            },
            "last_error": stats.last_error,
        }


class _Failed(Exception):
    pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LivechainError):
        return exc.message[:160]
    text = str(exc)
    return f"{type(exc).__name__}: {text[:140]}" if text else type(exc).__name__


class _WsRpc:
    """One client WebSocket for JSON-RPC requests; replies are matched to futures by id."""

    def __init__(self, run: SimulatorRun, index: int) -> None:
        self.run_ = run
        self.index = index
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.ids = itertools.count(1)
        self.connected = asyncio.Event()

    async def call(self, method: str) -> dict:
        if not self.connected.is_set():
            try:
                await asyncio.wait_for(self.connected.wait(), 2.0)
            except TimeoutError:
                raise _Failed("websocket not connected") from None
        ws = self.ws
        if ws is None or ws.closed:
            raise _Failed("websocket not connected")
        rid = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        try:
            await ws.send_bytes(orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": _PARAMS[method]}))
            return await asyncio.wait_for(fut, REQUEST_TIMEOUT)
        finally:
            self.pending.pop(rid, None)

    def fail_all(self, why: str) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(_Failed(why))
        self.pending.clear()

    async def run(self) -> None:
        session = self.run_._session
        assert session is not None
        while True:
            try:
                async with session.ws_connect(self.run_.base_ws, compress=0, max_msg_size=1 << 24) as ws:
                    self.ws = ws
                    self.connected.set()
                    async for msg in ws:
                        if msg.type is not aiohttp.WSMsgType.TEXT:
                            continue
                        reply = orjson.loads(msg.data)
                        fut = self.pending.get(reply.get("id")) if isinstance(reply, dict) else None
                        if fut is not None and not fut.done():
                            fut.set_result(reply)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                self.run_.stats.last_error = f"ws: {_describe(exc)}"
            finally:
                self.ws = None
                self.connected.clear()
                self.fail_all("websocket closed")
            await asyncio.sleep(0.5)


class Simulator:
    """At most one run per chain; finished runs stay readable until the next start."""

    def __init__(self, address: Callable[[], tuple[str, int]]) -> None:
        self._address = address  # where this process's edge listens, known only once it does
        self.runs: dict[str, SimulatorRun] = {}

    def start(self, settings: SimSettings) -> SimulatorRun:
        current = self.runs.get(settings.chain)
        if current is not None and current.running:
            raise RuntimeError(f"a simulator run is already active on {settings.chain}; stop it first")
        host, port = self._address()
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        run = SimulatorRun(settings, port, host=host)
        self.runs[settings.chain] = run
        run.start()
        return run

    async def stop(self, chain: str) -> SimulatorRun | None:
        run = self.runs.get(chain)
        if run is not None:
            await run.stop()
        return run

    def status(self) -> dict[str, dict]:
        return {chain: run.status() for chain, run in self.runs.items()}

    def active(self) -> int:
        return sum(1 for run in self.runs.values() if run.running)

    async def close(self) -> None:
        await asyncio.gather(*(run.stop("server shutting down") for run in self.runs.values()))


LIMITS = {"max_rate": MAX_RATE, "max_subscribers": MAX_SUBSCRIBERS, "max_duration_s": MAX_DURATION_S,
          "methods": list(METHODS), "transports": list(TRANSPORTS)}
