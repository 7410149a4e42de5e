"""The dashboard's server side without a browser: the SSE live push, the load simulator, the fault controls.

A real Livechain on port 0 with anvil behind fault proxies (tests/conftest.py); SSE is read over a raw
socket so arrival times are measured where the bytes land.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from typing import Any

import aiohttp
import orjson
import pytest

from livechain.faults import Fault
from tests.conftest import dev_chain

TOKEN = "dashboard-test-token"


# ---------------------------------------------------------------------------------------------- helpers


class Sse:
    """A minimal Server-Sent Events client on a raw connection; each message keeps its arrival time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, headers: str) -> None:
        self.reader, self.writer, self.status, self.headers = reader, writer, status, headers
        self._buffer = b""

    @classmethod
    async def open(cls, port: int, path: str = "/api/live", extra: str = "") -> Sse:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status = int(head.split(b" ", 2)[1])
        return cls(reader, writer, status, head.decode("latin-1").lower())

    async def next(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next `tick` message as {"id", "data", "at"} (at = monotonic arrival time)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n\n", 1)
                fields = dict(line.split(b": ", 1) for line in raw.split(b"\n") if b": " in line)
                if fields.get(b"event") == b"tick":
                    return {"id": int(fields[b"id"]), "data": orjson.loads(fields[b"data"]), "at": time.monotonic()}
            chunk = await asyncio.wait_for(self.reader.read(65536), max(0.01, deadline - time.monotonic()))
            if not chunk:
                raise EOFError("stream closed")
            self._buffer += chunk

    async def until(self, predicate, timeout: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if predicate(message["data"]):
                return message

    def close(self) -> None:
        self.writer.close()


async def request(lc, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else (orjson.dumps(body) if body is not None else None)
    async with lc.session.request(method, lc.base + path, data=data, headers=headers) as resp:
        raw = await resp.read()
        return resp.status, (orjson.loads(raw) if raw else None)


@pytest.fixture
async def livechain(start_livechain, proxies):
    """Livechain with chain `dev` (providers p0..p2, each behind its fault proxy), admin token set, not demo."""
    faults = {f"dev/p{i}": proxy for i, proxy in enumerate(proxies)}
    proxies[1].set(Fault(latency_ms=7))  # a "profile" the deployment started with: what clear returns to
    return await start_livechain(config_text_for(proxies), admin_token=TOKEN, faults=faults)


def config_text_for(proxies) -> str:
    from tests.conftest import config_text

    return config_text(dev_chain(proxies))


# ---------------------------------------------------------------------------------------------- live push


async def test_published_events_reach_an_sse_client_in_one_batch_within_250_ms(livechain):
    """Events published together arrive together in one `tick`, less than 250 ms after publishing, with
    the overview of every chain alongside; the stream is text/event-stream with a retry hint."""
    sse = await Sse.open(livechain.app.port, "/api/live?chain=dev")
    try:
        assert sse.status == 200 and "text/event-stream" in sse.headers
        hello = await sse.next()
        assert hello["data"]["overview"]["chains"][0]["name"] == "dev"
        assert "leaderboard" in hello["data"]
        worst = 0.0
        for round_ in range(8):
            await asyncio.sleep(random.uniform(0.0, 0.3))
            published = time.monotonic()
            for k in range(5):
                livechain.app.events.publish("probe", chain="dev", round=round_, k=k)
            message = await sse.until(lambda d, r=round_: any(e.get("round") == r for e in d["events"]))
            probes = [e for e in message["data"]["events"] if e.get("round") == round_]
            assert [e["k"] for e in probes] == [0, 1, 2, 3, 4], "events published together were split"
            assert message["id"] == message["data"]["seq"] >= probes[-1]["seq"]
            worst = max(worst, message["at"] - published)
        assert worst < 0.25, f"an event took {worst * 1000:.0f} ms to reach the client"
    finally:
        sse.close()


async def test_the_live_push_is_batched_about_five_times_a_second_not_per_event(livechain):
    """200 events published over one second arrive in about five messages (one per ~200 ms tick)."""
    sse = await Sse.open(livechain.app.port)
    try:
        await sse.next()
        for i in range(200):
            livechain.app.events.publish("probe", i=i)
            if i % 20 == 19:
                await asyncio.sleep(0.1)
        seen: list[int] = []
        messages = 0
        while len(seen) < 200:
            message = await sse.next()
            got = [e["i"] for e in message["data"]["events"] if e["kind"] == "probe"]
            messages += bool(got)
            seen += got
        assert seen == list(range(200))
        assert 4 <= messages <= 8, f"{messages} messages for 200 events over ~1 s"
    finally:
        sse.close()


async def test_a_batch_carries_at_most_200_events_and_says_how_many_it_left_out(livechain):
    """A burst of 1,000 events in one tick is sent as its newest 200 with `skipped: 800`."""
    sse = await Sse.open(livechain.app.port)
    try:
        await sse.next()
        await sse.next()  # a tick boundary just passed: the whole burst lands in the next one
        for i in range(1000):
            livechain.app.events.publish("burst", i=i)
        message = await sse.until(lambda d: any(e["kind"] == "burst" for e in d["events"]))
        burst = [e["i"] for e in message["data"]["events"] if e["kind"] == "burst"]
        assert burst == list(range(800, 1000))
        assert message["data"]["skipped"] == 800
    finally:
        sse.close()


async def test_a_reconnecting_client_catches_up_from_its_last_event_id(livechain):
    """`Last-Event-ID` makes the first message carry exactly the events published since that id."""
    bus = livechain.app.events
    sse = await Sse.open(livechain.app.port)
    first = await sse.next()
    sse.close()
    for i in range(3):
        bus.publish("missed", i=i)
    await asyncio.sleep(0.5)  # let a tick take them
    again = await Sse.open(livechain.app.port, extra=f"Last-Event-ID: {first['id']}\r\n")
    try:
        hello = await again.next()
        assert [e["i"] for e in hello["data"]["events"] if e["kind"] == "missed"] == [0, 1, 2]
        assert all(e["seq"] > first["id"] for e in hello["data"]["events"])
    finally:
        again.close()


async def test_a_slow_sse_client_is_dropped_while_a_fast_one_keeps_receiving(livechain):
    """A client that never reads is disconnected once its unsent bytes pass the buffer limit; a client
    that reads keeps getting every tick, before and after."""
    hub = livechain.app.edge.live
    hub.buffer_limit = 64 * 1024
    loop = asyncio.get_running_loop()
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.setblocking(False)
    await loop.sock_connect(slow, ("127.0.0.1", livechain.app.port))
    await loop.sock_sendall(slow, b"GET /api/live HTTP/1.1\r\nHost: x\r\n\r\n")
    fast = await Sse.open(livechain.app.port)
    received = 0

    async def read_fast() -> None:
        nonlocal received
        while True:
            await fast.next()
            received += 1

    reader = asyncio.create_task(read_fast())
    try:
        deadline = time.monotonic() + 15
        payload = "x" * 1000
        while hub.dropped == 0 and time.monotonic() < deadline:
            for i in range(10):  # ~40 kB per tick: one message never exceeds the limit by itself
                livechain.app.events.publish("bulk", i=i, payload=payload)
            await asyncio.sleep(0.05)
        assert hub.dropped == 1, "the client that never reads was not dropped"
        assert len(hub.clients) == 1
        before = received
        await asyncio.sleep(0.6)
        assert received > before, "the fast client stopped receiving"
        assert not reader.done()
    finally:
        reader.cancel()
        fast.close()
        slow.close()


async def test_stopping_the_app_ends_open_live_streams_at_once(livechain):
    """Open dashboards do not hold shutdown for the 10 s grace period: the stream ends and stop() returns."""
    sse = await Sse.open(livechain.app.port)
    await sse.next()
    started = time.monotonic()
    await livechain.app.stop()
    assert time.monotonic() - started < 3
    with pytest.raises(EOFError):
        while True:
            await sse.next(timeout=2)
    sse.close()


# ---------------------------------------------------------------------------------------------- simulator


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rate": 2001}, "rate"),
        ({"rate": -1}, "rate"),
        ({"rate": "fast"}, "rate"),
        ({"subscribers": 501}, "subscribers"),
        ({"subscribers": 2.5}, "subscribers"),
        ({"duration_s": 601}, "duration_s"),
        ({"duration_s": 0}, "duration_s"),
        ({"transport": "carrier-pigeon"}, "transport"),
        ({"mix": {"eth_sendRawTransaction": 1}}, "mix"),
        ({"mix": {}}, "mix"),
        ({"bogus": 1}, "bogus"),
        ({"rate": 0, "subscribers": 0}, "nothing to do"),
    ],
)
async def test_the_simulator_refuses_settings_beyond_its_bounds(livechain, change, field):
    """Rate ≤ 2000 req/s, subscribers ≤ 500, duration 1 s…10 min, known transports and methods only: anything
    else is a 400 naming the field, and nothing starts."""
    body = {"action": "start", "chain": "dev", "rate": 10, "duration_s": 5, **change}
    status, reply = await request(livechain, "POST", "/api/simulator", body, TOKEN)
    assert status == 400, reply
    assert field in reply["error"]
    assert livechain.controls.simulator.active() == 0


async def test_only_one_simulator_run_per_chain_and_stop_ends_it(livechain):
    """A second start on a chain with an active run is a 409; after stop a new run may start."""
    body = {"action": "start", "chain": "dev", "rate": 20, "duration_s": 30}
    status, run = await request(livechain, "POST", "/api/simulator", body, TOKEN)
    assert status == 200 and run["running"]
    status, reply = await request(livechain, "POST", "/api/simulator", body, TOKEN)
    assert status == 409, reply
    status, stopped = await request(livechain, "POST", "/api/simulator", {"action": "stop", "chain": "dev"}, TOKEN)
    assert status == 200 and not stopped["running"] and stopped["state"] == "finished"
    status, again = await request(livechain, "POST", "/api/simulator", body, TOKEN)
    assert status == 200 and again["running"]
    names = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("simulator/dev")]
    assert "simulator/dev" in names and "simulator/dev/pacer" in names
    await request(livechain, "POST", "/api/simulator", {"action": "stop", "chain": "dev"}, TOKEN)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("simulator/")]


async def test_simulator_controls_need_the_admin_token_outside_demo_mode(livechain, start_livechain, proxies):
    """Reading is open; starting without the token (or with a wrong one) is 401, and with no token
    configured at all the controls are 403 — nothing starts either way."""
    body = {"action": "start", "chain": "dev", "rate": 5, "duration_s": 5}
    status, state = await request(livechain, "GET", "/api/simulator")
    assert status == 200 and state["controls"]["allowed"] is False and state["limits"]["max_rate"] == 2000
    assert (await request(livechain, "POST", "/api/simulator", body))[0] == 401
    assert (await request(livechain, "POST", "/api/simulator", body, "wrong"))[0] == 401
    status, state = await request(livechain, "GET", "/api/simulator", token=TOKEN)
    assert state["controls"]["allowed"] is True
    open_ = await start_livechain(config_text_for(proxies), admin_token="")
    assert (await request(open_, "POST", "/api/simulator", body, "anything"))[0] == 403
    assert livechain.controls.simulator.active() == 0 and open_.controls.simulator.active() == 0


async def test_the_simulator_sends_real_json_rpc_through_livechain_and_stops_after_its_duration(livechain):
    """An HTTP run's requests are answered by the providers through Livechain (the chain's own request rate
    rises) and the run ends by itself when its duration has elapsed."""
    body = {"action": "start", "chain": "dev", "rate": 100, "duration_s": 1.5,
            "mix": {"eth_blockNumber": 1, "eth_getBalance": 1, "eth_call": 1, "eth_getLogs": 1}}
    status, _ = await request(livechain, "POST", "/api/simulator", body, TOKEN)
    assert status == 200
    await asyncio.sleep(2.2)
    run = (await livechain.api("/api/simulator"))["runs"]["dev"]
    chains = await livechain.api("/api/chains")
    assert chains["chains"][0]["rps"] >= 10  # client requests/s over the last 10 s, as Livechain counted them
    assert run["running"] is False and run["stop_reason"] == "duration elapsed"
    assert run["ok"] > 80 and run["errors"] == 0, run
    assert run["p50_ms"] is not None


async def test_websocket_load_and_newheads_subscribers_go_through_livechains_websocket_endpoint(livechain, anvil):
    """transport=ws sends requests over /ws/rpc/dev; each subscriber gets newHeads notifications as blocks
    are mined."""
    body = {"action": "start", "chain": "dev", "rate": 40, "duration_s": 20, "transport": "ws", "subscribers": 3}
    status, _ = await request(livechain, "POST", "/api/simulator", body, TOKEN)
    assert status == 200
    dashboard = livechain.controls
    deadline = time.monotonic() + 10
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            run = dashboard.simulator.runs["dev"].status()
            if run["subscribers"]["notifications"] >= 6 and run["ok"] >= 20:
                break
            await session.post(f"http://{anvil.host}:{anvil.port}", json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine"})
            await asyncio.sleep(0.3)
    await dashboard.simulator.stop("dev")
    assert run["subscribers"]["connected"] == 3
    assert run["subscribers"]["notifications"] >= 6, run
    assert run["ok"] >= 20 and run["errors"] == 0, run


# ---------------------------------------------------------------------------------------------- faults


async def test_fault_changes_need_the_admin_token_and_take_effect_on_the_proxy(livechain, proxies):
    """PUT without the token is 401 and changes nothing; with it the proxy's fault is the one sent."""
    fault = {"mode": "http_status", "status": 429, "probability": 0.5}
    status, _ = await request(livechain, "PUT", "/api/faults/dev/p0", fault)
    assert status == 401 and proxies[0].fault.mode == "none"
    status, state = await request(livechain, "PUT", "/api/faults/dev/p0", fault, TOKEN)
    assert status == 200 and state["fault"]["status"] == 429 and state["injected"] is True
    assert proxies[0].fault == Fault(mode="http_status", status=429, probability=0.5)
    status, listing = await request(livechain, "GET", "/api/faults")
    assert status == 200 and listing["enabled"] is True
    assert sorted(listing["faults"]) == ["dev/p0", "dev/p1", "dev/p2"]
    assert "127.0.0.1" not in orjson.dumps(listing).decode()  # proxies by name only, never an address


async def test_a_lie_fault_is_set_through_the_dashboard_api_and_its_event_says_which_lie(livechain, proxies):
    """The dashboard's "Lie" choice (mode lie, a lie kind, the error share) reaches the proxy; the fault
    event carries the lie so the feed can say which; a bad lie kind is a 400 naming the field."""
    body = {"mode": "lie", "lie": "stale_head", "probability": 0.5}
    status, state = await request(livechain, "PUT", "/api/faults/dev/p2", body, TOKEN)
    assert status == 200 and state["injected"] is True and state["fault"]["lie"] == "stale_head"
    assert proxies[2].fault == Fault(mode="lie", lie="stale_head", probability=0.5)
    event = [e for e in livechain.app.events.recent() if e["kind"] == "fault"][-1]
    assert (event["mode"], event["lie"], event["lie_blocks"]) == ("lie", "stale_head", 1000)
    status, reply = await request(livechain, "PUT", "/api/faults/dev/p2", {"mode": "lie", "lie": "fib"}, TOKEN)
    assert status == 400 and "lie must be one of" in reply["error"]
    assert proxies[2].fault.lie == "stale_head"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "JSON"),
        ({"mode": "meltdown"}, "mode"),
        ({"latency_ms": -5}, "latency_ms"),
        ({"latency_ms": 10_000_000}, "latency_ms"),
        ({"probability": 2}, "probability"),
        ({"mode": "none", "colour": "red"}, "colour"),
        ([], "object"),
    ],
)
async def test_invalid_fault_bodies_are_refused_with_the_reason(livechain, proxies, body, why):
    """A malformed or out-of-range fault is a 400 that names what is wrong; the proxy keeps its fault."""
    status, reply = await request(livechain, "PUT", "/api/faults/dev/p0", body, TOKEN)
    assert status == 400, reply
    assert why in reply["error"]
    assert proxies[0].fault == Fault()


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/api/faults/dev/nope"), ("DELETE", "/api/faults/dev/nope"), ("POST", "/api/faults/dev/nope/drop"),
     ("PUT", "/api/faults/elsewhere/p0"), ("GET", "/api/faults/dev/nope")],
)
async def test_an_unknown_provider_is_404(livechain, method, path):
    """Fault controls for a provider that has no fault proxy are a 404 listing the known ones."""
    status, reply = await request(livechain, method, path, {"mode": "none"}, TOKEN)
    assert status == 404, reply
    assert reply["known"] == ["dev/p0", "dev/p1", "dev/p2"]


async def test_clear_returns_to_the_providers_baseline_and_drop_aborts_live_connections(livechain, proxies):
    """DELETE restores the fault the proxy had when Livechain started (?to=none clears it entirely); POST
    …/drop aborts the live connections and says how many."""
    await livechain.rpc("eth_chainId")  # at least one pooled connection through p0
    status, state = await request(livechain, "PUT", "/api/faults/dev/p1", {"mode": "blackhole"}, TOKEN)
    assert status == 200 and proxies[1].fault.mode == "blackhole"
    status, state = await request(livechain, "DELETE", "/api/faults/dev/p1", token=TOKEN)
    assert status == 200 and proxies[1].fault == Fault(latency_ms=7) and state["injected"] is False
    status, _ = await request(livechain, "DELETE", "/api/faults/dev/p1?to=none", token=TOKEN)
    assert status == 200 and proxies[1].fault == Fault()
    status, state = await request(livechain, "POST", "/api/faults/dev/p0/drop", token=TOKEN)
    assert status == 200 and state["dropped"] >= 1
    kinds = [(e["provider"], e["action"]) for e in livechain.app.events.recent() if e["kind"] == "fault"]
    assert kinds == [("p1", "set"), ("p1", "clear"), ("p1", "clear"), ("p0", "drop")]


async def test_dashboard_files_are_served_and_nothing_outside_the_static_directory_is(livechain):
    """/dashboard serves the page with a CSP; module and vendored files get JS/CSS types; paths that climb
    out of the static directory are 404."""
    status, headers, body = await livechain.get("/dashboard")
    assert status == 200 and b"<!doctype html>" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    status, headers, _ = await livechain.get("/dashboard/app.js")
    assert status == 200 and "javascript" in headers["content-type"]
    status, headers, _ = await livechain.get("/dashboard/vendor/uPlot.min.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    reader, writer = await asyncio.open_connection("127.0.0.1", livechain.app.port)
    for path in ("/dashboard/../../app.py", "/dashboard/../server/dashboard.py", "/dashboard/%2e%2e/x"):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        assert head.startswith(b"HTTP/1.1 404"), (path, head)
    writer.close()


async def test_another_website_cannot_drive_the_controls_even_in_demo_mode(start_livechain, proxies):
    """A control request carrying a foreign Origin (a page on another site) is refused with 403, token or
    demo mode notwithstanding; the dashboard's own origin is accepted."""
    faults = {f"dev/p{i}": proxy for i, proxy in enumerate(proxies)}
    lc = await start_livechain(config_text_for(proxies), faults=faults, demo=True)
    body = orjson.dumps({"mode": "blackhole"})
    async with lc.session.put(lc.base + "/api/faults/dev/p0", data=body,
                              headers={"origin": "https://evil.example"}) as resp:
        assert resp.status == 403
    assert proxies[0].fault == Fault()
    async with lc.session.put(lc.base + "/api/faults/dev/p0", data=body, headers={"origin": lc.base}) as resp:
        assert resp.status == 200
    assert proxies[0].fault.mode == "blackhole"
