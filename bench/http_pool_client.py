"""Client cost of the upstream HTTP pool: livechain HttpPool vs aiohttp.ClientSession (keep-alive).

A fixed-reply HTTP/1.1 server (uvloop + httptools, a provider-like JSON-RPC reply) runs in a separate
process, so getrusage(RUSAGE_SELF) of this process is the client alone. For each client and concurrency
the script sends --requests POSTs (after a warm-up) and records client CPU µs per request
((utime+stime) / requests), req/s and, at c=1, the p50 round-trip. Clients are interleaved A B A B for
--rounds rounds; medians are printed with the ratio aiohttp / HttpPool.

    .venv/bin/python bench/http_pool_client.py            # plain HTTP
    .venv/bin/python bench/http_pool_client.py --tls      # HTTPS (trustme certificate)

A benchmark, not a test: numbers depend on the machine; compare the ratios. Exits 1 with a message on stderr
when a run completes no request.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import time

import aiohttp
import httptools
import uvloop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import measured, require, run_main

from livechain.transport import HttpPool

REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
REPLY_BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x13a5f2c"}'
REPLY = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: Mon, 24 Nov 2025 02:00:00 GMT\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: keep-alive\r\n"
    b"Vary: Origin\r\n"
    b"Access-Control-Allow-Origin: *\r\n"
    b"X-Request-Id: 0b8f7c2e-5d1a-4c2b-9a55-3f1e2d4c6b7a\r\n"
    b"\r\n%s" % (len(REPLY_BODY), REPLY_BODY)
)


# ---------------------------------------------------------------------------------------------- server


class _FixedReply(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(REPLY)


def _serve(conn: multiprocessing.connection.Connection, certfile: str | None, keyfile: str | None) -> None:
    async def main() -> None:
        ctx = None
        if certfile:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(certfile, keyfile)
        server = await asyncio.get_running_loop().create_server(
            _FixedReply, "127.0.0.1", 0, ssl=ctx, backlog=1024
        )
        conn.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    uvloop.run(main())


# ---------------------------------------------------------------------------------------------- clients


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _drive(one, requests: int, concurrency: int) -> tuple[float, float, float | None]:
    """Run `requests` calls of `one()` over `concurrency` workers: (CPU µs/request, req/s, p50 µs at c=1)."""
    latencies: list[int] = []
    per_worker = requests // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await one()

    async def timed_worker() -> None:
        clock = time.perf_counter_ns
        for _ in range(per_worker):
            start = clock()
            await one()
            latencies.append(clock() - start)

    cpu0, wall0 = _cpu(), time.perf_counter()
    if concurrency == 1:
        await timed_worker()
    else:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    done = per_worker * concurrency
    require(done > 0 and wall > 0, f"{requests} requests over {concurrency} workers: no request completed")
    p50 = statistics.median(latencies) / 1000 if latencies else None
    return cpu / done * 1e6, done / wall, p50


async def _run_pool(url: str, ctx: ssl.SSLContext | None, requests: int, concurrency: int):
    pool = HttpPool(url, name="bench", max_connections=concurrency, ssl_context=ctx)
    try:

        async def one() -> None:
            response = await pool.post(REQUEST, timeout=10)
            assert response.status == 200 and response.body == REPLY_BODY

        await _drive(one, min(requests // 5, 500), concurrency)  # warm-up: open the connections
        return await _drive(one, requests, concurrency)
    finally:
        await pool.close()


async def _run_aiohttp(url: str, ctx: ssl.SSLContext | None, requests: int, concurrency: int):
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60, ssl=ctx if ctx else False)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.post(url, data=REQUEST, headers=headers) as response:
                body = await response.read()
                assert response.status == 200 and body == REPLY_BODY

        await _drive(one, min(requests // 5, 500), concurrency)
        return await _drive(one, requests, concurrency)


CLIENTS = {"HttpPool": _run_pool, "aiohttp": _run_aiohttp}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000, help="measured requests per run (default 4000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--tls", action="store_true", help="HTTPS with a trustme-issued certificate")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        client_ctx = certfile = keyfile = None
        if args.tls:
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1")
            certfile, keyfile = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            cert.cert_chain_pems[0].write_to_path(certfile)
            for pem in cert.cert_chain_pems[1:]:
                pem.write_to_path(certfile, append=True)
            cert.private_key_pem.write_to_path(keyfile)
            client_ctx = ssl.create_default_context()
            ca.configure_trust(client_ctx)

        mp = multiprocessing.get_context("spawn")
        parent, child = mp.Pipe()
        server = mp.Process(target=_serve, args=(child, certfile, keyfile), daemon=True)
        server.start()
        try:
            port = parent.recv()
            url = f"{'https' if args.tls else 'http'}://127.0.0.1:{port}/v2/bench"
            results: dict[tuple[str, int], list[tuple[float, float, float | None]]] = {}
            print(f"python {sys.version.split()[0]}, uvloop {uvloop.__version__}, aiohttp {aiohttp.__version__}, "
                  f"{'HTTPS' if args.tls else 'HTTP'}, {args.requests} requests/run, {args.rounds} rounds")  # fmt: skip
            for round_ in range(1, args.rounds + 1):
                for concurrency in args.concurrency:
                    for name, run in CLIENTS.items():
                        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
                        with runner:
                            result = runner.run(run(url, client_ctx, args.requests, concurrency))
                        results.setdefault((name, concurrency), []).append(result)
                        p50 = f"  p50 {result[2]:6.0f} µs" if result[2] is not None else ""
                        print(f"  round {round_}  c={concurrency:<3} {name:9} {result[0]:7.1f} µs CPU/req"
                              f"  {result[1]:8.0f} req/s{p50}")  # fmt: skip
        finally:
            server.terminate()
            server.join()

    print("\nmedians (client CPU µs per request, req/s, p50 at c=1)")
    for concurrency in args.concurrency:
        rows = {}
        for name in CLIENTS:
            runs = results[(name, concurrency)]
            cpu = statistics.median(r[0] for r in runs)
            rps = statistics.median(r[1] for r in runs)
            p50s = [r[2] for r in runs if r[2] is not None]
            rows[name] = cpu
            p50 = f"  p50 {statistics.median(p50s):6.0f} µs" if p50s else ""
            print(f"  c={concurrency:<3} {name:9} {cpu:7.1f} µs CPU/req  {rps:8.0f} req/s{p50}")
        ratio = measured(rows["aiohttp"] / rows["HttpPool"] if rows["HttpPool"] > 0 else None,
                         f"c={concurrency} aiohttp / HttpPool CPU")
        print(f"  c={concurrency:<3} ratio aiohttp / HttpPool CPU: {ratio:.1f}x")


if __name__ == "__main__":
    run_main(main)
