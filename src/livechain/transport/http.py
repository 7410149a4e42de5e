"""The upstream HTTP/1.1 keep-alive client pool: one `HttpPool` per provider, POSTing JSON-RPC bodies.

Why hand-written: the upstream client decides the proxy's performance (DESIGN §6). Measured client CPU per
request at c=1 / c=50: this kind of pool (asyncio ``Protocol`` + ``httptools``) ~44 / ~18 µs; aiohttp
263 / 202; pyreqwest 147 / 117; wreq ~160 / ~75; rnet, httpr worse; httpx collapses at c=50. No library
comes close to the cost goal, so this module is a small, tested client on ``httptools`` (llhttp) with only
what a provider needs: keep-alive, TLS, timeouts, a response size cap and one safe re-send.
``bench/http_pool_client.py`` measures it against aiohttp (same run, separate-process server).

Shape of the hot path: an idle connection is popped (LIFO), the pre-built request head plus the body is
written with one ``transport.write``, and the caller awaits one future (no task, no per-request timer). The
protocol parses the reply in ``data_received``, resolves the future and puts the connection back in the pool
(or hands it straight to the first waiter) before the caller even resumes. No streams, no tasks, no logging.

Ownership: a connection is either *idle* (in the pool's list) or *busy* (owned by one ``post()``). Errors
are translated here, once, into ``livechain.errors`` classes carrying the provider *name*; messages never
contain the URL, host or path (provider URLs carry API keys), and original ``OSError`` s are not chained
because their text can name the host.

Re-send rule: a *reused* connection that turns out to be closed before any byte of the reply arrived (the
provider closed it while it sat idle) is replaced by a fresh connection and the request is sent once more.
Never after a response byte arrived, never on a fresh connection.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import socket
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import httptools

from livechain.errors import AttemptTimeout, BadResponse, ConnectFailed, PoolSaturated, TransportError

__all__ = ["HttpPool", "HttpResponse"]

_PARSER_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)
_NEVER = float("inf")
_TICK_SLACK = 0.001  # loops may fire a timer up to ~1 ms early (uvloop rounds to ms)


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


class _Stale(Exception):
    """Internal: a reused connection was closed before any reply byte arrived. Never escapes `post()`."""


class _StopParsing(Exception):
    """Internal: raised from a parser callback to stop llhttp (oversize body, bytes after the reply)."""


class _Conn(asyncio.Protocol):
    """One keep-alive connection. Parses replies; resolves the busy caller's future."""

    # fmt: off
    __slots__ = (
        "body_size", "complete", "content_length", "deadline", "dropped", "error", "fut", "has_te",
        "headers_done", "idle_since", "in_idle", "keep_alive", "limit", "lost", "lost_waiter", "max_bytes",
        "parser", "parts", "pool", "raw_headers", "received", "status", "transport", "until_eof", "uses",
    )
    # fmt: on

    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool
        self.max_bytes = pool._max_bytes
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
                name = self.pool._name
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
                self.pool._release(self)
            else:
                self.pool._kill(self)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides what EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        pool = self.pool
        fut = self.fut
        if fut is not None:
            self.fut = None
            if not fut.done():
                name = pool._name
                if self.until_eof and self.headers_done and self.error is None:
                    self.uses += 1  # close-delimited body: EOF completes it
                    fut.set_result(
                        HttpResponse(self.status, b"".join(self.parts), raw_headers=self.raw_headers)
                    )
                    pool._drop(self)
                elif self.received == 0 and self.uses:
                    fut.set_exception(_Stale())
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
            pool._discard_idle(self)
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
        name = self.pool._name
        self.error = BadResponse(f"{name}: response body exceeds {self.max_bytes} bytes", provider=name)
        raise _StopParsing


def _how(exc: BaseException | None) -> str:
    return "closed by the provider" if exc is None else f"lost ({_errname(exc)})"


def _errname(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return errno.errorcode[code]
    return type(exc).__name__


def _describe_connect_error(exc: OSError | ValueError) -> str:
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


def _header_lines(headers: Mapping[str, str], name: str) -> bytes:
    lines = []
    for key, value in headers.items():
        if any(c in key for c in "\r\n:") or "\r" in value or "\n" in value:
            raise ValueError(f"{name}: invalid HTTP header {key!r}")
        lines.append(f"{key}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class HttpPool:
    """A keep-alive HTTP/1.1 connection pool to one provider. Single event loop; not thread-safe.

    ``post()`` raises only ``livechain.errors`` provider errors (and ``CancelledError``); a bad argument
    (a URL that is not http(s), a header with CR/LF) is a ``ValueError`` naming the provider only.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        max_connections: int = 32,
        connect_timeout: float = 3.0,
        max_response_bytes: int = 32 * 1024 * 1024,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = 30.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"{name}: max_connections must be >= 1")
        self._name = name
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(f"{name}: provider URL is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: provider URL must be http:// or https:// with a host")
        tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port or (443 if tls else 80)
        self._ssl: ssl.SSLContext | None = (ssl_context or ssl.create_default_context()) if tls else None
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._max_bytes = max_response_bytes
        self._idle_timeout = idle_timeout

        host = f"[{self._host}]" if ":" in self._host else self._host
        if port is not None and port != (443 if tls else 80):
            host = f"{host}:{port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        fixed = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        for key in headers or ():
            fixed = {k: v for k, v in fixed.items() if k.lower() != key.lower()}
        head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1") + _header_lines(
            {**fixed, **(headers or {})}, name
        )
        if parts.username is not None:
            userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            head += b"Authorization: Basic " + base64.b64encode(userinfo.encode()) + b"\r\n"
        self._head = head  # constant part, built once; Content-Length (and per-call headers) follow
        self._head_cl = head + b"Content-Length: "

        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[_Conn] = []  # LIFO; oldest first
        self._conns: set[_Conn] = set()  # connected, not yet dropped
        self._count = 0  # reserved slots: connecting + connected
        self._waiters: deque[asyncio.Future] = deque()  # FIFO; result: a _Conn, or None = "a slot is yours"
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._tick: asyncio.TimerHandle | None = None  # deadline timer, see _on_tick
        self._tick_at = _NEVER
        self._closed = False
        self._created = 0
        self._reused = 0
        self._resent = 0

    def __repr__(self) -> str:
        return f"<HttpPool {self._name!r} open={len(self._conns)} idle={len(self._idle)} max={self._max}>"

    # ------------------------------------------------------------------ public API

    async def post(
        self,
        body: bytes,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """POST ``body`` and return the reply, whatever its status. ``timeout`` bounds the whole call."""
        if self._closed:
            raise ConnectFailed(f"{self._name}: pool is closed", provider=self._name)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if headers:
            data = b"".join(
                (
                    self._head,
                    _header_lines(headers, self._name),
                    b"Content-Length: %d\r\n\r\n" % len(body),
                    body,
                )
            )
        else:
            data = b"".join((self._head_cl, b"%d\r\n\r\n" % len(body), body))

        waited = False
        conn = self._pop_idle(loop) if self._idle else None
        try:
            if conn is None:
                waited = self._count >= self._max
                conn = await self._obtain(loop, deadline, timeout)
            return await self._exchange(loop, conn, data, deadline, timeout)
        except _Stale:
            pass
        except AttemptTimeout as exc:
            if waited and not isinstance(exc, PoolSaturated):
                # part of the time went to our own queue (waiting for a connection, or for a slot and then
                # connecting in what was left): not the provider's timeout
                raise PoolSaturated(
                    f"{self._name}: no reply within {timeout:g}s after waiting for a free connection",
                    provider=self._name,
                ) from None
            raise
        # The provider closed this kept-alive connection before replying: nothing of the reply was seen,
        # so send once more on a fresh connection, in the same slot.
        if self._closed or conn.dropped:
            if not conn.dropped:
                self._drop(conn)
            raise ConnectFailed(f"{self._name}: pool is closed", provider=self._name) from None
        conn.dropped = True
        self._conns.discard(conn)
        self._resent += 1
        conn = await self._connect(loop, deadline, timeout)
        return await self._exchange(loop, conn, data, deadline, timeout)

    async def close(self) -> None:
        """Close every connection and fail every waiter; later ``post()`` calls raise ``ConnectFailed``."""
        self._closed = True
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectFailed(f"{self._name}: pool is closed", provider=self._name))
        conns = list(self._conns)
        self._idle.clear()
        waits = []
        for conn in conns:
            conn.in_idle = False
            transport = conn.transport
            if transport is None or conn.lost:
                continue
            conn.lost_waiter = self._loop.create_future()  # type: ignore[union-attr]
            waits.append(conn.lost_waiter)
            if conn.fut is None:
                transport.close()
            else:
                transport.abort()
            self._drop(conn)
        if waits:
            await asyncio.wait(waits, timeout=1.0)

    def stats(self) -> dict:
        open_ = len(self._conns)
        idle = len(self._idle)
        return {
            "open": open_,
            "idle": idle,
            "busy": open_ - idle,
            "waiting": len(self._waiters),
            "created": self._created,
            "reused": self._reused,
            "resent": self._resent,
        }

    # ------------------------------------------------------------------ exchange

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, conn: _Conn, data: bytes, deadline: float, limit: float
    ) -> HttpResponse:
        if conn.lost:
            if conn.uses:
                raise _Stale
            self._kill(conn)
            raise ConnectFailed(
                f"{self._name}: connection closed right after connecting", provider=self._name
            )
        if conn.uses:
            self._reused += 1
        fut = loop.create_future()
        conn.start(fut)
        conn.deadline = deadline
        conn.limit = limit
        if deadline < self._tick_at:
            self._arm_tick(loop, deadline)
        conn.transport.write(data)  # type: ignore[union-attr]
        try:
            return await fut
        except _Stale:
            raise
        except BaseException:
            # Timeout, transport error, bad reply or cancellation: never reuse a half-used connection.
            # But a caller cancelled after its reply completed no longer owns the connection: the
            # protocol already gave it back (maybe to another caller), so it is not touched.
            if not fut.done() or fut.cancelled() or fut.exception() is not None:
                self._kill(conn)
            raise

    # A per-request TimerHandle (call_at + cancel) costs ~2.5 µs, more than a tenth of a request. Instead
    # one pool timer is armed for the earliest deadline of all busy connections; when it fires it fails
    # the expired ones and re-arms for the next. Uniform timeouts make that about one firing per timeout.

    def _arm_tick(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._tick is not None:
            self._tick.cancel()
        self._tick_at = when
        self._tick = loop.call_at(when, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        self._tick_at = _NEVER
        now = self._loop.time()  # type: ignore[union-attr]
        soonest = _NEVER
        name = self._name
        for conn in list(self._conns):
            fut = conn.fut
            if fut is None or fut.done():
                continue
            if conn.deadline - now <= _TICK_SLACK:
                fut.set_exception(
                    AttemptTimeout(f"{name}: no complete reply within {conn.limit:g}s", provider=name)
                )
            elif conn.deadline < soonest:
                soonest = conn.deadline
        if soonest < _NEVER and not self._closed:
            self._arm_tick(self._loop, soonest)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ slots and connections

    def _pop_idle(self, loop: asyncio.AbstractEventLoop) -> _Conn | None:
        idle = self._idle
        now = loop.time()
        while idle:
            conn = idle.pop()
            conn.in_idle = False
            if conn.lost or now - conn.idle_since > self._idle_timeout:
                self._kill(conn)
                continue
            return conn
        return None

    async def _obtain(self, loop: asyncio.AbstractEventLoop, deadline: float, limit: float) -> _Conn:
        """A busy connection for the caller: a new one if a slot is free, else wait FIFO for one."""
        if self._count < self._max:
            self._count += 1
            return await self._connect(loop, deadline, limit)
        waiter = loop.create_future()
        self._waiters.append(waiter)
        handle = loop.call_at(deadline, self._expire_waiter, waiter, limit)
        try:
            got = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_back(waiter.result())  # handed over just as we were cancelled
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        finally:
            handle.cancel()
        if got is None:
            return await self._connect(loop, deadline, limit)
        return got

    def _expire_waiter(self, waiter: asyncio.Future, timeout: float) -> None:
        if not waiter.done():
            waiter.set_exception(
                PoolSaturated(f"{self._name}: no free connection within {timeout:g}s", provider=self._name)
            )

    def _give_back(self, got: _Conn | None) -> None:
        if got is None:
            self._give_slot()
        else:
            self._release(got)

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float, limit: float) -> _Conn:
        """Open a connection in a slot the caller already holds; on failure the slot is given back."""
        name = self._name
        conn = _Conn(self)
        remaining = deadline - loop.time()
        budget = min(remaining, self._connect_timeout)
        cm = asyncio.timeout(budget)
        try:
            if self._closed:
                raise ConnectFailed(f"{name}: pool is closed", provider=name)
            if budget <= 0:
                raise AttemptTimeout(f"{name}: no complete reply within {limit:g}s", provider=name)
            async with cm:
                await loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                    ssl_handshake_timeout=self._connect_timeout if self._ssl is not None else None,
                )
            if self._closed:
                raise ConnectFailed(f"{name}: pool is closed", provider=name)
        except BaseException as exc:
            if conn.transport is not None:
                conn.transport.abort()
            self._give_slot()
            if isinstance(exc, TimeoutError) and cm.expired():
                if remaining <= self._connect_timeout:
                    raise AttemptTimeout(
                        f"{name}: no complete reply within {limit:g}s (timed out connecting)", provider=name
                    ) from None
                raise ConnectFailed(
                    f"{name}: connect timed out after {self._connect_timeout:g}s", provider=name
                ) from None
            if isinstance(exc, (OSError, ValueError)):  # ValueError: e.g. a host IDNA cannot encode
                raise ConnectFailed(f"{name}: {_describe_connect_error(exc)}", provider=name) from None
            raise
        self._created += 1
        self._conns.add(conn)
        return conn

    def _release(self, conn: _Conn) -> None:
        """A connection finished an exchange cleanly: hand it to the first waiter, or park it."""
        if self._closed or conn.lost:
            self._kill(conn)
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self._loop.time()  # type: ignore[union-attr]
        conn.in_idle = True
        self._idle.append(conn)
        if self._sweep_handle is None:
            self._sweep_handle = self._loop.call_later(self._idle_timeout, self._sweep)  # type: ignore[union-attr]

    def _kill(self, conn: _Conn) -> None:
        """Close a connection now and give its slot back (idempotent)."""
        conn.lost = True
        transport = conn.transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        if conn.dropped:
            return
        conn.dropped = True
        self._conns.discard(conn)
        self._give_slot()

    def _give_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to this waiter, which connects
                return
        self._count -= 1

    def _discard_idle(self, conn: _Conn) -> None:
        """An idle connection was closed by the provider."""
        conn.in_idle = False
        try:
            self._idle.remove(conn)
        except ValueError:
            pass
        self._drop(conn)

    def _sweep(self) -> None:
        """Close connections idle for longer than idle_timeout (the idle list is oldest first)."""
        self._sweep_handle = None
        idle = self._idle
        now = self._loop.time()  # type: ignore[union-attr]
        expired = 0
        while expired < len(idle) and now - idle[expired].idle_since >= self._idle_timeout:
            expired += 1
        stale, idle[:expired] = idle[:expired], []
        for conn in stale:
            conn.in_idle = False
            conn.lost = True
            if conn.transport is not None:
                conn.transport.close()
            self._drop(conn)
        if idle and not self._closed:
            delay = max(idle[0].idle_since + self._idle_timeout - now, 0.05)
            self._sweep_handle = self._loop.call_later(delay, self._sweep)  # type: ignore[union-attr]
