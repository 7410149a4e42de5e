"""Python cost of one proxied request, without sockets: Livechain's real edge, routes, routing, provider and
upstream pool, driven through in-memory transports on a uvloop loop.

A client transport feeds `HttpConnection.data_received` a keep-alive POST /rpc/bench; the pool's connections
have a transport whose `write()` answers on the next loop step with an nginx-like reply (`call_soon`). The
next request starts when the response is written, so this is the c=1 request path minus the kernel. The
benchmark store is folded every 250 ms of loop time as the app's timer does. Reported: µs per request
(process CPU time: one thread, no I/O wait), median and minimum of --rounds (noise only adds time, so the minimum is the steadier figure); optionally a cProfile of one round.

Use it to measure a change to the hot path precisely (the wrk benchmark has ±10 % noise on this machine):

    .venv/bin/python bench/request_path.py                       # this tree
    PYTHONPATH=/path/to/other/src .venv/bin/python bench/request_path.py   # another tree, same script
    .venv/bin/python bench/request_path.py --profile             # + cProfile, top functions by own time
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time

import uvloop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import livechain
from livechain import log as logsetup
from livechain.app import App
from livechain.config import ConfigStore, parse_config
from livechain.server.http import HttpConnection
from livechain.transport import http as transport_http

REQUEST = (
    b"POST /rpc/bench HTTP/1.1\r\nHost: 127.0.0.1:4000\r\nContent-Type: application/json\r\n"
    b"Content-Length: 63\r\n\r\n"
    b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
)
REPLY_BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
REPLY = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 24 Nov 2025 02:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
    % (len(REPLY_BODY), REPLY_BODY)
)
CONFIG = """
region: bench
persistence: {sqlite_path: null}
chains:
  bench:
    chain_id: 1
    strategy: leaderboard
    providers:
      - {id: p1, http_url: 'http://127.0.0.1:9/p1'}
      - {id: p2, http_url: 'http://127.0.0.1:9/p2'}
      - {id: p3, http_url: 'http://127.0.0.1:9/p3'}
"""


class _Transport:
    """Enough of asyncio.Transport for both sides."""

    def __init__(self, on_write) -> None:
        self.on_write = on_write
        self.closing = False

    def write(self, data: bytes) -> None:
        self.on_write(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 50000) if name == "peername" else default

    def close(self) -> None:
        self.closing = True

    abort = close

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass


def _fake_connect(loop: asyncio.AbstractEventLoop):
    async def connect(self, loop_, deadline, limit):
        conn = transport_http._Conn(self)
        conn.connection_made(_Transport(lambda data, c=conn: loop.call_soon(c.data_received, REPLY)))
        self._created += 1
        self._conns.add(conn)
        return conn

    return connect


def make_app() -> App:
    """The real App (routes, registry, chains), not started: no server, no timers, no health checks."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "livechain.yaml")
        with open(path, "w") as f:
            f.write(CONFIG)
        logsetup.setup("info", "json", stream=open(os.devnull, "w"))
        return App(ConfigStore(path, parse_config(CONFIG)))


async def run(requests: int, rounds: int, profile: bool, minimal: bool = False) -> list[float]:
    loop = asyncio.get_running_loop()
    transport_http.HttpPool._connect = _fake_connect(loop)  # type: ignore[method-assign]
    app = make_app()
    chain = app.registry.resolve("bench")
    for p in chain.pool.providers:
        chain.pool.set_chain_id_ok(p, True, 1)
        p.observe_head(1)
    chain.pool.best_head = 1
    dispatcher = app.routes
    if minimal:  # the floor: edge + pool, no features (bench/minimal_proxy.py)
        from minimal_proxy import Forward

        dispatcher = Forward(transport_http.HttpPool("http://127.0.0.1:9/", name="upstream"))
    conn = HttpConnection(dispatcher, app.limits, app.tracker)
    state = {"left": 0, "done": None, "next_fold": 0.0}

    def on_response(data: bytes) -> None:
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(data[:200])
        state["left"] -= 1
        if state["left"] <= 0:
            state["done"].set_result(None)
            return
        now = loop.time()
        if now >= state["next_fold"]:
            state["next_fold"] = now + 0.25
            chain.store.fold()
        loop.call_soon(conn.data_received, REQUEST)

    conn.connection_made(_Transport(on_response))

    async def batch(n: int) -> float:
        state["left"] = n
        state["done"] = loop.create_future()
        t0 = time.process_time()
        conn.data_received(REQUEST)
        await state["done"]
        chain.store.fold()
        return (time.process_time() - t0) / n * 1e6

    await batch(2000)  # warm-up
    results = [await batch(requests) for _ in range(rounds)]
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        await batch(requests)
        prof.disable()
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(35)
    conn.connection_lost(None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--minimal", action="store_true", help="the edge + pool floor (bench/minimal_proxy.py)")
    parser.add_argument("--json", help="also write bench/results/<name>.json")
    args = parser.parse_args()
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    results = uvloop.run(run(args.requests, args.rounds, args.profile, args.minimal))
    src = os.path.dirname(os.path.dirname(livechain.__file__))
    if args.json:
        from _common import write_result

        write_result(args.json, {"median_us": statistics.median(results), "min_us": min(results), "src": src})
    print(f"{src}: {statistics.median(results):.2f} µs/request (median of {len(results)}: "
          f"{', '.join(f'{r:.1f}' for r in results)}); min {min(results):.2f}")


if __name__ == "__main__":
    sys.exit(main())
