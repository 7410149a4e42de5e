"""The server side of a client WebSocket connection: handshake, framing, back-pressure, keepalive.

It knows nothing about JSON-RPC. `accept_upgrade()` takes over a connection from the HTTP edge
(`HttpConnection._upgrade` → `Dispatcher.upgrade`), answers the handshake and switches the transport to a
`WsServerConnection`, which hands whole messages to a `WsSession` and sends text messages for it.

Incoming frames are parsed by the websockets sans-I/O `Protocol` (masking, control frames, close handshake,
size limit); fragments are reassembled here and text is checked to be UTF-8. Outgoing data frames bypass
websockets: `send_text()` builds the frame header itself and writes to the transport — the fan-out hot path
costs one bytes concatenation and one `transport.write` per client (`send_frame()` with a frame from
`encode_text_frame()` saves even the concatenation). Compression is never negotiated (DESIGN §4).

Close codes sent by the server:
    1000/1001/...  `close(code, reason)` (graceful shutdown: 1001 "server shutting down")
    1002           protocol error in the client's frames (unmasked, bad opcode, RSV bits, bad continuation)
    1007           text message that is not UTF-8
    1008           "client too slow: outbound queue full" — see back-pressure below
    1009           "message too big" — a message over `max_message_bytes`
    1011           "keepalive ping timeout" — nothing received within `ping_timeout` after a ping
After the server sends a close frame it waits `close_timeout` for the client's close, then aborts the TCP
connection. `WsSession.on_close` is called exactly once, when the TCP connection is gone, with the code the
closing side sent (the server's code if the server closed first; the client's if the client did; 1006 if the
connection was lost without a close frame).

Back-pressure: asyncio transports buffer writes without bound, so the connection sets the transport's
high-water mark (256 KiB) and, while the transport says `pause_writing()`, holds outbound messages in a deque
(O(1) per message, never awaiting). `resume_writing()` flushes the deque in order. When the deque would grow
past `send_queue` messages the client cannot keep up: the deque is dropped, a 1008 close frame is written
straight to the transport (ahead of every message not yet handed to the transport), `send_text()` returns
False from then on, and the TCP connection is aborted after `close_timeout` if it is still open. A slow
client costs its caller nothing more than a deque append and never delays other clients.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import struct
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from websockets.frames import BINARY, CONT, TEXT, CloseCode
from websockets.protocol import OPEN, Side
from websockets.protocol import Protocol as FrameProtocol

from livechain.errors import BadHttpRequest, LivechainError, UpgradeRequired
from livechain.server.messages import Request, refuse

log = logging.getLogger("livechain.server.ws")
# websockets' sans-I/O layer logs "connection closed" at INFO for every server connection; keep its own
# warnings and errors, drop the per-connection chatter (thousands of clients).
_frames_log = logging.getLogger("livechain.server.ws.frames")
_frames_log.setLevel(logging.WARNING)

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WRITE_HIGH_WATER = 256 * 1024
TOO_SLOW_REASON = "client too slow: outbound queue full"
TOO_BIG_REASON = "message too big"
PING_TIMEOUT_REASON = "keepalive ping timeout"
_PING_PAYLOAD = b"livechain"

__all__ = [
    "WsServerConnection",
    "WsSession",
    "WsSettings",
    "accept_upgrade",
    "encode_text_frame",
]


class WsSession(Protocol):
    """Implemented by the layer above (JSON-RPC over WebSocket)."""

    def on_open(self, conn: WsServerConnection) -> None: ...

    def on_message(self, data: bytes, binary: bool) -> None:
        """One complete message (fragments reassembled); text is valid UTF-8."""
        ...

    def on_close(self, code: int, reason: str) -> None:
        """Exactly once, however the connection ends (1006 when it was lost without a close frame)."""
        ...


@dataclass
class WsSettings:
    max_message_bytes: int = 1_048_576
    send_queue: int = 2048  # messages buffered while the client is not reading, before it is disconnected
    ping_interval: float = 20.0  # server -> client pings; 0 disables keepalive
    ping_timeout: float = 20.0  # no pong (or any frame) within this after a ping: dead client
    close_timeout: float = (
        2.0  # after sending a close frame, abort the TCP connection if the client hasn't closed
    )


# ---------------------------------------------------------------------------------------------- frames

_SHORT_TEXT_HEADERS = [bytes((0x81, n)) for n in range(126)]
_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


def encode_text_frame(payload: bytes) -> bytes:
    """An unmasked server text frame with FIN set: 7-, 16- or 64-bit length form as RFC 6455 §5.2 requires."""
    n = len(payload)
    if n < 126:
        return _SHORT_TEXT_HEADERS[n] + payload
    if n < 65536:
        return _pack_16(0x81, 126, n) + payload
    return _pack_64(0x81, 127, n) + payload


class _Frames(FrameProtocol):
    """websockets' sans-I/O frame layer, server side, already OPEN (the handshake is ours)."""

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        if code == CloseCode.MESSAGE_TOO_BIG:
            reason = TOO_BIG_REASON
        super().fail(code, reason)


def _clip_reason(reason: str) -> str:
    """A close frame's payload is at most 125 bytes: 2 for the code, 123 for the UTF-8 reason."""
    raw = reason.encode()
    if len(raw) <= 123:
        return reason
    return raw[:123].decode("utf-8", "ignore")


# ---------------------------------------------------------------------------------------------- handshake


def _tokens(value: str | None) -> list[str]:
    if not value:
        return []
    return [token.strip().lower() for token in value.split(",")]


def _handshake_error(request: Request) -> LivechainError | None:
    headers = request.headers
    if request.method != "GET":
        return BadHttpRequest("a WebSocket upgrade must be a GET request")
    if "websocket" not in _tokens(headers.get("upgrade")):
        return BadHttpRequest("missing or invalid Upgrade: websocket header")
    if "upgrade" not in _tokens(headers.get("connection")):
        return BadHttpRequest("missing or invalid Connection: upgrade header")
    version = headers.get("sec-websocket-version")
    if version is None or version.strip() != "13":
        return UpgradeRequired("unsupported WebSocket version; use 13")
    key = headers.get("sec-websocket-key")
    if key is None:
        return BadHttpRequest("missing Sec-WebSocket-Key header")
    try:
        raw = base64.b64decode(key.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        return BadHttpRequest("invalid Sec-WebSocket-Key header")
    return None


def accept_upgrade(
    request: Request,
    transport: asyncio.Transport,
    rest: bytes,
    session: WsSession,
    settings: WsSettings,
) -> WsServerConnection | None:
    """Answer a WebSocket upgrade request and switch `transport` to a `WsServerConnection`.

    Valid request (GET, `Upgrade: websocket`, `Connection: upgrade`, `Sec-WebSocket-Version: 13`, a key of
    16 base64 bytes): writes the 101 response (no extensions, no subprotocol), switches the transport's
    protocol, calls `session.on_open(conn)`, then feeds `rest` (bytes that arrived after the request) and
    returns the connection. Invalid: writes 400 (or 426 with `Sec-WebSocket-Version: 13` for a wrong
    version) with a JSON-RPC error body (`messages.refuse`), closes the transport and returns None.
    """
    error = _handshake_error(request)
    if error is not None:
        refuse(transport, error)
        return None
    key = request.headers["sec-websocket-key"].strip().encode("ascii")
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + accept + b"\r\n\r\n"
    )
    conn = WsServerConnection(session, settings, request.peer)
    transport.set_protocol(conn)
    conn.connection_made(transport)
    if rest and not conn.closed:
        conn.data_received(rest)
    return conn


# ---------------------------------------------------------------------------------------------- connection


class WsServerConnection(asyncio.Protocol):
    """One client WebSocket. Created by `accept_upgrade()`; all methods are called on the loop thread."""

    def __init__(self, session: WsSession, settings: WsSettings, peer: str = "?") -> None:
        self.peer = peer
        self._session = session
        self._settings = settings
        self._send_queue_limit = settings.send_queue
        self._frames = _Frames(
            Side.SERVER, state=OPEN, max_size=settings.max_message_bytes, logger=_frames_log
        )
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False  # no more application messages: close handshake started, or connection gone
        self._lost = False
        self._close_reported = False
        self._paused = False
        self._queue: deque[bytes] = deque()
        self._fragments: list[bytes] | None = None
        self._fragments_binary = False
        self._failed = False
        self._last_rx = 0.0
        self._ping_handle: asyncio.TimerHandle | None = None
        self._pong_handle: asyncio.TimerHandle | None = None
        self._abort_handle: asyncio.TimerHandle | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_out = 0
        self.max_queued = 0

    # ------------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        """True once nothing more can be sent: the close handshake has started or the connection is gone."""
        return self._closing

    @property
    def stats(self) -> dict:
        return {
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "bytes_out": self.bytes_out,
            "queued": len(self._queue),
            "max_queued": self.max_queued,
        }

    def send_text(self, payload: bytes) -> bool:
        """Send one text message (UTF-8 bytes). False, and nothing sent, once the connection is closing."""
        if self._closing:
            return False
        n = len(payload)
        if n < 126:
            frame = _SHORT_TEXT_HEADERS[n] + payload
        elif n < 65536:
            frame = _pack_16(0x81, 126, n) + payload
        else:
            frame = _pack_64(0x81, 127, n) + payload
        return self.send_frame(frame)

    def send_frame(self, frame: bytes) -> bool:
        """Send a frame from `encode_text_frame()` (encode once, send to many). Same rules as `send_text`."""
        if self._closing:
            return False
        if self._paused:
            return self._enqueue(frame)
        try:
            self._transport.write(frame)  # type: ignore[union-attr]
        except RuntimeError:  # uvloop: the transport died before connection_lost reached us
            self._closing = True
            return False
        self.messages_out += 1
        self.bytes_out += len(frame)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake; the TCP connection is aborted if the client hasn't closed after
        `close_timeout`. Messages still queued for a slow client are dropped. No-op once closing."""
        frames = self._frames
        if self._lost or frames.state is not OPEN:
            return
        self._queue.clear()
        frames.send_close(code, _clip_reason(reason))
        self._flush_control()

    def abort(self) -> None:
        """Drop the TCP connection now, without a close handshake (on_close follows from connection_lost)."""
        self._closing = True
        if self._transport is not None and not self._lost:
            self._transport.abort()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._loop = loop = asyncio.get_running_loop()
        self._last_rx = loop.time()
        # may call pause_writing() at once if the 101 response is still buffered over the limit
        self._transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[union-attr]
        self._schedule_ping()
        try:
            self._session.on_open(self)
        except Exception:
            log.exception("WebSocket session failed to open", extra={"peer": self.peer})
            self.close(CloseCode.INTERNAL_ERROR, "internal error")

    def data_received(self, data: bytes) -> None:
        if self._lost:
            return
        self._last_rx = self._loop.time()  # type: ignore[union-attr]
        frames = self._frames
        frames.receive_data(data)
        events = frames.events_received()
        if frames.writes:  # pong, close reply, or the close frame of a protocol error
            self._flush_control()
        if events:
            self._handle(events)

    def eof_received(self) -> bool | None:
        self._frames.receive_eof()
        self._frames.events_received()
        self._flush_control()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closing = True
        self._paused = False
        self._queue.clear()
        self._fragments = None
        for handle in (self._ping_handle, self._pong_handle, self._abort_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._pong_handle = self._abort_handle = None
        frames = self._frames
        frames.receive_eof()  # idempotent; state becomes CLOSED
        frames.events_received()
        frames.data_to_send()
        if frames.close_rcvd is not None and frames.close_rcvd_then_sent:
            code, reason = frames.close_rcvd.code, frames.close_rcvd.reason  # the client closed first
        elif frames.close_sent is not None:
            code, reason = frames.close_sent.code, frames.close_sent.reason  # the server closed first
        else:
            code, reason = CloseCode.ABNORMAL_CLOSURE, ""
        self._report_close(int(code), reason)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        queue = self._queue
        transport = self._transport
        if not queue or transport is None or self._closing:
            return
        while queue and not self._paused:  # write() may pause us again mid-flush
            frame = queue.popleft()
            try:
                transport.write(frame)
            except RuntimeError:  # uvloop: the transport died before connection_lost reached us
                self._closing = True
                queue.clear()
                return
            self.messages_out += 1
            self.bytes_out += len(frame)

    # ------------------------------------------------------------------ internals

    def _enqueue(self, frame: bytes) -> bool:
        queue = self._queue
        if len(queue) >= self._send_queue_limit:
            self._too_slow()
            return False
        queue.append(frame)
        if len(queue) > self.max_queued:
            self.max_queued = len(queue)
        return True

    def _too_slow(self) -> None:
        log.info(
            "closing a WebSocket client that cannot keep up",
            extra={"peer": self.peer, "queued": len(self._queue)},
        )
        self.close(CloseCode.POLICY_VIOLATION, TOO_SLOW_REASON)

    def _handle(self, events: list) -> None:
        session = self._session
        for frame in events:
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY:
                if frame.fin:
                    self._deliver(frame.data, opcode is BINARY, session)
                else:
                    self._fragments = [frame.data]
                    self._fragments_binary = opcode is BINARY
            elif opcode is CONT:
                fragments = self._fragments
                if fragments is None:  # the frame layer rejects this first; defensive
                    continue
                fragments.append(frame.data)
                if frame.fin:
                    self._fragments = None
                    self._deliver(b"".join(fragments), self._fragments_binary, session)
            # PING (answered by the frame layer), PONG (liveness is any received data), CLOSE (state)
            if self._failed:
                return

    def _deliver(self, data: bytes, binary: bool, session: WsSession) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        if not binary:
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                self._failed = True
                self._frames.fail(CloseCode.INVALID_DATA, f"invalid UTF-8 at position {exc.start}")
                self._flush_control()
                return
        self.messages_in += 1
        try:
            session.on_message(data, binary)
        except Exception:
            log.exception("WebSocket session failed to handle a message", extra={"peer": self.peer})

    def _flush_control(self) -> None:
        """Write what the frame layer produced (control frames, EOF) straight to the transport, ahead of
        queued messages. Once the frame layer leaves OPEN, stop application sends and arm the abort."""
        frames = self._frames
        transport = self._transport
        chunks = frames.data_to_send()
        if transport is not None and not self._lost:
            try:
                for chunk in chunks:
                    if chunk:
                        if not transport.is_closing():
                            transport.write(chunk)
                    elif frames.close_rcvd is None and transport.can_write_eof():
                        # the server failed the connection (1002, 1007, 1009) while the client may still be
                        # sending — the rest of an over-size message, say. Closing outright would make the
                        # kernel answer those bytes with RST, and the client could lose the close frame
                        # (1006 instead of 1009; found by scripts/fuzz_long.py). So half-close: the close
                        # frame, then FIN; read on, discarding, until the client closes its side (the
                        # transport then closes itself) or `close_timeout` aborts it.
                        transport.write_eof()
                    else:
                        # the close handshake is complete: the server closes the TCP connection first
                        # (RFC 6455 §7.1.1); close() still flushes the buffer (the close frame) first
                        transport.close()
            except RuntimeError:  # uvloop: the transport died before connection_lost reached us
                self._closing = True
        if frames.state is not OPEN and not self._closing:
            self._enter_closing()

    def _enter_closing(self) -> None:
        self._closing = True
        self._queue.clear()
        self._fragments = None
        for handle in (self._ping_handle, self._pong_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._pong_handle = None
        if not self._lost and self._abort_handle is None and self._loop is not None:
            self._abort_handle = self._loop.call_later(self._settings.close_timeout, self._abort_now)

    def _abort_now(self) -> None:
        self._abort_handle = None
        if not self._lost and self._transport is not None:
            self._transport.abort()

    def _report_close(self, code: int, reason: str) -> None:
        if self._close_reported:
            return
        self._close_reported = True
        try:
            self._session.on_close(code, reason)
        except Exception:
            log.exception("WebSocket session failed on close", extra={"peer": self.peer})

    # ------------------------------------------------------------------ keepalive

    def _schedule_ping(self) -> None:
        interval = self._settings.ping_interval
        if interval > 0 and self._loop is not None:
            self._ping_handle = self._loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self._ping_handle = None
        if self._closing:
            return
        self._frames.send_ping(_PING_PAYLOAD)
        self._flush_control()
        loop = self._loop
        assert loop is not None
        timeout = self._settings.ping_timeout
        if timeout > 0 and self._pong_handle is None:
            self._pong_handle = loop.call_later(timeout, self._check_alive, loop.time())
        self._schedule_ping()

    def _check_alive(self, ping_sent_at: float) -> None:
        self._pong_handle = None
        if self._closing:
            return
        if self._last_rx < ping_sent_at:
            log.info("closing a WebSocket client that stopped answering pings", extra={"peer": self.peer})
            self.close(CloseCode.INTERNAL_ERROR, PING_TIMEOUT_REASON)
