"""The server side of a client WebSocket (`livechain.server.wsconn`) over real sockets — no mocks.

A tiny server on an ephemeral port runs the real HTTP edge (`HttpConnection`) with a test Dispatcher whose
`upgrade()` calls `accept_upgrade()` with a recording session (echoes text unless the path is /quiet).
Clients: the websockets asyncio client, aiohttp's ws_connect, and a raw TCP client that speaks frames through
websockets' sans-I/O layer so it can misbehave (never read, never answer pings, send bad frames).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CLOSE, PING, TEXT, Close, Frame
from websockets.protocol import OPEN, Side
from websockets.protocol import Protocol as FrameProtocol
from websockets.streams import StreamReader

from livechain.server.http import ConnectionTracker, HttpConnection, Limits, Request, Response
from livechain.server.wsconn import WsServerConnection, WsSettings, accept_upgrade, encode_text_frame
from tests.conftest import on_both_loops

# ---------------------------------------------------------------------------------------------- server


class RecordingSession:
    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.conn: WsServerConnection | None = None
        self.messages: list[tuple[bytes, bool]] = []
        self.closes: list[tuple[int, str]] = []
        self.closed = asyncio.Event()

    def on_open(self, conn: WsServerConnection) -> None:
        self.conn = conn

    def on_message(self, data: bytes, binary: bool) -> None:
        self.messages.append((data, binary))
        if self.echo and not binary:
            assert self.conn is not None
            self.conn.send_text(data)

    def on_close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        self.closed.set()

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int, str]:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.closes[0]


class WsServer:
    """Dispatcher + listening socket. `await server.next_session()` gives the session of the next upgrade."""

    def __init__(self, settings: WsSettings | None = None) -> None:
        self.settings = settings or WsSettings()
        self.sessions: asyncio.Queue[RecordingSession] = asyncio.Queue()
        self.all_sessions: list[RecordingSession] = []
        self.tracker = ConnectionTracker()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def dispatch(self, request: Request) -> Response:
        return Response(404, b"not found", "text/plain")

    def upgrade(self, request: Request, transport: asyncio.Transport, rest: bytes) -> asyncio.Protocol | None:
        session = RecordingSession(echo=request.path != "/quiet")
        conn = accept_upgrade(request, transport, rest, session, self.settings)
        if conn is not None:
            self.all_sessions.append(session)
            self.sessions.put_nowait(session)
        return conn

    async def next_session(self) -> RecordingSession:
        return await asyncio.wait_for(self.sessions.get(), 5)

    def url(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> WsServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self, Limits(), self.tracker), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for session in self.all_sessions:
            if session.conn is not None:
                session.conn.abort()
        for conn in list(self.tracker.connections):
            if conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------- raw client


def upgrade_request(
    path: str = "/ws", *, key: str | None = None, version: str = "13", extra: str = ""
) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode() if key is None else key
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Version: {version}",
    ]
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


class RawClient:
    """A TCP client that does the handshake by hand and parses frames with websockets' sans-I/O layer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = FrameProtocol(Side.CLIENT, state=OPEN, max_size=None)
        self.received: list[Frame] = []
        self.head = b""

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> RawClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    @classmethod
    async def open(cls, port: int, path: str = "/ws", *, rcvbuf: int | None = None) -> RawClient:
        client = await cls.connect(port, rcvbuf=rcvbuf)
        client.writer.write(upgrade_request(path))
        client.head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        assert client.head.startswith(b"HTTP/1.1 101 "), client.head
        return client

    def send(self, raw: bytes) -> None:
        self.writer.write(raw)

    def send_text_frame(self, payload: bytes) -> None:
        self.frames.send_text(payload)
        self.send(b"".join(self.frames.data_to_send()))

    async def read_until_close(self, timeout: float = 5.0) -> Close:
        """Read (never answering anything) until the server's close frame; return its code and reason."""
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.received:
                    if frame.opcode is CLOSE:
                        return Close.parse(frame.data)
                data = await self.reader.read(256 * 1024)
                if not data:
                    raise AssertionError("connection ended without a close frame")
                self.frames.receive_data(data)
                self.received.extend(self.frames.events_received())
                self.frames.data_to_send()  # discard automatic replies: this client never answers

    def answer_close(self) -> None:
        """Complete the close handshake the server started (echo its close frame, masked)."""
        close = next(f for f in self.received if f.opcode is CLOSE)
        self.send(Frame(CLOSE, close.data).serialize(mask=True))

    def close(self) -> None:
        self.writer.transport.abort()


async def http_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection (fails if it stays open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


# ---------------------------------------------------------------------------------------------- messages


async def test_a_text_message_is_delivered_to_the_session_and_echoed_back() -> None:
    """A text message reaches on_message as bytes with binary=False, and send_text reaches the client."""
    async with WsServer() as server, connect(server.url(), ping_interval=None) as ws:
        session = await server.next_session()
        await ws.send('{"jsonrpc":"2.0","id":1,"method":"eth_chainId"} ü')
        assert await asyncio.wait_for(ws.recv(), 5) == '{"jsonrpc":"2.0","id":1,"method":"eth_chainId"} ü'
        assert session.messages == [('{"jsonrpc":"2.0","id":1,"method":"eth_chainId"} ü'.encode(), False)]
        assert session.conn is not None
        stats = session.conn.stats
        assert stats["messages_in"] == 1 and stats["messages_out"] == 1 and stats["queued"] == 0


async def test_a_200_kb_message_arrives_whole_and_is_echoed_whole() -> None:
    """A message needing the 64-bit length form crosses both ways intact, as one message."""
    text = "".join(chr(ord("a") + i % 26) for i in range(200_000))
    async with WsServer() as server, connect(server.url(), ping_interval=None) as ws:
        session = await server.next_session()
        await ws.send(text)
        assert await asyncio.wait_for(ws.recv(), 5) == text
        assert session.messages == [(text.encode(), False)]


async def test_a_fragmented_message_is_reassembled_into_one_message() -> None:
    """Fragments (text frame + continuation frames) reach the session as one message, in order."""
    parts = ["first-", "second-", "ü-third-", "x" * 70_000]
    async with WsServer() as server, connect(server.url(), ping_interval=None) as ws:
        session = await server.next_session()
        await ws.send(iter(parts))
        assert await asyncio.wait_for(ws.recv(), 5) == "".join(parts)
        assert session.messages == [("".join(parts).encode(), False)]


async def test_a_binary_message_is_reported_with_binary_true() -> None:
    """A binary message (aiohttp client) is delivered with binary=True; text from the same client with False."""
    async with WsServer() as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(server.url()) as ws:
            session = await server.next_session()
            await ws.send_bytes(b"\x00\xff\x10binary")
            await ws.send_str("text after binary")
            reply = await asyncio.wait_for(ws.receive(), 5)
            assert reply.type is aiohttp.WSMsgType.TEXT and reply.data == "text after binary"
            assert session.messages == [(b"\x00\xff\x10binary", True), (b"text after binary", False)]


async def test_a_burst_of_1000_messages_arrives_in_order_both_ways() -> None:
    """1000 messages sent back-to-back by the client, and 1000 sent by the server, each arrive in order."""
    async with WsServer() as server, connect(server.url("/quiet"), ping_interval=None) as ws:
        session = await server.next_session()
        assert session.conn is not None
        for i in range(1000):
            assert session.conn.send_text(b'{"n":%d}' % i)
        got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(1000)]
        assert got == [f'{{"n":{i}}}' for i in range(1000)]
        for i in range(1000):
            await ws.send(f'{{"m":{i}}}')
        await asyncio.wait_for(await ws.ping(), 5)  # the pong comes after the 1000 messages were parsed
        assert [m for m, _ in session.messages] == [b'{"m":%d}' % i for i in range(1000)]


async def test_a_ping_from_the_client_is_answered_with_a_pong() -> None:
    """Client pings are answered automatically (websockets' ping() waits for the matching pong)."""
    async with WsServer() as server, connect(server.url(), ping_interval=None) as ws:
        latency = await asyncio.wait_for(await ws.ping(b"hello"), 5)
        assert latency >= 0


# ---------------------------------------------------------------------------------------------- handshake


async def test_permessage_deflate_offered_by_the_client_is_not_accepted() -> None:
    """Compression stays off: no Sec-WebSocket-Extensions in the 101 response, and no extension in use."""
    async with WsServer() as server, connect(server.url(), compression="deflate", ping_interval=None) as ws:
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]  # it was offered
        assert ws.response.status_code == 101
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        await ws.send("still works")
        assert await asyncio.wait_for(ws.recv(), 5) == "still works"


async def test_the_101_response_carries_the_rfc_6455_accept_value() -> None:
    """Sec-WebSocket-Accept = base64(sha1(key + GUID)) — the RFC's own example key and answer."""
    async with WsServer() as server:
        client = await RawClient.connect(server.port)
        client.send(upgrade_request(key="dGhlIHNhbXBsZSBub25jZQ=="))
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        client.close()
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        lines = {
            line.partition(b":")[0].strip().lower(): line.partition(b":")[2].strip()
            for line in head.split(b"\r\n")[1:]
            if line
        }
        assert lines[b"sec-websocket-accept"] == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert lines[b"upgrade"].lower() == b"websocket" and b"sec-websocket-extensions" not in lines


async def test_an_upgrade_without_a_key_gets_400_and_the_connection_closes() -> None:
    """A missing Sec-WebSocket-Key is refused with 400 and a JSON-RPC error body, then the server closes the socket."""
    async with WsServer() as server:
        reply = await http_exchange(server.port, upgrade_request(key=""))
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        assert b"Sec-WebSocket-Key" in body
        assert server.all_sessions == []


async def test_an_upgrade_with_a_malformed_key_gets_400() -> None:
    """A key that is not base64 of 16 bytes is refused with 400."""
    async with WsServer() as server:
        reply = await http_exchange(server.port, upgrade_request(key=base64.b64encode(b"short").decode()))
        assert reply.startswith(b"HTTP/1.1 400 ")


async def test_an_upgrade_with_version_8_gets_426_naming_version_13_and_the_connection_closes() -> None:
    """A wrong Sec-WebSocket-Version is refused with 426 and `Sec-WebSocket-Version: 13`, then closed."""
    async with WsServer() as server:
        reply = await http_exchange(server.port, upgrade_request(version="8"))
        head = reply.partition(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 426 ")
        assert b"\r\nsec-websocket-version: 13" in head
        assert server.all_sessions == []


async def test_a_post_upgrade_gets_400() -> None:
    """Only GET may upgrade."""
    async with WsServer() as server:
        request = upgrade_request().replace(b"GET ", b"POST ", 1)
        reply = await http_exchange(
            server.port, request.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n")
        )
        assert reply.startswith(b"HTTP/1.1 400 ")


async def test_frames_sent_right_behind_the_handshake_are_not_lost() -> None:
    """Bytes that arrive in the same packet as the upgrade request (`rest`) are parsed as frames."""
    async with WsServer() as server:
        client = await RawClient.connect(server.port)
        client.frames.send_text(b"early bird")
        client.send(upgrade_request() + b"".join(client.frames.data_to_send()))
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        session = await server.next_session()
        for _ in range(100):
            if session.messages:
                break
            await asyncio.sleep(0.01)
        assert session.messages == [(b"early bird", False)]
        client.close()


# ---------------------------------------------------------------------------------------------- errors


async def client_still_sending_an_over_size_message_gets_the_1009_close_frame() -> None:
    """The server fails the connection at the frame header of an over-size message while the client is still
    sending its body: the client must still get the 1009 close frame (a server that closed the socket outright
    would make the kernel answer the rest with RST, and the client would see a reset — 1006). The server
    half-closes, drains, and closes once the client has closed its side."""
    async with WsServer(WsSettings(max_message_bytes=64 * 1024, close_timeout=2.0)) as server:
        for _ in range(3):
            client = await RawClient.open(server.port)
            session = await server.next_session()
            body = b"x" * (4 * 1024 * 1024)
            client.frames.send_text(body)
            data = b"".join(client.frames.data_to_send())
            client.send(data[:16 * 1024])
            await asyncio.sleep(0.1)  # the server has read the header and failed the connection by now
            for at in range(16 * 1024, len(data), 256 * 1024):  # the client goes on sending the message
                client.send(data[at:at + 256 * 1024])
                await asyncio.sleep(0.005)
            try:
                close = await client.read_until_close()
            except ConnectionResetError as exc:
                raise AssertionError("the connection was reset before the close frame could be read") from exc
            assert (close.code, close.reason) == (1009, "message too big")
            client.writer.close()  # the client closes its side: the server's transport closes at once
            assert await session.wait_closed(1.0) == (1009, "message too big")


test_a_client_still_sending_an_over_size_message_gets_the_1009_close_frame = on_both_loops(
    client_still_sending_an_over_size_message_gets_the_1009_close_frame
)

# ---------------------------------------------------------------------------------------------- errors


async def test_a_message_over_the_limit_closes_with_1009() -> None:
    """A message larger than max_message_bytes (here split over fragments) closes with 1009 'message too big'."""
    async with WsServer(WsSettings(max_message_bytes=64 * 1024)) as server:
        async with connect(server.url(), ping_interval=None) as ws:
            session = await server.next_session()
            await ws.send("ok")
            assert await ws.recv() == "ok"
            with pytest.raises(ConnectionClosed) as info:
                await ws.send(iter(["y" * 40_000, "y" * 40_000]))
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1009, "message too big")
        assert await session.wait_closed() == (1009, "message too big")
        assert session.messages == [(b"ok", False)]


async def test_invalid_utf8_in_a_text_message_closes_with_1007() -> None:
    """A text message that is not UTF-8 is never delivered; the server closes with 1007."""
    async with WsServer() as server:
        client = await RawClient.open(server.port)
        session = await server.next_session()
        client.send_text_frame(b"valid")
        client.send_text_frame(b"bad \xff\xfe bytes")
        close = await client.read_until_close()
        assert close.code == 1007
        assert await session.wait_closed() == (1007, close.reason)
        assert session.messages == [(b"valid", False)]
        client.close()


async def test_an_unmasked_client_frame_closes_with_1002() -> None:
    """Client frames must be masked (RFC 6455 §5.1); an unmasked one is a protocol error: 1002."""
    async with WsServer() as server:
        client = await RawClient.open(server.port)
        session = await server.next_session()
        client.send(encode_text_frame(b"unmasked"))
        close = await client.read_until_close()
        assert close.code == 1002
        assert (await session.wait_closed())[0] == 1002
        assert session.messages == []
        client.close()


# ---------------------------------------------------------------------------------------------- closing


async def test_a_client_initiated_close_is_answered_and_reported_once() -> None:
    """The client's close code and reason reach on_close exactly once; the client sees the echo."""
    async with WsServer() as server:
        async with connect(server.url(), ping_interval=None) as ws:
            session = await server.next_session()
            await ws.close(1000, "bye")
            assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000
        assert await session.wait_closed() == (1000, "bye")
        await asyncio.sleep(0.05)
        assert session.closes == [(1000, "bye")]
        assert session.conn is not None and session.conn.closed
        assert session.conn.send_text(b"too late") is False


async def test_server_close_1001_reaches_the_client_with_code_and_reason() -> None:
    """close(1001, 'server shutting down') reaches a websockets client as that code and reason."""
    async with WsServer() as server:
        async with connect(server.url(), ping_interval=None) as ws:
            session = await server.next_session()
            assert session.conn is not None
            session.conn.close(1001, "server shutting down")
            assert session.conn.closed and session.conn.send_text(b"after close") is False
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1001, "server shutting down")
        assert await session.wait_closed() == (1001, "server shutting down")
        assert len(session.closes) == 1


async def test_a_connection_lost_without_a_close_frame_reports_1006() -> None:
    """A client that vanishes (TCP reset, no close frame) gives on_close(1006, '')."""
    async with WsServer() as server:
        client = await RawClient.open(server.port)
        session = await server.next_session()
        client.close()
        assert await session.wait_closed() == (1006, "")
        assert session.conn is not None and session.conn.send_text(b"x") is False


# ---------------------------------------------------------------------------------------------- back-pressure


async def slow_client_is_cut_off_while_a_normal_client_gets_everything() -> None:
    """A client that never reads is closed with 1008 'client too slow: outbound queue full' once its queue
    is full (send_text then returns False), while a normal client on the same server receives all 10,000
    messages in order. The slow client, once it reads, finds the 1008 close frame after complete frames."""
    async with WsServer(WsSettings(close_timeout=3.0)) as server:
        slow = await RawClient.open(server.port, "/quiet", rcvbuf=8192)
        slow_session = await server.next_session()
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url("/quiet")) as normal:
            normal_session = await server.next_session()
            slow_conn, normal_conn = slow_session.conn, normal_session.conn
            assert slow_conn is not None and normal_conn is not None
            filler = b"." * 1000
            expected = []
            received: list[str] = []

            async def read_normal() -> None:
                while len(received) < 10_000:
                    msg = await normal.receive()
                    assert msg.type is aiohttp.WSMsgType.TEXT, msg
                    received.append(msg.data)

            reader = asyncio.create_task(read_normal(), name="test/normal-reader")
            slow_results = []
            for batch in range(100):
                for i in range(100):
                    msg = b"%05d" % (batch * 100 + i) + filler
                    expected.append(msg.decode())
                    slow_results.append(slow_conn.send_text(msg))
                    assert normal_conn.send_text(msg)
                await asyncio.sleep(0)
            slow_reader = asyncio.create_task(slow.read_until_close(), name="test/slow-reader")
            await asyncio.wait_for(reader, 8)
            assert received == expected
            assert not normal_conn.closed

            cut = slow_results.index(False)
            assert all(slow_results[:cut]) and not any(slow_results[cut:])
            assert slow_conn.closed
            assert slow_conn.stats["max_queued"] == server.settings.send_queue
            assert slow_conn.stats["queued"] == 0
            close = await slow_reader
            assert (close.code, close.reason) == (1008, "client too slow: outbound queue full")
            texts = [f.data for f in slow.received if f.opcode is TEXT]
            assert texts == [m.encode() for m in expected[: len(texts)]]  # whole frames, in order, then close
            assert len(texts) < cut
            slow.answer_close()  # completes the handshake: the server closes at once, not after close_timeout
            assert await slow_session.wait_closed(1.0) == (1008, "client too slow: outbound queue full")
            slow.close()


test_a_client_that_never_reads_is_closed_with_1008_and_does_not_slow_other_clients = on_both_loops(
    slow_client_is_cut_off_while_a_normal_client_gets_everything
)


# ---------------------------------------------------------------------------------------------- keepalive


async def silent_client_is_closed_by_keepalive() -> None:
    """With ping_interval = ping_timeout = 0.2 s, a client that never answers pings is closed with 1011
    'keepalive ping timeout' (on_close sees it), while a client that answers pongs stays open."""
    settings = WsSettings(ping_interval=0.2, ping_timeout=0.2, close_timeout=0.3)
    async with WsServer(settings) as server:
        silent = await RawClient.open(server.port)
        silent_session = await server.next_session()
        async with connect(server.url(), ping_interval=None) as alive:
            alive_session = await server.next_session()
            close = await silent.read_until_close(timeout=3)
            assert (close.code, close.reason) == (1011, "keepalive ping timeout")
            assert any(f.opcode is PING for f in silent.received)
            assert await silent_session.wait_closed(3) == (1011, "keepalive ping timeout")
            await asyncio.sleep(0.5)  # several more ping rounds for the answering client
            assert alive_session.conn is not None and not alive_session.conn.closed
            await alive.send("still here")
            assert await asyncio.wait_for(alive.recv(), 5) == "still here"
        silent.close()


test_a_client_that_never_answers_pings_is_closed_with_1011 = on_both_loops(
    silent_client_is_closed_by_keepalive
)


# ---------------------------------------------------------------------------------------------- frames


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_encode_text_frame_parses_back_with_websockets_for_every_length_form(length: int) -> None:
    """encode_text_frame gives an unmasked FIN text frame whose 7/16/64-bit length matches the payload."""
    payload = bytes(ord("a") + i % 26 for i in range(length))
    raw = encode_text_frame(payload)
    header = 2 if length < 126 else 4 if length < 65536 else 10
    assert len(raw) == header + length
    reader = StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame = done.value.value
    assert frame.opcode is TEXT and frame.fin and frame.data == payload
    assert not reader.buffer  # nothing left over
