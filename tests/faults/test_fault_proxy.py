"""The fault proxy over real sockets: a small keep-alive JSON upstream, a WebSocket upstream, no mocks."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import httptools
import pytest
import uvloop
from aiohttp import web

from livechain.faults import Fault, FaultControlServer, FaultError, FaultProxy

SHORT = 0.3  # "never answers" is asserted as "not within SHORT seconds"
BIG = b"x" * 6000


# ---- upstreams ---------------------------------------------------------------------------------
class JsonUpstream(asyncio.Protocol):
    """HTTP/1.1 keep-alive server: answers every request with JSON echoing its path and body."""

    def __init__(self, server: Upstream) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        self.server.requests.append((self.url, body))
        if self.url == b"/big":
            payload = BIG
        else:
            payload = json.dumps(
                {"jsonrpc": "2.0", "id": len(self.server.requests), "result": body.decode()}
            ).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )


class Upstream:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.port = 0


@contextlib.asynccontextmanager
async def serve_json_upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    server = await asyncio.get_running_loop().create_server(lambda: JsonUpstream(up), "127.0.0.1", 0)
    up.port = server.sockets[0].getsockname()[1]
    try:
        yield up
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def serve_ws_proxy() -> AsyncIterator[FaultProxy]:
    """A proxy in front of an aiohttp WebSocket server that pushes {"n": i} every 50 ms."""

    async def pusher(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def push() -> None:
            for n in range(10_000):
                await ws.send_json({"n": n})
                await asyncio.sleep(0.05)

        pushing = asyncio.create_task(push(), name="test/ws-push")
        try:
            async for _ in ws:  # reading lets the server answer pings and the close handshake
                pass
        finally:
            pushing.cancel()
            await asyncio.gather(pushing, return_exceptions=True)
        return ws

    app = web.Application()
    app.router.add_get("/ws", pusher)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        async with FaultProxy("127.0.0.1", runner.addresses[0][1], name="ws") as p:
            yield p
    finally:
        await runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serve_json_upstream() as up:
        yield up


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", upstream.port, name="anvil") as p:
        yield p


@pytest.fixture
async def ws_proxy() -> AsyncIterator[FaultProxy]:
    async with serve_ws_proxy() as p:
        yield p


# ---- a tiny HTTP client ----------------------------------------------------------------------------
def request(body: bytes = b'{"method":"eth_blockNumber"}', path: bytes = b"/") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path
    return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(lines[0].split()[1]), headers, body


async def connect(p: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(p.host, p.port)


async def roundtrip(p: FaultProxy, body: bytes = b"ping") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await connect(p)
    try:
        writer.write(request(body))
        return await asyncio.wait_for(read_response(reader), 2)
    finally:
        writer.close()


async def assert_silent(reader: asyncio.StreamReader) -> None:
    """Nothing arrives and the connection is not closed within SHORT seconds."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), SHORT)


# ---- transparent forwarding and latency ----------------------------------------------------------
async def test_transparent_mode_forwards_keep_alive_requests_over_one_upstream_connection(proxy, upstream):
    """With no fault, three requests on one client connection reach the provider over one connection
    and each reply comes back intact; the stats count the connection and the bytes both ways."""
    reader, writer = await connect(proxy)
    for i in range(3):
        writer.write(request(b"req-%d" % i))
        status, _, body = await asyncio.wait_for(read_response(reader), 2)
        assert status == 200
        assert json.loads(body)["result"] == f"req-{i}"
    writer.close()
    assert upstream.connections == 1
    assert [b for _, b in upstream.requests] == [b"req-0", b"req-1", b"req-2"]
    stats = proxy.stats
    assert stats["connections_total"] == 1
    assert stats["bytes_up"] >= 3 * len(request(b"req-0"))
    assert stats["bytes_down"] > stats["bytes_up"]


async def test_a_half_closed_client_still_receives_the_whole_reply(proxy, upstream):
    """A client that sends its request and then shuts down its write side gets the reply, then EOF."""
    reader, writer = await connect(proxy)
    writer.write(request(b"half"))
    writer.write_eof()
    status, _, body = await asyncio.wait_for(read_response(reader), 2)
    assert (status, json.loads(body)["result"]) == (200, "half")
    writer.close()


async def test_latency_delays_each_reply_by_at_least_the_injected_amount(proxy):
    """latency_ms=200 makes a round trip take at least ~200 ms (and not absurdly longer)."""
    proxy.set(Fault(latency_ms=200))
    started = time.perf_counter()
    status, _, _ = await roundtrip(proxy)
    elapsed = time.perf_counter() - started
    assert status == 200
    assert 0.18 <= elapsed < 1.5


async def test_a_burst_of_chunks_is_delayed_once_not_once_per_chunk():
    """Ten chunks sent 10 ms apart through 150 ms of latency all arrive ~150 ms after they left:
    the whole burst takes < 1 s, where cumulative sleeps would take ≥ 1.5 s."""

    async def burst(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(2)
        for i in range(10):
            writer.write(b"chunk-%d;" % i)
            await asyncio.sleep(0.01)
        writer.close()

    server = await asyncio.start_server(burst, "127.0.0.1", 0)
    async with FaultProxy("127.0.0.1", server.sockets[0].getsockname()[1]) as p:
        p.set(Fault(latency_ms=150))
        reader, writer = await connect(p)
        started = time.perf_counter()
        writer.write(b"go")
        first = await asyncio.wait_for(reader.read(100), 2)
        first_at = time.perf_counter() - started
        rest = await asyncio.wait_for(reader.read(), 2)  # until EOF
        done_at = time.perf_counter() - started
        writer.close()
    server.close()
    assert (first + rest) == b"".join(b"chunk-%d;" % i for i in range(10))
    assert first_at >= 0.9 * 0.15
    assert done_at < 1.0


# ---- connection-level faults -----------------------------------------------------------------------
async def test_refuse_gives_connection_refused_and_clearing_rebinds_the_same_port(proxy):
    """refuse closes the listener (ECONNREFUSED) and resets live connections; clear() listens again
    on the very same port before it returns."""
    port = proxy.port
    reader, writer = await connect(proxy)
    proxy.set(Fault(mode="refuse"))
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 1)
    writer.close()
    proxy.clear()
    assert proxy.port == port
    status, _, _ = await roundtrip(proxy)
    assert status == 200


async def test_reset_aborts_at_the_first_request_bytes_and_nothing_reaches_the_provider(proxy, upstream):
    """reset: the client's first bytes are answered by an RST; the provider never sees the request."""
    proxy.set(Fault(mode="reset"))
    reader, writer = await connect(proxy)
    writer.write(request())
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1000), 2)
    writer.close()
    assert upstream.requests == []
    assert proxy.stats["faults_applied"] >= 1


async def test_reset_on_a_live_connection_resets_it_at_once(proxy):
    """Switching to reset aborts an established keep-alive connection without waiting for traffic."""
    reader, writer = await connect(proxy)
    writer.write(request())
    await asyncio.wait_for(read_response(reader), 2)
    proxy.set(Fault(mode="reset"))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1000), 2)
    writer.close()


async def test_reset_mid_response_delivers_part_of_the_reply_then_resets(proxy, upstream):
    """The request reaches the provider; the client gets a non-empty prefix of the reply, then an RST."""
    proxy.set(Fault(mode="reset_mid_response"))
    reader, writer = await connect(proxy)
    writer.write(request(path=b"/big"))
    received = b""
    with pytest.raises(ConnectionResetError):
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 2)
            assert chunk, "expected a reset, got a clean EOF"
            received += chunk
    writer.close()
    full = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(BIG),
        BIG,
    )
    assert 0 < len(received) < len(full)
    assert full.startswith(received)
    assert len(upstream.requests) == 1


async def test_blackhole_accepts_reads_and_never_answers_or_closes(proxy, upstream):
    """blackhole: connect succeeds, the request vanishes, no reply and no EOF; the provider sees nothing."""
    proxy.set(Fault(mode="blackhole"))
    reader, writer = await connect(proxy)
    writer.write(request())
    await assert_silent(reader)
    writer.close()
    assert upstream.requests == []


async def test_stall_forwards_the_request_but_holds_the_reply_and_leaving_it_aborts(proxy, upstream):
    """stall: the provider receives the request but the client gets nothing; clearing the fault aborts
    the stalled connection (it is considered lost) while new connections work again."""
    proxy.set(Fault(mode="stall"))
    reader, writer = await connect(proxy)
    writer.write(request(b"stalled"))
    await assert_silent(reader)
    assert [b for _, b in upstream.requests] == [b"stalled"]
    proxy.clear()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1000), 2)
    writer.close()
    assert (await roundtrip(proxy))[0] == 200


async def test_an_unreachable_provider_resets_the_client():
    """When the target refuses connections, the proxied client connection is reset."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    dead_port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with FaultProxy("127.0.0.1", dead_port) as p:
        reader, writer = await connect(p)
        writer.write(request())
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1000), 2)
        writer.close()


# ---- HTTP-level faults -------------------------------------------------------------------------------
async def test_http_status_answers_pipelined_and_sequential_requests_on_one_connection(proxy, upstream):
    """http_status 502: three pipelined requests (one with a chunked body) then a fourth sequential one
    are each answered with 502 and a JSON error, keep-alive; nothing is forwarded."""
    proxy.set(Fault(mode="http_status", status=502))
    reader, writer = await connect(proxy)
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
    writer.write(request(b"one") + chunked + request(b"three"))
    for _ in range(3):
        status, headers, body = await asyncio.wait_for(read_response(reader), 2)
        assert status == 502
        assert json.loads(body) == {"error": "injected 502"}
        assert headers["connection"] == "keep-alive"
    writer.write(request(b"four"))
    assert (await asyncio.wait_for(read_response(reader), 2))[0] == 502
    writer.close()
    assert upstream.connections == 0
    assert proxy.stats["faults_applied"] == 4


async def test_http_429_carries_retry_after_over_keep_alive(proxy):
    """status 429 with retry_after=2 sends Retry-After: 2 on each of three keep-alive requests."""
    proxy.set(Fault(mode="http_status", status=429, retry_after=2))
    reader, writer = await connect(proxy)
    for _ in range(3):
        writer.write(request())
        status, headers, body = await asyncio.wait_for(read_response(reader), 2)
        assert (status, headers["retry-after"]) == (429, "2")
        assert json.loads(body) == {"error": "injected 429"}
    writer.close()


async def test_garbage_answers_200_with_a_body_that_is_not_json(proxy, upstream):
    """garbage: HTTP 200, text/html, and a body that json cannot parse."""
    proxy.set(Fault(mode="garbage"))
    status, headers, body = await roundtrip(proxy)
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        json.loads(body)
    assert upstream.requests == []


async def test_a_live_keep_alive_connection_switches_to_http_status_at_its_next_request(proxy, upstream):
    """A pooled connection opened before the fault gets the 503 on its next request, and the real
    provider's answers again after the fault is cleared — without reconnecting."""
    reader, writer = await connect(proxy)
    for expected, fault in ((200, None), (503, Fault(mode="http_status", status=503)), (200, Fault())):
        if fault is not None:
            proxy.set(fault)
        writer.write(request(b"x"))
        status, _, body = await asyncio.wait_for(read_response(reader), 2)
        assert status == expected
        assert ("result" in json.loads(body)) is (expected == 200)
    writer.close()
    assert proxy.stats["connections_total"] == 1
    assert len(upstream.requests) == 2


async def test_a_connection_opened_before_http_status_but_still_idle_gets_the_status(proxy, upstream):
    """A client that connected under no fault and sends its first request after the switch is
    answered by the fault, not by the provider."""
    reader, writer = await connect(proxy)
    await asyncio.sleep(0.05)  # the proxy has connected upstream by now
    proxy.set(Fault(mode="http_status", status=502))
    writer.write(request())
    assert (await asyncio.wait_for(read_response(reader), 2))[0] == 502
    writer.close()
    assert upstream.requests == []


async def test_http_status_answers_a_malformed_request_with_400_and_closes(proxy):
    """Bytes that are not HTTP get a 400 and the connection is closed."""
    proxy.set(Fault(mode="http_status"))
    reader, writer = await connect(proxy)
    writer.write(b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
    status, headers, _ = await asyncio.wait_for(read_response(reader), 2)
    assert (status, headers["connection"]) == (400, "close")
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_http_status_with_probability_half_injects_some_requests_and_forwards_the_rest(proxy, upstream):
    """probability=0.5 over 200 keep-alive requests gives both 503s and real 200s, decided per request;
    exactly the 200s reached the provider."""
    proxy.set(Fault(mode="http_status", status=503, probability=0.5))
    reader, writer = await connect(proxy)
    statuses = []
    for i in range(200):
        writer.write(request(b"%d" % i))
        statuses.append((await asyncio.wait_for(read_response(reader), 2))[0])
    writer.close()
    assert set(statuses) == {200, 503}
    assert 40 <= statuses.count(503) <= 160
    assert len(upstream.requests) == statuses.count(200)


async def test_reset_with_probability_half_resets_some_connections_only(proxy):
    """probability=0.5 for a per-connection fault: over 60 connections some are reset, some served."""
    proxy.set(Fault(mode="reset", probability=0.5))
    outcomes = []
    for _ in range(60):
        try:
            outcomes.append((await roundtrip(proxy))[0])
        except ConnectionResetError:
            outcomes.append("reset")
    assert set(outcomes) == {200, "reset"}


# ---- WebSocket ----------------------------------------------------------------------------------------
async def test_websocket_frames_pass_through_in_order(ws_proxy):
    """A WebSocket through the proxy receives the provider's pushes in order."""
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_proxy.ws_url + "/ws") as ws:
        got = [(await asyncio.wait_for(ws.receive_json(), 2))["n"] for _ in range(3)]
    assert got == [0, 1, 2]


async def test_drop_connections_aborts_a_live_websocket(ws_proxy):
    """drop_connections() returns how many connections it aborted and the WS client sees its socket die."""
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_proxy.ws_url + "/ws") as ws:
        await asyncio.wait_for(ws.receive_json(), 2)
        assert ws_proxy.drop_connections() == 1
        msg = await asyncio.wait_for(_next_non_data(ws), 2)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    assert ws_proxy.stats["connections_open"] == 0


async def test_blackhole_on_a_live_websocket_stops_frames_until_the_fault_is_left(ws_proxy):
    """blackhole freezes a live WS: no frames for SHORT seconds though the provider keeps pushing every
    50 ms, the socket stays open; leaving the fault aborts it so the client reconnects."""
    await _assert_live_websocket_freezes(ws_proxy, "blackhole")


async def test_silent_freezes_a_live_websocket_like_blackhole(ws_proxy):
    """silent is an alias of blackhole."""
    await _assert_live_websocket_freezes(ws_proxy, "silent")


async def _assert_live_websocket_freezes(ws_proxy: FaultProxy, mode: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_proxy.ws_url + "/ws") as ws:
        await asyncio.wait_for(ws.receive_json(), 2)
        ws_proxy.set(Fault(mode=mode))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.receive(), SHORT)
        assert ws_proxy.stats["connections_open"] == 1
        ws_proxy.clear()
        msg = await asyncio.wait_for(_next_non_data(ws), 2)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)


async def test_http_status_answers_a_websocket_upgrade_with_the_status(ws_proxy):
    """A WS handshake under http_status 503 fails with 503 instead of reaching the provider."""
    ws_proxy.set(Fault(mode="http_status", status=503))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(ws_proxy.ws_url + "/ws")
    assert caught.value.status == 503


async def test_http_status_that_does_not_apply_lets_a_websocket_through_untouched(ws_proxy):
    """With http_status at probability 0 the upgrade is forwarded and frames flow as usual."""
    ws_proxy.set(Fault(mode="http_status", status=503, probability=0.0))
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_proxy.ws_url + "/ws") as ws:
        got = [(await asyncio.wait_for(ws.receive_json(), 2))["n"] for _ in range(2)]
    assert got == [0, 1]


async def test_a_live_websocket_is_left_alone_by_http_status(ws_proxy):
    """An HTTP status fault cannot apply inside a WebSocket: a live one keeps receiving frames."""
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_proxy.ws_url + "/ws") as ws:
        await asyncio.wait_for(ws.receive_json(), 2)
        ws_proxy.set(Fault(mode="http_status", status=503))
        assert "n" in await asyncio.wait_for(ws.receive_json(), 2)
        await ws.ping()
        assert "n" in await asyncio.wait_for(ws.receive_json(), 2)


async def _next_non_data(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    while True:
        msg = await ws.receive()
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return msg


# ---- lifecycle --------------------------------------------------------------------------------------
async def test_stop_closes_every_connection_leaves_no_tasks_and_is_idempotent(upstream):
    """stop() closes live connections (the client sees EOF/reset), cancels the proxy's tasks and may be
    called twice."""
    p = FaultProxy("127.0.0.1", upstream.port, name="lifecycle")
    await p.start()
    reader, writer = await connect(p)
    writer.write(request())
    await asyncio.wait_for(read_response(reader), 2)
    await p.stop()
    await p.stop()
    try:
        assert await asyncio.wait_for(reader.read(), 1) == b""
    except ConnectionResetError:
        pass
    writer.close()
    assert p.stats["connections_open"] == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("faults/lifecycle")]
    with pytest.raises(ConnectionRefusedError):
        await connect(p)


# ---- Fault values and the control port ---------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"mode": "explode"}, "mode must be one of"),
        ({"latency_ms": -1}, "latency_ms must be >= 0"),
        ({"latency_ms": "5"}, "latency_ms must be a number"),
        ({"status": 99}, "status must be between 100 and 599"),
        ({"probability": 1.5}, "probability must be between 0 and 1"),
        ({"mode": "none", "lateny_ms": 5}, "unknown field(s) 'lateny_ms'"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_fault_from_dict_rejects_bad_input_with_a_message_naming_the_problem(data, fragment):
    """Every invalid field raises FaultError whose message names the field and the rule."""
    with pytest.raises(FaultError) as caught:
        Fault.from_dict(data)
    assert fragment in str(caught.value)


def test_fault_round_trips_through_its_dict():
    """to_dict/from_dict are inverse."""
    fault = Fault(mode="http_status", latency_ms=5, jitter_ms=1, status=429, retry_after=0.5, probability=0.3)
    assert Fault.from_dict(json.loads(json.dumps(fault.to_dict()))) == fault


async def test_control_server_lists_sets_clears_and_drops_by_name_only(proxy):
    """GET lists proxies by name without their targets; PUT sets (200), bad JSON/field/mode → 400,
    unknown name → 404; DELETE clears; POST drop aborts live connections."""
    async with FaultControlServer({"anvil": proxy}) as control, aiohttp.ClientSession() as http:
        base = control.url
        async with http.get(f"{base}/faults") as resp:
            listing = await resp.json()
            assert resp.status == 200
        assert set(listing) == {"anvil"}
        assert str(proxy.target_port) not in json.dumps(listing)

        async with http.put(f"{base}/faults/anvil", json={"mode": "http_status", "status": 503}) as resp:
            assert resp.status == 200
            assert (await resp.json())["fault"]["status"] == 503
        assert proxy.fault == Fault(mode="http_status", status=503)

        for body, fragment in (
            (b"{not json", "not valid JSON"),
            (b'{"mode": "boom"}', "mode must be one of"),
            (b'{"jitter": 3}', "unknown field"),
        ):
            async with http.put(f"{base}/faults/anvil", data=body) as resp:
                assert resp.status == 400
                assert fragment in (await resp.json())["error"]
        assert proxy.fault.status == 503

        async with http.put(f"{base}/faults/nope", json={}) as resp:
            assert resp.status == 404

        async with http.delete(f"{base}/faults/anvil") as resp:
            assert resp.status == 200
        assert proxy.fault == Fault()

        reader, writer = await connect(proxy)
        writer.write(request())
        await asyncio.wait_for(read_response(reader), 2)
        async with http.post(f"{base}/faults/anvil/drop") as resp:
            assert (await resp.json())["dropped"] == 1
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 2)
        writer.close()


# ---- the same scenarios on uvloop (what `livechain serve` runs on) --------------------------------
_SCENARIOS = [
    f for name, f in list(globals().items()) if name.startswith("test_") and inspect.iscoroutinefunction(f)
]


async def _run_with_own_fixtures(scenario) -> None:
    wanted = set(inspect.signature(scenario).parameters)
    async with contextlib.AsyncExitStack() as stack:
        args = {}
        if wanted & {"upstream", "proxy"}:
            args["upstream"] = await stack.enter_async_context(serve_json_upstream())
            proxy = FaultProxy("127.0.0.1", args["upstream"].port, name="anvil")
            args["proxy"] = await stack.enter_async_context(proxy)
        if "ws_proxy" in wanted:
            args["ws_proxy"] = await stack.enter_async_context(serve_ws_proxy())
        await scenario(**{k: v for k, v in args.items() if k in wanted})


@pytest.mark.parametrize("scenario", _SCENARIOS, ids=lambda f: f.__name__.removeprefix("test_"))
def test_on_uvloop(scenario):
    """Every scenario above holds on uvloop as well as on the stdlib loop."""
    uvloop.run(_run_with_own_fixtures(scenario))
