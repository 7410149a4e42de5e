"""One upstream HTTP/1.1 keep-alive connection: its asyncio ``Protocol`` (``HttpConn``: reply parsing with
``httptools``, the size cap, the keep-alive decision), the ``HttpResponse`` it produces, and host-free
descriptions of how a connection failed.

An ``HttpConn`` belongs to its pool (``http.py``), which writes each request and hands the connection a
future with ``start()``. The connection resolves that future from ``data_received`` (or fails it from
``connection_lost``) and tells the pool what became of it through the narrow ``ConnOwner`` interface.
Error messages name the provider only, never its URL or host.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import Protocol

import httptools

from livechain.errors import BadResponse, TransportError

__all__ = ["ConnOwner", "HttpConn", "HttpResponse", "Stale", "describe_connect_error"]

_PARSER_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)


class ConnOwner(Protocol):
    """What an ``HttpConn`` needs from the pool that owns it (``HttpPool`` implements it)."""

    @property
    def name(self) -> str: ...  # the provider id, for error messages (never the URL)

    @property
    def max_response_bytes(self) -> int: ...

    def release(self, conn: HttpConn) -> None: ...  # reply complete, keep-alive: reuse or park it

    def kill(self, conn: HttpConn) -> None: ...  # reply complete, not reusable: close it, free its slot

    def drop(self, conn: HttpConn) -> None: ...  # closed after a close-delimited reply: free its slot

    def discard_idle(self, conn: HttpConn) -> None: ...  # closed by the provider while idle


class HttpResponse:
    """One reply, status not interpreted. ``headers``: lower-cased names, repeats joined with ", ".

    Headers are decoded on first access: decoding ~10 headers costs more than the rest of the parse and
    most replies are only looked at for status and body. Built like a dataclass: ``HttpResponse(status,
    body, headers)``.
    """

    __slots__ = ("_headers", "_raw", "body", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        raw_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self._headers = headers
        self._raw = raw_headers

    @property
    def headers(self) -> dict[str, str]:
        headers = self._headers
        if headers is None:
            headers = self._headers = {}
            for raw_name, raw_value in self._raw or ():
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._raw = None
        return headers

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HttpResponse):
            return NotImplemented
        return (self.status, self.body, self.headers) == (other.status, other.body, other.headers)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"HttpResponse(status={self.status}, body=<{len(self.body)} bytes>)"


class Stale(Exception):
    """Internal: a reused connection was closed before any reply byte arrived. ``HttpPool.post()`` re-sends
    once on a fresh connection; this never escapes it."""


class _StopParsing(Exception):
    """Internal: raised from a parser callback to stop llhttp (oversize body, bytes after the reply)."""


class HttpConn(asyncio.Protocol):
    """One keep-alive connection. Parses replies; resolves the busy caller's future."""

    # fmt: off
    __slots__ = (
        "body_size", "complete", "content_length", "deadline", "dropped", "error", "fut", "has_te",
        "headers_done", "idle_since", "in_idle", "keep_alive", "limit", "lost", "lost_waiter", "max_bytes",
        "parser", "parts", "pool", "raw_headers", "received", "status", "transport", "until_eof", "uses",
    )
    # fmt: on

    def __init__(self, pool: ConnOwner) -> None:
        self.pool = pool
        self.max_bytes = pool.max_response_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.fut: asyncio.Future | None = None
        self.lost = False  # connection_lost seen: never usable again
        self.dropped = False  # its pool slot has been given back (or transferred)
        self.in_idle = False
        self.idle_since = 0.0
        self.uses = 0  # completed exchanges
        self.deadline = 0.0  # of the current exchange (loop time) and its timeout, for HttpPool._on_tick
        self.limit = 0.0
        self.lost_waiter: asyncio.Future | None = None
        self._reset_message()

    def _reset_message(self) -> None:
        self.received = 0
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.content_length: bytes | None = None
        self.has_te = False
        self.parts: list[bytes] = []
        self.body_size = 0
        self.headers_done = False
        self.until_eof = False
        self.complete = False
        self.keep_alive = False
        self.error: BadResponse | None = None

    def start(self, fut: asyncio.Future) -> None:
        self._reset_message()
        self.fut = fut

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass

    def data_received(self, data: bytes) -> None:
        fut = self.fut
        if fut is None or fut.done():
            # Bytes nobody asked for (idle connection) or a reply whose caller gave up: unusable.
            self.lost = True
            self.transport.abort()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except _PARSER_ERRORS:
            if not self.complete:
                self.fut = None
                name = self.pool.name
                fut.set_exception(
                    self.error or BadResponse(f"{name}: malformed HTTP response", provider=name)
                )
                self.lost = True
                self.transport.abort()
                return
            self.keep_alive = False  # bytes after a complete reply: answer it, then drop the connection
        if self.complete:
            self.fut = None
            self.uses += 1
            parts = self.parts
            fut.set_result(
                HttpResponse(
                    self.status,
                    parts[0] if len(parts) == 1 else b"".join(parts),
                    raw_headers=self.raw_headers,
                )
            )
            if self.keep_alive:
                self.pool.release(self)
            else:
                self.pool.kill(self)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides what EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        pool = self.pool
        fut = self.fut
        if fut is not None:
            self.fut = None
            if not fut.done():
                name = pool.name
                if self.until_eof and self.headers_done and self.error is None:
                    self.uses += 1  # close-delimited body: EOF completes it
                    fut.set_result(
                        HttpResponse(self.status, b"".join(self.parts), raw_headers=self.raw_headers)
                    )
                    pool.drop(self)
                elif self.received == 0 and self.uses:
                    fut.set_exception(Stale())
                elif self.received == 0:
                    fut.set_exception(
                        TransportError(f"{name}: connection {_how(exc)} before any reply", provider=name)
                    )
                else:
                    fut.set_exception(
                        TransportError(
                            f"{name}: connection {_how(exc)} in the middle of the reply", provider=name
                        )
                    )
        elif self.in_idle:
            pool.discard_idle(self)
        if self.lost_waiter is not None and not self.lost_waiter.done():
            self.lost_waiter.set_result(None)

    # ------------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            raise _StopParsing  # a second message after the reply: stop here, drop the connection

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))  # decoded lazily by HttpResponse.headers
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self.content_length = value
        elif size == 17 and name.lower() == b"transfer-encoding":
            self.has_te = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        status = self.status = self.parser.get_status_code()
        length = self.content_length
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = False  # llhttp rejects a malformed Content-Length itself
            if too_big:
                self._oversize()
        elif not self.has_te and status >= 200 and status not in (204, 304):
            self.until_eof = True

    def on_body(self, body: bytes) -> None:
        size = self.body_size = self.body_size + len(body)
        if size > self.max_bytes:
            self._oversize()
        self.parts.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        if parser.get_status_code() < 200:
            self._reset_message()  # 1xx interim response: the real one follows
            self.received = 1
            return
        # Read here: llhttp resets its flags after this callback returns.
        self.keep_alive = parser.should_keep_alive() and parser.get_http_version() == "1.1"
        self.complete = True

    def _oversize(self) -> None:
        name = self.pool.name
        self.error = BadResponse(f"{name}: response body exceeds {self.max_bytes} bytes", provider=name)
        raise _StopParsing


def _how(exc: BaseException | None) -> str:
    return "closed by the provider" if exc is None else f"lost ({_errname(exc)})"


def _errname(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return errno.errorcode[code]
    return type(exc).__name__


def describe_connect_error(exc: OSError | ValueError) -> str:
    """A host-free description (an OSError's own text may contain the address or hostname)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"connect failed ({_errname(exc)})"  # errno name or class name only
