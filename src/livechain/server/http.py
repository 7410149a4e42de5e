"""The HTTP/1.1 server edge: an asyncio Protocol on httptools (llhttp).

Why hand-written: DESIGN §6 measured the proxy's CPU per request — this shape (Protocol + httptools)
39–56 µs, uvicorn raw ASGI 113–119, aiohttp.web 150–166 — against a goal of ≤ 3× nginx (21–26 µs). Only
this shape meets it. It does what Livechain's routes need and no more: keep-alive and pipelining (answers
in order), Content-Length and chunked request bodies, a body-size cap (413), a header-read deadline
(slowloris), a keep-alive idle timeout, per-IP connection limits, write back-pressure, and the WebSocket
upgrade hand-off.

Requests are handed to `Dispatcher.dispatch(request)` (async). A connection's requests are answered one
after another by one task owned by the connection; losing the connection cancels that task, which is how a
client going away cancels its attempt upstream. A dispatcher may also have `answer_now(request)`: a request
that arrives while nothing of the connection's is pending is offered to it first, from the parser's callback,
and what it answers at once (a cache hit, a refusal) is written there — no task, no loop iteration; what it
cannot finish comes back as a function whose awaitable the worker task awaits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import httptools

from livechain.clients.access import AddressCounts
from livechain.errors import (
    BadHttpRequest,
    HeadersTooLarge,
    LivechainError,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ShuttingDown,
)
from livechain.server.messages import Request, Response, StreamResponse, encode, error_response

log = logging.getLogger("livechain.server")

#: request header names as clients usually send them → the lower-cased str key (saves a decode + lower)
_HEADER_NAMES = {
    raw: raw.decode("latin-1").lower()
    for name in (
        "Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Connection", "Content-Type",
        "Content-Length", "Origin", "Referer", "Authorization", "Cache-Control", "Pragma", "Cookie",
        "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-Dest", "Upgrade", "Sec-WebSocket-Key",
        "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "X-Forwarded-For", "X-Real-IP",
    )
    for raw in (name.encode(), name.lower().encode())
}
_METHODS = {m.encode(): m for m in ("GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH")}
MAX_HEADER_BYTES = 64 * 1024
MAX_PIPELINE = 32  # parsed-but-unanswered requests per connection before reading pauses
_TIMER_SLACK = 0.001  # loops may fire a timer up to ~1 ms early (uvloop rounds to ms)


Later = Callable[[], Awaitable[Response]]


class Dispatcher(Protocol):
    async def dispatch(self, request: Request) -> Response: ...

    # optional: def answer_now(self, request: Request) -> Response | Later | None — see the module docstring

    def upgrade(self, request: Request, transport: asyncio.Transport, rest: bytes) -> asyncio.Protocol | None:
        """Take over the connection for a WebSocket; None = refuse (the edge answers 400/404)."""
        ...


@dataclass
class Limits:
    max_body_bytes: int = 2 * 1024 * 1024
    header_timeout: float = 10.0
    idle_timeout: float = 75.0


class ConnectionTracker:
    """Open HTTP connections (closed when idle on shutdown) and the per-address connection counts, which the
    WebSocket edge shares: a WebSocket takes over the slot of the HTTP connection it was upgraded from."""

    def __init__(self, per_address: AddressCounts | None = None) -> None:
        self.per_address = per_address if per_address is not None else AddressCounts(512)
        self.connections: set[HttpConnection] = set()
        self.accepting = True
        self._empty = asyncio.Event()
        self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()

    def add(self, conn: HttpConnection) -> bool:
        """Track `conn`; False when its address is at the connection limit (then it is tracked, not counted)."""
        self.connections.add(conn)
        self._empty.clear()
        return self.per_address.acquire(conn.peer)

    def remove(self, conn: HttpConnection, counted: bool) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            if counted:
                self.per_address.release(conn.peer)
            if not self.connections:
                self._empty.set()


class HttpConnection(asyncio.Protocol):
    def __init__(self, dispatcher: Dispatcher, limits: Limits, tracker: ConnectionTracker) -> None:
        self._dispatcher = dispatcher
        self._limits = limits
        self._tracker = tracker
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._queue: deque[tuple[Request, Later | None]] = deque()  # with the rest of an answer begun at once
        self._answer_now: Callable[[Request], Response | Later | None] | None = getattr(dispatcher, "answer_now", None)
        self._worker: asyncio.Task | None = None
        # The worker task lives as long as the connection: between requests it waits on `_idle_waiter`
        # (a Task per request costs its creation plus asyncio's all-tasks WeakSet add/remove).
        self._idle_waiter: asyncio.Future | None = None
        self._busy = False  # a request is queued or being answered
        self._loop: asyncio.AbstractEventLoop | None = None
        # One lazily re-armed timer serves the header and idle deadlines (see _arm).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline = 0.0  # loop time; 0 = disarmed
        self._closing = False
        self._paused_reading = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        # per-message parse state
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._rejected = False
        self._pending_upgrade: Request | None = None
        self._counted = False  # holds one of its address's connection slots

    # ------------------------------------------------------------------ connection lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        peername = transport.get_extra_info("peername")
        self.peer = peername[0] if peername else "?"
        self._counted = self._tracker.add(self)
        if not self._tracker.accepting:
            self._reject_now(ShuttingDown())
            return
        if not self._counted:
            limit = self._tracker.per_address.limit
            self._reject_now(RateLimited(f"too many connections from this address (limit {limit})"))
            return
        self._arm(self._limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._tracker.remove(self, self._counted)
        self._closing = True
        self._cancel_timer()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()  # the client went away: cancel its request (and the attempt upstream)
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # The header and idle deadlines change on every request; a TimerHandle per change (call_later + cancel)
    # costs ~3 µs each, several per request. Instead `_arm` only records the deadline, and one timer per
    # connection is (re-)armed lazily: when it fires early (the deadline moved later meanwhile) it re-arms
    # for the current deadline; it is replaced only when the deadline moves *earlier* than it.

    def _arm(self, seconds: float) -> None:
        if seconds <= 0:
            self._deadline = 0.0
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = self._deadline = loop.time() + seconds
        timer = self._timer
        if timer is None or deadline < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        self._deadline = 0.0  # a pending timer finds no deadline and stops

    def _cancel_timer(self) -> None:
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if not deadline or self._closing:
            return
        loop = self._loop
        if deadline - loop.time() > _TIMER_SLACK:  # type: ignore[union-attr]
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._on_timer)  # type: ignore[union-attr]
            return
        self._deadline = 0.0
        self._timed_out()

    def _timed_out(self) -> None:
        if not self._busy:
            self._close()

    def _close(self) -> None:
        if not self._closing and self.transport is not None:
            self._closing = True
            self.transport.close()

    def _reject_now(self, exc: LivechainError) -> None:
        response = error_response(exc)
        response.close = True
        self._write(response, None)
        self._close()

    def close_if_idle(self) -> None:
        """Shutdown: close now unless a request is being answered (then after it)."""
        if not self._busy:
            self._close()

    # ------------------------------------------------------------------ parsing

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade(data[upgrade.args[0] :] if upgrade.args else b"")
        except httptools.HttpParserError:
            if not self._rejected:
                self._reject_now(BadHttpRequest("malformed HTTP request"))
            else:
                self._close()

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._body_size = 0
        self._rejected = False
        if not self._queue and not self._busy:
            self._arm(self._limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._rejected = True
            self._reject_now(HeadersTooLarge("request headers too large"))
            raise httptools.HttpParserError("headers too large")
        key = _HEADER_NAMES.get(name) or name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        old = headers.get(key)
        headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        if not self._queue and not self._busy:
            self._disarm()
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._limits.max_body_bytes:
            self._too_large()
        if self._headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # clients that wait for it (curl > 1 MB)

    def on_body(self, body: bytes) -> None:
        if self._rejected:
            return
        self._body_size += len(body)
        if self._body_size > self._limits.max_body_bytes:
            self._too_large()
            return
        self._body.append(body)

    def _too_large(self) -> None:
        self._rejected = True
        self._reject_now(PayloadTooLarge(f"request body exceeds {self._limits.max_body_bytes} bytes"))
        raise httptools.HttpParserError("body too large")

    def on_message_complete(self) -> None:
        if self._rejected:
            return
        raw = self._url.decode("latin-1")
        path, _, query = raw.partition("?")
        parser = self._parser
        method = parser.get_method()
        body = self._body
        request = Request(
            method=_METHODS.get(method) or method.decode("ascii", "replace"),
            path=path,
            query=query,
            headers=self._headers,
            body=body[0] if len(body) == 1 else b"".join(body),
            peer=self.peer,
            keep_alive=parser.should_keep_alive(),
            upgrade=parser.should_upgrade(),
        )
        if request.upgrade:
            self._pending_upgrade = request  # handed off in _upgrade(), right after this callback
            return
        queue = self._queue
        later = None
        if self._answer_now is not None and not queue and not self._busy and self._can_write.is_set():
            try:
                now = self._answer_now(request)
            except Exception:
                log.exception("unhandled error while answering a request", extra={"path": request.path})
                now = error_response(ServerError())
            if type(now) is Response:  # answered: written here, in order (nothing of this connection is pending)
                self._write(now, request)
                if now.close or not request.keep_alive or not self._tracker.accepting:
                    self._close()
                else:
                    self._arm(self._limits.idle_timeout)
                return
            later = now
        queue.append((request, later))
        if len(queue) >= MAX_PIPELINE and not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()
        self._busy = True
        waiter = self._idle_waiter
        if waiter is not None:
            self._idle_waiter = None
            if not waiter.done():
                waiter.set_result(None)
                return
        worker = self._worker
        if worker is None or worker.done():
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            self._worker = loop.create_task(self._work(), name=f"http/{self.peer}")

    # ------------------------------------------------------------------ answering, in order

    async def _work(self) -> None:
        try:
            await self._serve()
        finally:
            self._busy = False
            self._idle_waiter = None

    async def _serve(self) -> None:
        dispatcher = self._dispatcher
        queue = self._queue
        loop = self._loop
        while not self._closing:
            if not queue:  # idle: wait for the next request (on_message_complete wakes us)
                self._busy = False
                self._arm(self._limits.idle_timeout)
                waiter = self._idle_waiter = loop.create_future()  # type: ignore[union-attr]
                await waiter
                continue
            request, later = queue.popleft()
            if self._paused_reading and len(queue) < MAX_PIPELINE // 2 and self.transport is not None:
                self._paused_reading = False
                self.transport.resume_reading()
            try:
                response = await (later() if later is not None else dispatcher.dispatch(request))
            except Exception:
                log.exception("unhandled error while answering a request", extra={"path": request.path})
                response = error_response(ServerError())
            if not self._can_write.is_set():
                await self._can_write.wait()
            if self._closing:
                return
            self._write(response, request)
            if isinstance(response, StreamResponse) and response.stream is not None and self.transport is not None:
                await response.stream(self.transport)
                self._close()
                return
            if response.close or not request.keep_alive or not self._tracker.accepting:
                self._close()
                return

    def _write(self, response: Response, request: Request | None) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if request is None:
            transport.write(encode(response))
        else:
            transport.write(encode(response, request.keep_alive, request.method == "HEAD"))

    # ------------------------------------------------------------------ WebSocket hand-off

    def _upgrade(self, rest: bytes) -> None:
        request, self._pending_upgrade = self._pending_upgrade, None
        transport = self.transport
        if request is None or transport is None:
            self._reject_now(BadHttpRequest("unexpected protocol upgrade"))
            return
        if self._queue or self._busy:
            self._reject_now(BadHttpRequest("protocol upgrade while requests are pending"))
            return
        self._cancel_timer()
        # the WebSocket edge counts the connection from here on: it takes over this connection's slot
        self._tracker.remove(self, self._counted)
        self._counted = False
        protocol = self._dispatcher.upgrade(request, transport, rest)
        if protocol is None:
            if not transport.is_closing():
                self._reject_now(BadHttpRequest("this endpoint does not accept a protocol upgrade"))
            return
        self._closing = True  # this object no longer owns the transport
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()  # idle, waiting for a request that will never come here
