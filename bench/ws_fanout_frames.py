"""Server cost of WebSocket fan-out: livechain's WsServerConnection against websockets and aiohttp servers.

The server runs in this process (uvloop); N aiohttp WebSocket clients run in a separate process, so
getrusage(RUSAGE_SELF) here is the server alone. Each tick (--rate per second, for --seconds) the server
sends one --size-byte text message to every client; the message starts with the CLOCK_MONOTONIC time of the
tick (time.monotonic_ns() is system-wide, so the client process can subtract it from its own clock) and the
client records the delivery latency. Reported per mode:

    server CPU µs per delivered message = (utime + stime during the ticks) / messages delivered
    p50 / p99 delivery latency (client-measured, from the start of the tick's fan-out loop)

The latency includes the fan-out loop itself (the last client's message is written one loop duration
after the first; "one fan-out" is printed) and the single client process working through N messages per
tick, so it is an upper bound on what one client on its own machine would see.

Modes (same clients, same payload, interleaved over --rounds; medians printed):
    wsconn/send_text    WsServerConnection.send_text(payload) per client (frame header built per client)
    wsconn/send_frame   encode_text_frame(payload) once per tick, send_frame(frame) per client
    websockets          websockets.asyncio.server + broadcast() (compression off)  — baseline
    aiohttp             aiohttp.web WebSocketResponse.send_str() per client (compress off) — baseline

    .venv/bin/python bench/ws_fanout_frames.py                      # 1000 clients × 10 msg/s × 5 s
    .venv/bin/python bench/ws_fanout_frames.py --clients 2000 --rate 20 --rounds 3

A benchmark, not a test: numbers depend on the machine; compare the ratios within one run. Exits 1 with a
message on stderr when a mode delivers no message.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable

import aiohttp
import uvloop
from aiohttp import web
from websockets.asyncio.server import broadcast, serve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import measured, require, run_main

from livechain.clients.access import AddressCounts
from livechain.server.http import ConnectionTracker, HttpConnection, Limits, Request, Response
from livechain.server.wsconn import WsServerConnection, WsSettings, accept_upgrade, encode_text_frame

END = "END"
MODES = ["wsconn/send_text", "wsconn/send_frame", "websockets", "aiohttp"]


def make_payload(size: int) -> Callable[[int], bytes]:
    """A subscription-notification-like JSON text of exactly `size` bytes whose first field is the time."""
    head = b'{"t":%020d,"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":'
    head += b'"0x9cef478923ff08bf67fde6c64013158d","result":{"pad":"'
    tail = b'"}}}'
    pad = b"x" * (size - len(head % 0) - len(tail))
    template = head + pad + tail
    return lambda t: template % t


# ---------------------------------------------------------------------------------------------- client process


def client_main(port: int, path: str, clients: int, results: multiprocessing.Queue) -> None:
    uvloop.run(_clients(port, path, clients, results))


async def _clients(port: int, path: str, clients: int, results: multiprocessing.Queue) -> None:
    latencies: list[int] = []
    ended = 0
    all_ended = asyncio.Event()
    connected = 0

    async def one(http: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        nonlocal ended, connected
        async with http.ws_connect(f"http://127.0.0.1:{port}{path}", max_msg_size=0) as ws:
            connected += 1
            if connected == clients:
                ready.set()
            append = latencies.append
            now = time.monotonic_ns
            async for msg in ws:
                data = msg.data
                if data == END:
                    ended += 1
                    if ended == clients:
                        all_ended.set()
                    continue
                append(now() - int(data[5:25]))

    ready = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks = []
        for i in range(clients):
            tasks.append(asyncio.create_task(one(http, ready), name=f"bench/client/{i}"))
            if i % 50 == 49:
                await asyncio.sleep(0.01)  # don't overflow the listen backlog
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.wait_for(all_ended.wait(), 120)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        results.put({"latencies": latencies, "client_cpu": usage.ru_utime + usage.ru_stime})
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------------------------- servers


class _Session:
    def __init__(self, conns: list[WsServerConnection]) -> None:
        self.conns = conns

    def on_open(self, conn: WsServerConnection) -> None:
        self.conns.append(conn)

    def on_message(self, data: bytes, binary: bool) -> None:
        pass

    def on_close(self, code: int, reason: str) -> None:
        pass


class _Dispatcher:
    def __init__(self) -> None:
        self.conns: list[WsServerConnection] = []
        self.settings = WsSettings()

    async def dispatch(self, request: Request) -> Response:
        return Response(404, b"not found", "text/plain")

    def upgrade(self, request: Request, transport: asyncio.Transport, rest: bytes) -> asyncio.Protocol | None:
        return accept_upgrade(request, transport, rest, _Session(self.conns), self.settings)


class Server:
    """One server under test: start(), count(), fan_out(payload), end(), stop()."""

    async def start(self) -> int: ...
    def count(self) -> int: ...
    async def fan_out(self, payload: bytes) -> None: ...
    async def end(self) -> None: ...
    async def stop(self) -> None: ...


class WsconnServer(Server):
    def __init__(self, frames: bool) -> None:
        self.frames = frames
        self.dispatcher = _Dispatcher()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        tracker = ConnectionTracker(AddressCounts(100_000))
        limits = Limits()
        self.server = await loop.create_server(
            lambda: HttpConnection(self.dispatcher, limits, tracker), "127.0.0.1", 0, backlog=4096
        )
        return self.server.sockets[0].getsockname()[1]

    def count(self) -> int:
        return len(self.dispatcher.conns)

    async def fan_out(self, payload: bytes) -> None:
        if self.frames:
            frame = encode_text_frame(payload)
            for conn in self.dispatcher.conns:
                conn.send_frame(frame)
        else:
            for conn in self.dispatcher.conns:
                conn.send_text(payload)

    async def end(self) -> None:
        await self.fan_out(END.encode())

    async def stop(self) -> None:
        for conn in self.dispatcher.conns:
            conn.abort()
        assert self.server is not None
        self.server.close()

    def drops(self) -> int:
        return sum(1 for c in self.dispatcher.conns if c.closed)


class WebsocketsServer(Server):
    def __init__(self) -> None:
        self.conns: set = set()
        self.server = None

    async def _handler(self, ws) -> None:
        self.conns.add(ws)
        try:
            await ws.wait_closed()
        finally:
            self.conns.discard(ws)

    async def start(self) -> int:
        self.server = await serve(
            self._handler, "127.0.0.1", 0, compression=None, ping_interval=20, backlog=4096
        )
        return self.server.sockets[0].getsockname()[1]

    def count(self) -> int:
        return len(self.conns)

    async def fan_out(self, payload: bytes) -> None:
        broadcast(self.conns, payload.decode())

    async def end(self) -> None:
        broadcast(self.conns, END)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close(close_connections=False)
        for ws in list(self.conns):
            ws.transport.abort()


class AiohttpServer(Server):
    def __init__(self) -> None:
        self.conns: list[web.WebSocketResponse] = []
        self.runner: web.AppRunner | None = None
        self.stopping = asyncio.Event()

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, heartbeat=20)
        await ws.prepare(request)
        self.conns.append(ws)
        async for _ in ws:
            pass
        return ws

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/ws", self._handler)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def count(self) -> int:
        return len(self.conns)

    async def fan_out(self, payload: bytes) -> None:
        text = payload.decode()
        for ws in self.conns:
            await ws.send_str(text)

    async def end(self) -> None:
        for ws in self.conns:
            await ws.send_str(END)

    async def stop(self) -> None:
        for ws in self.conns:
            if ws._req is not None and ws._req.transport is not None:  # type: ignore[attr-defined]
                ws._req.transport.abort()  # type: ignore[attr-defined]
        assert self.runner is not None
        await self.runner.cleanup()


def build(mode: str) -> Server:
    return {
        "wsconn/send_text": lambda: WsconnServer(frames=False),
        "wsconn/send_frame": lambda: WsconnServer(frames=True),
        "websockets": WebsocketsServer,
        "aiohttp": AiohttpServer,
    }[mode]()


# ---------------------------------------------------------------------------------------------- one run


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


async def run_one(mode: str, args: argparse.Namespace) -> dict:
    server = build(mode)
    port = await server.start()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    client = ctx.Process(target=client_main, args=(port, "/ws", args.clients, results), daemon=True)
    client.start()
    loop = asyncio.get_running_loop()
    try:
        deadline = time.monotonic() + 60
        while server.count() < args.clients:
            if time.monotonic() > deadline or not client.is_alive():
                raise RuntimeError(f"{mode}: only {server.count()} of {args.clients} clients connected")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # let the connection storm settle

        payload_at = make_payload(args.size)
        await server.fan_out(payload_at(time.monotonic_ns()))  # warm-up tick
        await asyncio.sleep(0.5)

        period = 1.0 / args.rate
        ticks = int(args.rate * args.seconds)
        require(ticks >= 1, f"--rate {args.rate:g} × --seconds {args.seconds:g} is no tick: nothing to measure")
        start_cpu, start_wall = cpu(), time.monotonic()
        next_at = loop.time()
        tick_cpu = tick_wall = 0.0
        for _ in range(ticks):
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            before, before_wall = time.process_time(), time.perf_counter()
            await server.fan_out(payload_at(time.monotonic_ns()))
            tick_cpu += time.process_time() - before
            tick_wall += time.perf_counter() - before_wall
            next_at += period
        await asyncio.sleep(min(period, 0.2))  # let the last tick's writes drain
        used_cpu, wall = cpu() - start_cpu, time.monotonic() - start_wall
        drops = server.drops() if isinstance(server, WsconnServer) else 0  # slow-client disconnects

        await server.end()
        report = await loop.run_in_executor(None, results.get, True, 120)
        latencies = report["latencies"][args.clients :]  # drop the warm-up tick (arrived 0.5 s earlier)
        delivered = len(latencies)
        expected = ticks * args.clients
        require(delivered, f"{mode}: delivered 0 of {expected} messages to {args.clients} clients "
                           f"({len(report['latencies'])} received in all, {drops} slow-client drops)")
        return {
            "mode": mode,
            "delivered": delivered,
            "expected": expected,
            "cpu_us_per_msg": used_cpu / max(1, delivered) * 1e6,
            "loop_us_per_msg": tick_cpu / max(1, expected) * 1e6,
            "tick_ms": tick_wall / ticks * 1000,
            "cpu_share": used_cpu / wall,
            "p50_us": percentile(latencies, 0.50),
            "p99_us": percentile(latencies, 0.99),
            "drops": drops,
        }
    finally:
        await server.stop()
        client.join(10)
        if client.is_alive():
            client.terminate()
            client.join(5)


async def main(args: argparse.Namespace) -> None:
    print(
        f"{args.clients} clients × {args.rate} msg/s × {args.seconds} s, {args.size}-byte text, "
        f"{args.rounds} round(s); server CPU from getrusage (this process), latency in the client process",
        flush=True,
    )
    modes = args.modes or MODES
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for mode in modes:
            result = await run_one(mode, args)
            runs[mode].append(result)
            print(
                f"  round {r + 1} {mode:18s} delivered {result['delivered']}/{result['expected']}  "
                f"CPU {result['cpu_us_per_msg']:6.2f} µs/msg (fan-out loop {result['loop_us_per_msg']:5.2f})  "
                f"p50 {result['p50_us']:8.0f} µs  p99 {result['p99_us']:8.0f} µs  "
                f"one fan-out {result['tick_ms']:5.1f} ms  server CPU {result['cpu_share'] * 100:4.1f}%  "
                f"drops {result['drops']}",
                flush=True,
            )
    print("\nmedians:")
    base = statistics.median(r["cpu_us_per_msg"] for r in runs[modes[0]])
    require(base > 0, f"{modes[0]}: no CPU time per message measured")
    for mode in modes:
        cpu_us = statistics.median(r["cpu_us_per_msg"] for r in runs[mode])
        p50 = statistics.median(r["p50_us"] for r in runs[mode])
        p99 = statistics.median(r["p99_us"] for r in runs[mode])
        print(
            f"  {mode:18s} {cpu_us:6.2f} µs/msg  ({measured(cpu_us / base, mode + ' ratio'):4.2f}× {modes[0]})   "
            f"p50 {p50:7.0f} µs   p99 {p99:7.0f} µs"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="fan-out ticks per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=600, help="payload bytes")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", nargs="*", choices=MODES)
    arguments = parser.parse_args()

    def run_all() -> None:
        require(arguments.rounds >= 1 and arguments.clients >= 1, "--rounds and --clients must be at least 1")
        uvloop.run(main(arguments))

    run_main(run_all)
