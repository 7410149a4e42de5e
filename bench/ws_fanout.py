"""WS fan-out end to end: N newHeads subscribers on a fast chain; delivery latency, CPU per message, RSS.

Processes (all started here, stopped by pid):
    fake provider   one process serving 3 provider WebSockets (/p1 /p2 /p3, aiohttp): every 1/--rate s it
                    emits the next head (a realistic ~1.2 KB header that chains by parentHash) to every
                    provider, in random order, the first at once and the others --jitter-ms later at most.
                    The header carries `lcbench_t`: CLOCK_MONOTONIC ns when the first copy was sent.
                    It answers eth_chainId with the configured chain id (Livechain checks it on every
                    provider WebSocket before subscribing there), eth_blockNumber with its latest head,
                    eth_subscribe / eth_unsubscribe, and anything else with a "method not found" error.
    nginx           the providers' HTTP side (health checks), fixed reply ("0x1": chain id 1, head 1)
    livechain       full feature path: 3 providers with ws_url, racing, head tracker, leaderboard, logging
    relay           baseline, same run: a minimal racing relay on the `websockets` library — subscribes on the
                    3 providers, forwards each head's first arrival with `broadcast()`; no tracker, no
                    metrics, one shared subscription id. The Python floor of the same job.
    clients         --client-procs processes of lean asyncio WebSocket clients (hand-parsed frames), each
                    subscribing to newHeads; latency = arrival − lcbench_t, recorded during the window only.

Per target and N: p50/p99 delivery latency, delivered/expected, server CPU µs per delivered message
(utime+stime delta of the server process / messages the clients received), server RSS before the
clients connect and with them subscribed. Rounds interleave the targets (livechain, relay, livechain …).
Exits 1 with a message on stderr when a target does not subscribe on the providers or delivers nothing.

    .venv/bin/python bench/ws_fanout.py                              # N = 1000 and 5000
    .venv/bin/python bench/ws_fanout.py --clients 5000 --seconds 10 --rounds 2

The clients share this 2-core machine with the server: latency is an upper bound of what a client on its own
machine would see. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import resource
import statistics
import sys
import time
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    FAKE_CHAIN_ID,
    PYTHON,
    Child,
    cpu_split,
    fake_provider_nginx,
    free_port,
    livechain_config,
    log_problems,
    measured,
    percentile,
    require,
    rss_bytes,
    run_main,
    start_livechain,
    start_port_child,
    workdir,
    write_result,
)

PROVIDERS = 3
#: the chain id of the bench chain: Livechain's config, the fake WebSocket providers' eth_chainId answer, and
#: what the fixed-reply nginx (the providers' HTTP side, health checks) answers — they must agree
CHAIN_ID = FAKE_CHAIN_ID
SUBSCRIBE = b'{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}'
STAMP = b'"lcbench_t":'


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# ---------------------------------------------------------------------------------------------- fake provider


def _h(n: int, salt: str) -> str:
    return "0x" + (f"{salt}{n:x}".encode().hex() * 8)[:64].rjust(64, "0")


def header(n: int, t_ns: int) -> dict:
    return {
        "lcbench_t": t_ns,
        "number": hex(n),
        "hash": _h(n, "h"),
        "parentHash": _h(n - 1, "h"),
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "miner": "0x95222290dd7278aa3ddd389cc1e1d165cc4bafe5",
        "stateRoot": _h(n, "s"),
        "transactionsRoot": _h(n, "t"),
        "receiptsRoot": _h(n, "r"),
        "logsBloom": "0x" + "0" * 512,
        "difficulty": "0x0",
        "gasLimit": "0x1c9c380",
        "gasUsed": "0xe4e1c0",
        "timestamp": hex(1_700_000_000 + n),
        "extraData": "0x6265617665726275696c642e6f7267",
        "mixHash": _h(n, "m"),
        "nonce": "0x0000000000000000",
        "baseFeePerGas": "0x3b9aca00",
        "withdrawalsRoot": _h(n, "w"),
        "blobGasUsed": "0x0",
        "excessBlobGas": "0x0",
        "parentBeaconBlockRoot": _h(n, "b"),
    }


def upstream_main(port: int, rate: float, jitter_ms: float, events: multiprocessing.Queue,
                  chain_id: int = CHAIN_ID) -> None:
    import orjson
    import uvloop
    from aiohttp import WSMsgType, web

    subs: dict[str, list] = {f"p{i + 1}": [] for i in range(PROVIDERS)}  # provider → [(ws, sid)]
    latest = [1000]  # the last emitted head number (eth_blockNumber)

    def answer(req: dict) -> dict:
        """A provider's reply to a request other than eth_subscribe."""
        method = req.get("method")
        if method == "eth_chainId":
            result: object = hex(chain_id)
        elif method == "net_version":
            result = str(chain_id)
        elif method == "eth_blockNumber":
            result = hex(latest[0])
        elif method == "eth_unsubscribe":
            result = True
        else:
            return {"jsonrpc": "2.0", "id": req.get("id"),
                    "error": {"code": -32601, "message": f"the method {method} does not exist/is not available"}}
        return {"jsonrpc": "2.0", "id": req.get("id"), "result": result}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        provider = request.match_info["provider"]
        ws = web.WebSocketResponse(compress=False, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req = orjson.loads(msg.data)
            if req.get("method") == "eth_subscribe":
                sid = f"0x{random.getrandbits(64):016x}"
                await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": req["id"], "result": sid}).decode())
                subs[provider].append((ws, sid))
                events.put(("subscribed", provider))
            else:
                await ws.send_str(orjson.dumps(answer(req)).decode())
        subs[provider][:] = [(w, s) for w, s in subs[provider] if w is not ws]
        return ws

    async def send(provider: str, result: bytes) -> None:
        for ws, sid in list(subs[provider]):
            if not ws.closed:
                msg = b'{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"%s","result":%s}}'
                await ws.send_str((msg % (sid.encode(), result)).decode())

    tasks: set[asyncio.Task] = set()

    def spawn(coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def emit() -> None:
        loop = asyncio.get_running_loop()
        n = 1000
        period = 1.0 / rate
        next_at = loop.time()
        rng = random.Random(1)
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            n += 1
            latest[0] = n
            order = [f"p{i + 1}" for i in range(PROVIDERS)]
            rng.shuffle(order)
            result = orjson.dumps(header(n, time.monotonic_ns()))
            spawn(send(order[0], result))
            for provider in order[1:]:
                loop.call_later(rng.uniform(0, jitter_ms) / 1000, lambda p=provider, r=result: spawn(send(p, r)))

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{provider}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        events.put(("listening", port))
        await emit()

    uvloop.run(main())


# ---------------------------------------------------------------------------------------------- clients


def clients_main(port: int, path: str, count: int, conn) -> None:
    raise_nofile()
    import uvloop

    uvloop.run(_clients(port, path, count, conn))


class _Client(asyncio.Protocol):
    __slots__ = ("buf", "rec", "shared", "subscribed", "transport", "upgraded")

    def __init__(self, shared: dict) -> None:
        self.shared = shared
        self.buf = bytearray()
        self.upgraded = False
        self.subscribed = False
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(
            b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % self.shared["path"]
        )

    def _send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)  # masked with a zero key: the payload goes as is
        head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        self.transport.write(head + b"\0\0\0\0" + payload)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.shared["failed"] += 1
                self.transport.close()
                return
            del buf[: end + 4]
            self.upgraded = True
            self._send(1, SUBSCRIBE)
        shared = self.shared
        while len(buf) >= 2:
            b1 = buf[1] & 0x7F
            if b1 < 126:
                start = 2
            elif b1 == 126:
                if len(buf) < 4:
                    return
                b1, start = int.from_bytes(buf[2:4], "big"), 4
            else:
                if len(buf) < 10:
                    return
                b1, start = int.from_bytes(buf[2:10], "big"), 10
            end = start + b1
            if len(buf) < end:
                return
            opcode = buf[0] & 0x0F
            if opcode == 1:
                if not self.subscribed:
                    self.subscribed = True
                    shared["subscribed"] += 1
                    if shared["subscribed"] == shared["count"]:
                        shared["ready"].set()
                elif shared["recording"]:
                    i = buf.find(STAMP, start, end)
                    if i >= 0:
                        j = i + len(STAMP)
                        k = buf.find(b",", j, end)
                        shared["lat"].append((now - int(buf[j:k])) // 1000)
            elif opcode == 9:
                self._send(10, bytes(buf[start:end]))
            elif opcode == 8:
                self.transport.close()
            del buf[:end]

    def connection_lost(self, exc) -> None:
        self.shared["lost"] += 1


async def _clients(port: int, path: str, count: int, conn) -> None:
    loop = asyncio.get_running_loop()
    shared = {"path": path.encode(), "count": count, "subscribed": 0, "failed": 0, "lost": 0,
              "recording": False, "lat": array("q"), "ready": asyncio.Event()}
    for i in range(count):
        for attempt in range(50):
            try:
                await loop.create_connection(lambda: _Client(shared), "127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05 * (attempt + 1))
        if i % 100 == 99:
            await asyncio.sleep(0.02)  # don't overflow the listen backlog
    try:
        await asyncio.wait_for(shared["ready"].wait(), 120)
    except TimeoutError:
        pass
    conn.send(("ready", shared["subscribed"]))
    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        if cmd == "start":
            shared["lat"] = array("q")
            shared["recording"] = True
        elif cmd == "stop":
            shared["recording"] = False
            conn.send(("result", shared["lat"].tobytes(), shared["lost"]))
            return


# ---------------------------------------------------------------------------------------------- relay (baseline)

_RELAY = r'''
import asyncio, sys, orjson, uvloop
from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve

upstream, providers = sys.argv[1], int(sys.argv[2])
clients = set()

async def client(ws):
    async for message in ws:
        req = orjson.loads(message)
        await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": "0x1"}).decode())
        clients.add(ws)
    clients.discard(ws)

async def provider(name, seen):
    async with connect(f"{upstream}/{name}", compression=None, max_size=None) as ws:
        await ws.send('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
        await ws.recv()
        async for message in ws:
            key = orjson.loads(message)["params"]["result"]["hash"]
            if key in seen:
                continue
            seen[key] = None
            if len(seen) > 10000:
                del seen[next(iter(seen))]
            broadcast(clients, message)

async def main():
    seen = {}
    async with serve(client, "127.0.0.1", 0, compression=None, max_size=None) as server:
        print("PORT", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.gather(*(provider(f"p{i + 1}", seen) for i in range(providers)))

uvloop.run(main())
'''


def start_relay(d: str, upstream_port: int) -> tuple[Child, int]:
    path = os.path.join(d, "relay.py")
    with open(path, "w") as f:
        f.write(_RELAY)
    return start_port_child([PYTHON, path, f"ws://127.0.0.1:{upstream_port}", str(PROVIDERS)], "relay")


# ---------------------------------------------------------------------------------------------- one measurement


def measure(mp, target: str, port: int, path: str, pid: int, clients: int, procs: int, seconds: float,
            rate: float) -> dict:
    rss_before = rss_bytes(pid)
    pipes, workers = [], []
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    t0 = time.monotonic()
    for n in per:
        parent, child = mp.Pipe()
        p = mp.Process(target=clients_main, args=(port, path, n, child), daemon=True)
        p.start()
        pipes.append(parent)
        workers.append(p)
    subscribed = sum(pipe.recv()[1] for pipe in pipes)
    connect_s = time.monotonic() - t0
    time.sleep(2.0)  # settle: every client has received a few heads
    rss_with = rss_bytes(pid)
    user0, sys0 = cpu_split(pid)
    for pipe in pipes:
        pipe.send("start")
    time.sleep(seconds)
    for pipe in pipes:
        pipe.send("stop")
    user1, sys1 = cpu_split(pid)
    user, kernel = user1 - user0, sys1 - sys0
    cpu = user + kernel
    lat = array("q")
    lost = 0
    for pipe in pipes:
        _, raw, lost_n = pipe.recv()
        chunk = array("q")
        chunk.frombytes(raw)
        lat.extend(chunk)
        lost += lost_n
    for p in workers:
        p.join(15)
        if p.is_alive():
            p.terminate()
            p.join(5)
    time.sleep(1.0)  # let the server notice the disconnects before the next round
    delivered = len(lat)
    expected = int(clients * rate * seconds)
    require(delivered, f"{target} delivered 0 of {expected} messages to {clients} clients in {seconds:g} s "
                       f"({subscribed} subscribed, {lost} connections lost)")
    values = sorted(lat)
    return {
        "target": target, "clients": clients, "subscribed": subscribed, "connect_s": round(connect_s, 1),
        "delivered": delivered, "expected": expected,
        "p50_ms": measured(percentile(values, 0.50), f"{target} p50") / 1000,
        "p99_ms": measured(percentile(values, 0.99), f"{target} p99") / 1000,
        "max_ms": values[-1] / 1000,
        "cpu_us_per_msg": cpu / max(1, delivered) * 1e6, "cpu_share": cpu / seconds,
        "user_us_per_msg": user / max(1, delivered) * 1e6, "sys_us_per_msg": kernel / max(1, delivered) * 1e6,
        "rss_before_mb": rss_before / 2**20, "rss_with_mb": rss_with / 2**20,
        "rss_per_client_kb": (rss_with - rss_before) / max(1, subscribed) / 1024, "lost": lost,
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rate", type=float, default=5.0, help="heads per second (5 = 0.2 s blocks)")
    parser.add_argument("--jitter-ms", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--no-relay", action="store_true", help="skip the websockets relay baseline")
    args = parser.parse_args()
    raise_nofile()
    mp = multiprocessing.get_context("spawn")
    runs: list[dict] = []
    with workdir("lcbench-ws-") as d:
        http_port, ws_port = free_port(), free_port()
        children: list[Child] = []
        events = mp.Queue()
        upstream = mp.Process(target=upstream_main, args=(ws_port, args.rate, args.jitter_ms, events, CHAIN_ID),
                              daemon=True)
        upstream.start()
        try:
            require(events.get(timeout=20)[0] == "listening", "the fake WebSocket providers did not start")
            children.append(fake_provider_nginx(d, http_port))
            chain = (
                f"  bench:\n    chain_id: {CHAIN_ID}\n    strategy: leaderboard\n    providers:\n"
                + "".join(
                    f"      - {{id: p{i + 1}, http_url: 'http://127.0.0.1:{http_port}/p{i + 1}', "
                    f"ws_url: 'ws://127.0.0.1:{ws_port}/p{i + 1}'}}\n"
                    for i in range(PROVIDERS)
                )
            )
            config = livechain_config(chain).replace(
                "max_connections_per_ip: 100000}",
                "max_connections_per_ip: 100000, ws: {max_subscriptions: 10, ping_interval: 60s}}",
            )
            lc, lc_port = start_livechain(d, config)
            children.append(lc)
            targets = {"livechain": (lc_port, "/ws/rpc/bench", lc.pid)}
            if not args.no_relay:
                relay, relay_port = start_relay(d, ws_port)
                children.append(relay)
                targets["relay"] = (relay_port, "/", relay.pid)
            deadline = time.monotonic() + 20
            subscribed = 0
            while subscribed < PROVIDERS * len(targets) and time.monotonic() < deadline:
                try:
                    if events.get(timeout=1)[0] == "subscribed":
                        subscribed += 1
                except Exception:
                    pass
            require(subscribed >= PROVIDERS * len(targets),
                    f"only {subscribed} of {PROVIDERS * len(targets)} upstream newHeads subscriptions arrived at the "
                    f"fake providers in 20 s ({' and '.join(targets)} × {PROVIDERS} providers): a target did not "
                    f"subscribe; Livechain's last warnings/errors:\n    {log_problems(d)}")
            time.sleep(2.0)
            print(f"{PROVIDERS} providers, {args.rate:g} heads/s, jitter ≤ {args.jitter_ms:g} ms, "
                  f"{args.seconds:g} s windows, {args.client_procs} client processes", flush=True)
            for r in range(args.rounds):
                for n in args.clients:
                    for target, (port, path, pid) in targets.items():
                        res = measure(mp, target, port, path, pid, n, args.client_procs, args.seconds, args.rate)
                        res["round"] = r + 1
                        runs.append(res)
                        print(f"  round {r + 1} N={n:<5} {target:9} p50 {res['p50_ms']:6.1f} ms  p99 {res['p99_ms']:6.1f} ms"
                              f"  delivered {res['delivered']}/{res['expected']}  {res['cpu_us_per_msg']:5.1f} µs CPU/msg"
                              f" (user {res['user_us_per_msg']:.1f} + sys {res['sys_us_per_msg']:.1f})"
                              f"  CPU {res['cpu_share'] * 100:4.1f}%  RSS {res['rss_before_mb']:.0f}→{res['rss_with_mb']:.0f} MB"
                              f"  ({res['rss_per_client_kb']:.1f} KB/client)  connect {res['connect_s']} s  lost {res['lost']}",
                              flush=True)
        finally:
            for child in reversed(children):
                child.stop()
            upstream.terminate()
            upstream.join(5)
    summary: dict = {"runs": runs, "by": {}, "config": vars(args)}
    for n in args.clients:
        for target in ["livechain", "relay"]:
            rs = [x for x in runs if x["clients"] == n and x["target"] == target]
            if not rs:
                continue
            summary["by"][f"{target}/{n}"] = {
                k: statistics.median([x[k] for x in rs])
                for k in ("p50_ms", "p99_ms", "cpu_us_per_msg", "user_us_per_msg", "sys_us_per_msg", "rss_with_mb", "rss_before_mb", "rss_per_client_kb")
            } | {"delivered": sum(x["delivered"] for x in rs), "expected": sum(x["expected"] for x in rs)}
    print("\nmedians")
    for key, row in summary["by"].items():
        print(f"  {key:15s} p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  {row['cpu_us_per_msg']:5.1f} µs CPU/msg"
              f"  RSS {row['rss_with_mb']:.0f} MB ({row['rss_per_client_kb']:.1f} KB/client)"
              f"  delivered {row['delivered']}/{row['expected']}")
    write_result("ws_fanout", summary)
    return summary


if __name__ == "__main__":
    run_main(main)
