"""UpstreamWs against a real anvil (blocks every 0.2 s) behind a FaultProxy — no mocks.

The few behaviours anvil cannot show (garbage frames, batch replies, server PINGs, oversized frames) run
against a small scripted aiohttp WebSocket server on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
import time
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import uvloop
from aiohttp import WSMsgType, web
from Crypto.Hash import keccak

from livechain.devnet import Anvil
from livechain.errors import AttemptTimeout, BadResponse, ConnectFailed, TransportError
from livechain.failsafe.backoff import Backoff
from livechain.faults import Fault, FaultProxy
from livechain.transport.ws import UpstreamWs

SECRET = "SECRET123XYZ"
NEW_HEADS = ["newHeads"]


@pytest.fixture
async def node() -> AsyncIterator[Anvil]:
    async with Anvil(block_time=0.2) as anvil:
        yield anvil


@pytest.fixture
async def proxy(node: Anvil) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(node.host, node.port, name="p0") as fault_proxy:
        yield fault_proxy


class Recorder:
    """The callbacks of one UpstreamWs, recording what they saw and when."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, Any, int]] = []
        self.disconnects: list[tuple[str, float]] = []
        self.connects = 0
        self.subs: list[str] = []
        self.ws: UpstreamWs | None = None
        self.subscribe_on_connect = False
        self.seen_in_on_connect: list[tuple[bool, bool]] = []  # (is_open, connected)

    def on_notification(self, sub: str, result: Any, t: int) -> None:
        self.notes.append((sub, result, t))

    def on_disconnect(self, reason: str) -> None:
        self.disconnects.append((reason, time.monotonic()))

    async def on_connect(self) -> None:
        self.connects += 1
        assert self.ws is not None
        self.seen_in_on_connect.append((self.ws.is_open, self.ws.connected))
        if self.subscribe_on_connect:
            self.subs.append(await self.ws.subscribe(NEW_HEADS, timeout=2))

    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.disconnects]

    def notes_for(self, sub: str) -> list[tuple[str, Any, int]]:
        return [note for note in self.notes if note[0] == sub]


def make_ws(url: str, rec: Recorder, **kwargs: Any) -> UpstreamWs:
    kwargs.setdefault("backoff", Backoff(base=0.05, cap=0.2))
    ws = UpstreamWs(
        url,
        name="p0",
        on_notification=rec.on_notification,
        on_connect=rec.on_connect,
        on_disconnect=rec.on_disconnect,
        **kwargs,
    )
    rec.ws = ws
    return ws


@asynccontextmanager
async def running(ws: UpstreamWs, *, wait_connected: bool = True) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(ws.run(), name="test/run")
    try:
        if wait_connected:
            await until(lambda: ws.connected, 5, "first connection")
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait until cond() holds; returns the seconds it took. (Polling is fine in a test.)"""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def block_numbers(notes: list[tuple[str, Any, int]]) -> list[int]:
    return [int(result["number"], 16) for _, result, _ in notes]


# ---------------------------------------------------------------------------------------------- anvil


async def test_new_heads_arrive_in_block_order_with_increasing_arrival_times(proxy: FaultProxy) -> None:
    """eth_subscribe newHeads delivers notifications for our subscription id, block numbers increase by
    one and each arrival timestamp (perf_counter_ns, taken at receipt) is later than the previous one."""
    rec = Recorder()
    ws = make_ws(proxy.ws_url, rec)
    async with running(ws):
        before = time.perf_counter_ns()
        sub = await ws.subscribe(NEW_HEADS, timeout=2)
        assert sub.startswith("0x")
        await until(lambda: len(rec.notes_for(sub)) >= 3, 5, "3 newHeads")
        notes = rec.notes_for(sub)
        numbers = block_numbers(notes)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        stamps = [t for _, _, t in notes]
        assert before < stamps[0] and all(a < b for a, b in itertools.pairwise(stamps))
        assert stamps[-1] <= time.perf_counter_ns()
        assert ws.stats["notifications"] >= 3 and ws.stats["state"] == "ready"


async def test_fifty_concurrent_requests_each_get_their_own_reply(proxy: FaultProxy) -> None:
    """Replies are correlated by wire id: 50 concurrent requests with distinct answers (web3_sha3 of
    distinct inputs, eth_chainId) each get exactly their own result; a provider error is returned as a
    Reply, not raised; nothing stays pending."""
    rec = Recorder()
    ws = make_ws(proxy.ws_url, rec)
    async with running(ws):
        inputs = [f"0x{i:04x}" for i in range(45)]
        calls = [ws.request("web3_sha3", [data], timeout=5) for data in inputs]
        calls += [ws.request("eth_chainId", None, timeout=5) for _ in range(4)]
        calls.append(ws.request("eth_noSuchMethod", [], timeout=5))
        replies = await asyncio.gather(*calls)
        for data, reply in zip(inputs, replies, strict=False):
            expected = "0x" + keccak.new(digest_bits=256, data=bytes.fromhex(data[2:])).hexdigest()
            assert reply.ok and reply.result == expected
        assert [r.result for r in replies[45:49]] == ["0x7a69"] * 4
        error_reply = replies[49]
        assert not error_reply.ok and isinstance(error_reply.error["code"], int)
        assert len({r.id for r in replies}) == 50
        assert ws.stats["pending"] == 0 and ws.stats["unmatched"] == 0


async def test_a_dropped_connection_fails_pending_requests_reconnects_and_resubscribes(
    proxy: FaultProxy,
) -> None:
    """When the provider's connection is reset: a pending request fails with TransportError, on_disconnect
    gets "reset", run() reconnects, on_connect runs again (is_open True, connected still False) and
    resubscribes, and new notifications arrive for the new provider subscription id."""
    rec = Recorder()
    rec.subscribe_on_connect = True
    ws = make_ws(proxy.ws_url, rec)
    async with running(ws):
        await until(lambda: len(rec.notes_for(rec.subs[0])) >= 1, 5, "first notification")
        proxy.set(Fault(latency_ms=500))  # the next reply is held back, so the request is pending
        pending = asyncio.create_task(ws.request("eth_blockNumber", None, timeout=5))
        await asyncio.sleep(0.05)
        proxy.clear()
        proxy.drop_connections()
        start = time.monotonic()
        with pytest.raises(TransportError) as caught:
            await pending
        assert time.monotonic() - start < 0.5
        assert not isinstance(caught.value, ConnectFailed) and caught.value.provider == "p0"
        assert rec.reasons() == ["reset"]
        await until(lambda: rec.connects == 2 and ws.connected, 5, "reconnect")
        assert len(rec.subs) == 2 and rec.subs[0] != rec.subs[1]
        assert rec.seen_in_on_connect == [(True, False)] * 2  # requests work; not yet "ready"
        await until(lambda: len(rec.notes_for(rec.subs[1])) >= 2, 5, "notifications after reconnect")
        assert ws.stats["connects"] == 2 and ws.stats["disconnects"] == 1


async def test_drop_makes_the_connection_unusable_at_once_and_run_reconnects(proxy: FaultProxy) -> None:
    """drop() is synchronous: before it returns, connected is False, the pending request's future has
    failed with TransportError and a new request raises ConnectFailed; run() then reconnects."""
    rec = Recorder()
    ws = make_ws(proxy.ws_url, rec)
    async with running(ws):
        proxy.set(Fault(mode="stall"))  # the provider gets the request, its reply never comes back
        pending = asyncio.create_task(ws.request("eth_blockNumber", None, timeout=5))
        await asyncio.sleep(0.05)
        assert not pending.done()
        ws.drop("test")
        assert not ws.connected and ws.stats["pending"] == 0
        with pytest.raises(ConnectFailed):
            await ws.request("eth_chainId", None, timeout=5)
        with pytest.raises(TransportError, match="test"):
            await pending
        assert rec.reasons() == ["test"]
        proxy.clear()
        await until(lambda: rec.connects == 2 and ws.connected, 5, "reconnect after drop")
        assert (await ws.request("eth_chainId", None, timeout=2)).result == "0x7a69"


@pytest.mark.parametrize("mode", ["blackhole", "stall"])
async def test_a_silent_socket_is_declared_dead_within_liveness_and_the_next_connect_starts(
    proxy: FaultProxy, mode: str
) -> None:
    """A socket that delivers nothing (no frames, no pongs) is declared dead within ~liveness (1 s here):
    on_disconnect("liveness"), a pending request fails then with TransportError (not at its 10 s
    timeout), the next connect attempt reaches the proxy within liveness + close + backoff, and after the
    fault is cleared the connection is ready again."""
    rec = Recorder()
    rec.subscribe_on_connect = True
    ws = make_ws(proxy.ws_url, rec, liveness=1.0, ping_interval=0.25, connect_timeout=0.5)
    async with running(ws):
        await until(lambda: len(rec.notes) >= 1, 5, "first notification")
        accepted = proxy.stats["connections_total"]
        start = time.monotonic()
        proxy.set(Fault(mode=mode))
        pending = asyncio.create_task(ws.request("eth_blockNumber", None, timeout=10))
        with pytest.raises(TransportError, match="liveness"):
            await pending
        failed_after = time.monotonic() - start
        assert rec.reasons() == ["liveness"]
        detected_after = rec.disconnects[0][1] - start
        assert 0.5 < detected_after < 3.0, detected_after
        assert abs(failed_after - detected_after) < 0.1
        assert not ws.connected
        with pytest.raises(ConnectFailed):
            await ws.request("eth_chainId", None, timeout=5)
        await until(lambda: proxy.stats["connections_total"] > accepted, 3, "next connect attempt")
        assert time.monotonic() - start < 1.0 + 0.1 + 0.2 + 1.0
        proxy.clear()
        await until(lambda: ws.connected, 5, "reconnect after the fault")
        assert rec.connects >= 2
        assert (await ws.request("eth_chainId", None, timeout=2)).result == "0x7a69"


async def test_a_quiet_healthy_provider_stays_connected_because_pongs_count(proxy: FaultProxy) -> None:
    """With no subscription and no requests the only frames are pongs to our pings; they keep a socket
    alive well past its liveness (0.6 s here)."""
    rec = Recorder()
    ws = make_ws(proxy.ws_url, rec, liveness=0.6, ping_interval=0.15)
    async with running(ws):
        await asyncio.sleep(1.6)
        assert rec.disconnects == [] and ws.connected
        assert ws.stats["connects"] == 1 and ws.stats["messages"] == 0
        assert ws.stats["last_frame_age_s"] < 0.6


async def test_refused_connects_back_off_and_recover_after_the_fault_clears(proxy: FaultProxy) -> None:
    """While the provider refuses connections: every attempt reports "connect_failed", the backoff grows
    (its attempt counter rises), requests raise ConnectFailed at once; after clear() it connects again."""
    rec = Recorder()
    backoff = Backoff(base=0.02, cap=0.3, rng=random.Random(7))
    ws = make_ws(proxy.ws_url, rec, backoff=backoff)
    async with running(ws):
        proxy.set(Fault(mode="refuse"))
        await until(lambda: rec.reasons().count("connect_failed") >= 4, 5, "4 refused connects")
        assert rec.reasons()[0] == "reset"  # the live connection was reset by the refuse
        assert backoff.attempt >= 4
        start = time.perf_counter()
        for _ in range(20):
            with pytest.raises(ConnectFailed):
                await ws.request("eth_chainId", None, timeout=5)
        assert time.perf_counter() - start < 0.05
        stats = ws.stats
        assert stats["connect_failures"] >= 4 and stats["last_error"] == "p0: WebSocket connect refused"
        assert stats["state"] in ("connecting", "backoff")
        proxy.clear()
        await until(lambda: ws.connected, 5, "recovery")
        assert rec.connects == 2 and ws.stats["state"] == "ready"


async def test_a_request_before_run_raises_connect_failed_without_waiting(proxy: FaultProxy) -> None:
    """No socket yet: request() raises ConnectFailed immediately, naming the provider."""
    ws = make_ws(proxy.ws_url, Recorder())
    start = time.perf_counter()
    with pytest.raises(ConnectFailed, match=r"^p0: ") as caught:
        await ws.request("eth_chainId", None, timeout=30)
    assert time.perf_counter() - start < 0.01
    assert caught.value.outcome.fails_over and caught.value.provider == "p0"
    assert not ws.connected and ws.stats["state"] == "stopped"


async def test_unsubscribe_stops_notifications(proxy: FaultProxy) -> None:
    """After eth_unsubscribe is confirmed no more notifications arrive for that subscription, while a
    second subscription on the same socket keeps receiving them."""
    rec = Recorder()
    ws = make_ws(proxy.ws_url, rec)
    async with running(ws):
        gone = await ws.subscribe(NEW_HEADS, timeout=2)
        kept = await ws.subscribe(NEW_HEADS, timeout=2)
        await until(lambda: len(rec.notes_for(gone)) >= 1, 5, "a notification")
        assert await ws.unsubscribe(gone, timeout=2) is True
        await asyncio.sleep(0.05)
        after = len(rec.notes_for(gone))
        kept_before = len(rec.notes_for(kept))
        await asyncio.sleep(0.8)
        assert len(rec.notes_for(gone)) == after
        assert len(rec.notes_for(kept)) >= kept_before + 2
        assert await ws.unsubscribe(gone, timeout=2) is False  # already gone


async def test_a_subscribe_error_reply_raises_bad_response_carrying_the_reply(proxy: FaultProxy) -> None:
    """eth_subscribe with a kind the provider does not know raises BadResponse with the provider's reply
    attached; the connection stays up."""
    rec = Recorder()
    ws = make_ws(proxy.ws_url, rec)
    async with running(ws):
        with pytest.raises(BadResponse) as caught:
            await ws.subscribe(["noSuchKind"], timeout=2)
        reply = caught.value.reply
        assert reply is not None and not reply.ok and isinstance(reply.error["code"], int)
        assert ws.connected and rec.disconnects == []


async def test_a_failing_on_connect_closes_the_socket_and_run_tries_again(proxy: FaultProxy) -> None:
    """If on_connect raises (here: the resubscription is refused) the connection never becomes ready: it
    is closed with reason "on_connect_failed" and run() reconnects and calls on_connect again."""
    rec = Recorder()
    calls: list[bool] = []
    ws: UpstreamWs

    async def on_connect() -> None:
        calls.append(ws.connected)
        await ws.subscribe(["noSuchKind"] if len(calls) == 1 else NEW_HEADS, timeout=2)

    ws = UpstreamWs(
        proxy.ws_url,
        name="p0",
        on_notification=rec.on_notification,
        on_connect=on_connect,
        on_disconnect=rec.on_disconnect,
        backoff=Backoff(base=0.05, cap=0.2),
    )
    async with running(ws):
        assert rec.reasons() == ["on_connect_failed"] and calls == [False, False]
        assert "on_connect failed" in ws.stats["last_error"] and ws.stats["connects"] == 2
        await until(lambda: len(rec.notes) >= 1, 3, "a notification on the second connection")


async def test_a_request_without_reply_times_out_and_its_late_reply_is_ignored(proxy: FaultProxy) -> None:
    """No reply within the timeout → AttemptTimeout and the wire id is forgotten; the reply that comes
    later is counted as unmatched, not delivered anywhere."""
    rec = Recorder()
    ws = make_ws(proxy.ws_url, rec)
    async with running(ws):
        proxy.set(Fault(latency_ms=300))
        start = time.monotonic()
        with pytest.raises(AttemptTimeout, match=r"^p0: no reply within 0\.1s$"):
            await ws.request("eth_chainId", None, timeout=0.1)
        assert 0.09 < time.monotonic() - start < 0.25
        assert ws.stats["pending"] == 0
        await until(lambda: ws.stats["unmatched"] >= 1, 2, "the late reply")
        assert ws.connected


async def test_the_provider_url_and_its_key_never_appear_in_errors_reprs_stats_or_logs(
    proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The URL carries a key (?key=SECRET123XYZ). Through a normal session, a reset, a rejected upgrade
    (HTTP 401), refused connects, a timeout and an unresolvable host, no exception message, repr,
    traceback, stats value or log record contains the key (in the query or the host name) or the URL."""
    logger = logging.getLogger("livechain.transport")
    logger.addHandler(caplog.handler)  # "livechain" may not propagate (log.setup), so attach directly
    caplog.handler.setLevel(logging.DEBUG)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    errors: list[BaseException] = []
    texts: list[str] = []
    rec = Recorder()
    url = f"ws://127.0.0.1:{proxy.port}/?key={SECRET}"
    ws = make_ws(url, rec, liveness=1.0, ping_interval=0.25, connect_timeout=0.5)

    async def expect(exc_type: type[BaseException], coro: Any) -> None:
        with pytest.raises(exc_type) as caught:
            await coro
        errors.append(caught.value)

    try:
        async with running(ws):
            texts.append(repr(ws))
            proxy.set(Fault(latency_ms=500))
            pending = asyncio.create_task(ws.request("eth_blockNumber", None, timeout=5))
            await asyncio.sleep(0.05)
            proxy.clear()
            proxy.drop_connections()
            await expect(TransportError, pending)
            proxy.set(Fault(mode="http_status", status=401))
            await until(lambda: "HTTP 401" in (ws.stats["last_error"] or ""), 5, "a rejected upgrade")
            await expect(ConnectFailed, ws.request("eth_chainId", None, timeout=1))
            texts.append(str(ws.stats))
            proxy.set(Fault(mode="refuse"))
            await until(lambda: "refused" in (ws.stats["last_error"] or ""), 5, "a refused connect")
            texts.append(str(ws.stats))
            proxy.clear()
            await until(lambda: ws.connected, 5, "recovery")
            proxy.set(Fault(latency_ms=300))
            await expect(AttemptTimeout, ws.request("eth_chainId", None, timeout=0.1))
            texts.append(repr(ws))
        # some providers put the key in the host name: that must not leak either
        unresolvable = make_ws(f"ws://{SECRET}.invalid/?key={SECRET}", Recorder(), connect_timeout=0.5)
        async with running(unresolvable, wait_connected=False):
            await until(lambda: unresolvable.stats["connect_failures"] >= 1, 3, "a DNS failure")
            texts.append(str(unresolvable.stats))
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(old_level)

    assert len(errors) == 3
    for exc in errors:
        assert exc.__cause__ is None
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    records = [r for r in caplog.records if r.name == "livechain.transport"]
    messages = [r.getMessage() for r in records]
    assert any("disconnected" in m for m in messages) and any("connect failed" in m for m in messages)
    assert any("HTTP 401" in m for m in messages)
    for record in records:
        texts += [record.getMessage(), str(record.__dict__)]
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    assert all(getattr(r, "provider", None) == "p0" for r in records)
    for text in texts:
        assert SECRET.lower() not in text.lower() and "ws://" not in text, text


async def test_cancelling_run_closes_the_socket_and_leaves_no_task_behind(proxy: FaultProxy) -> None:
    """Cancelling run() fails pending requests, closes the socket (the proxy sees it go) and leaves no
    task of the connection (read, ping, on_connect) running."""
    baseline = asyncio.all_tasks()
    rec = Recorder()
    rec.subscribe_on_connect = True
    ws = make_ws(proxy.ws_url, rec)
    task = asyncio.create_task(ws.run())
    await until(lambda: ws.connected and len(rec.notes) >= 1, 5, "a live connection")
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert {"ws/p0/read", "ws/p0/ping"} <= names
    proxy.set(Fault(mode="stall"))
    pending = asyncio.create_task(ws.request("eth_blockNumber", None, timeout=5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(TransportError, match="stopped"):
        await pending
    assert asyncio.all_tasks() == baseline
    assert not ws.connected and ws.stats["state"] == "stopped"
    proxy.clear()  # leaving stall aborts what is left of frozen connections; ours must already be gone
    await until(lambda: proxy.stats["connections_open"] == 0, 2, "the proxy to see the socket close")


async def test_cancelling_run_on_a_blackholed_socket_returns_without_a_close_handshake(
    proxy: FaultProxy,
) -> None:
    """The peer never answers our close frame: cancellation still completes at once (no waiting for
    aiohttp's close handshake, whose default timeout is 10 s)."""
    baseline = asyncio.all_tasks()
    rec = Recorder()
    ws = make_ws(proxy.ws_url, rec)
    task = asyncio.create_task(ws.run())
    await until(lambda: ws.connected, 5, "a live connection")
    proxy.set(Fault(mode="blackhole"))
    await asyncio.sleep(0.05)
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - start < 0.08  # below the 0.1 s ws_close cap: nothing waited for the peer
    assert asyncio.all_tasks() == baseline
    assert rec.reasons() == ["stopped"]


# ------------------------------------------------------------------------------------ scripted server


@asynccontextmanager
async def scripted_server(script: Callable[[web.WebSocketResponse], Any]) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(autoping=False)
        await sock.prepare(request)
        await script(sock)
        return sock

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_garbage_frames_batches_and_server_pings_are_handled_without_dropping() -> None:
    """Frames that are not JSON-RPC are counted and ignored; a batch array resolves its futures; a reply
    with our id but neither result nor error raises BadResponse; a late/unknown id is ignored; a server
    PING is answered with a PONG; notifications still arrive — and the socket stays up throughout."""
    pongs: list[bytes] = []

    async def script(sock: web.WebSocketResponse) -> None:
        for junk in ("not json {", "42", '{"jsonrpc":"2.0","method":"other"}', "[]"):
            await sock.send_str(junk)
        await sock.send_bytes(b"\x00\xff\xfe")
        await sock.send_str('{"jsonrpc":"2.0","id":999999,"result":1}')
        await sock.ping(b"are-you-there")
        note = {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": "0xs", "result": 7},
        }
        await sock.send_bytes(orjson.dumps(note))
        async for msg in sock:
            if msg.type is WSMsgType.PONG:
                pongs.append(msg.data)
                continue
            req = orjson.loads(msg.data)
            if req["method"] == "batched":
                await sock.send_str(
                    orjson.dumps([{"jsonrpc": "2.0", "id": req["id"], "result": "b"}]).decode()
                )
            elif req["method"] == "shapeless":
                await sock.send_str(orjson.dumps({"jsonrpc": "2.0", "id": req["id"]}).decode())

    rec = Recorder()
    async with scripted_server(script) as url:
        ws = make_ws(url, rec)
        async with running(ws):
            await until(lambda: len(rec.notes) == 1 and pongs, 3, "the notification and our pong")
            assert rec.notes[0][:2] == ("0xs", 7)
            assert pongs == [b"are-you-there"]
            reply = await ws.request("batched", None, timeout=2)
            assert reply.result == "b" and orjson.loads(reply.body)["result"] == "b"
            with pytest.raises(BadResponse):
                await ws.request("shapeless", None, timeout=2)
            stats = ws.stats
            assert stats["garbage"] == 5 and stats["unmatched"] == 1 and stats["notifications"] == 1
            assert ws.connected and rec.disconnects == []


async def test_an_oversized_frame_drops_the_connection_with_reason_too_big() -> None:
    """A frame over max_message_bytes ends the connection with reason "too_big" (then run() retries)."""

    async def script(sock: web.WebSocketResponse) -> None:
        await sock.send_str('{"pad":"' + "x" * 4096 + '"}')
        await sock.receive()

    rec = Recorder()
    async with scripted_server(script) as url:
        ws = make_ws(url, rec, max_message_bytes=1024)
        async with running(ws, wait_connected=False):
            await until(lambda: "too_big" in rec.reasons(), 3, "the oversized frame")


# ------------------------------------------------------------------------------------------ on uvloop

UVLOOP_SCENARIOS = {
    "new_heads": test_new_heads_arrive_in_block_order_with_increasing_arrival_times,
    "correlation": test_fifty_concurrent_requests_each_get_their_own_reply,
    "reset": test_a_dropped_connection_fails_pending_requests_reconnects_and_resubscribes,
    "drop": test_drop_makes_the_connection_unusable_at_once_and_run_reconnects,
    "blackhole": functools.partial(
        test_a_silent_socket_is_declared_dead_within_liveness_and_the_next_connect_starts, mode="blackhole"
    ),
    "refuse": test_refused_connects_back_off_and_recover_after_the_fault_clears,
    "cancel": test_cancelling_run_closes_the_socket_and_leaves_no_task_behind,
    "cancel_blackholed": test_cancelling_run_on_a_blackholed_socket_returns_without_a_close_handshake,
}


@pytest.mark.parametrize("scenario", list(UVLOOP_SCENARIOS))
def test_on_uvloop(scenario: str) -> None:
    """The connection, death-detection and cancellation scenarios above hold on uvloop too (production
    runs uvloop; transports close and time differently there)."""

    async def main() -> None:
        async with Anvil(block_time=0.2) as anvil, FaultProxy(anvil.host, anvil.port, name="p0") as fp:
            await UVLOOP_SCENARIOS[scenario](fp)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(main(), 15))
