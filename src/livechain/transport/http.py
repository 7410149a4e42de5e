"""The upstream HTTP/1.1 keep-alive client pool: one `HttpPool` per provider, POSTing JSON-RPC bodies.

Why hand-written: the upstream client decides the proxy's performance (DESIGN §6). Measured client CPU per
request at c=1 / c=50: this kind of pool (asyncio ``Protocol`` + ``httptools``) ~44 / ~18 µs; aiohttp
263 / 202; pyreqwest 147 / 117; wreq ~160 / ~75; rnet, httpr worse; httpx collapses at c=50. No library
comes close to the cost goal, so this module and ``http_conn.py`` are a small, tested client on ``httptools``
(llhttp) with only what a provider needs: keep-alive, TLS, timeouts, a response size cap and one safe re-send.
``bench/http_pool_client.py`` measures it against aiohttp (same run, separate-process server).

Shape of the hot path: an idle connection is popped (LIFO), the pre-built request head plus the body is
written with one ``transport.write``, and the caller awaits one future (no task, no per-request timer). The
connection's protocol (``HttpConn``, in ``http_conn.py``) parses the reply in ``data_received``, resolves the
future and puts the connection back in the pool (or hands it straight to the first waiter) before the caller
even resumes. No streams, no tasks, no logging.

Ownership: this module owns the pool (slots, the idle list, waiters, connecting, the deadline timer, the
re-send rule, sweeping, stats); a connection is either *idle* (in the pool's list) or *busy* (owned by one
``post()``). Errors are translated here and in ``http_conn.py``, once, into ``livechain.errors`` classes
carrying the provider *name*; messages never contain the URL, host or path (provider URLs carry API keys),
and original ``OSError`` s are not chained because their text can name the host.

Re-send rule: a *reused* connection that turns out to be closed before any byte of the reply arrived (the
provider closed it while it sat idle) is replaced by a fresh connection and the request is sent once more.
Never after a response byte arrived, never on a fresh connection.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from livechain.errors import AttemptTimeout, ConnectFailed, PoolSaturated
from livechain.transport.http_conn import HttpConn, HttpResponse, Stale, describe_connect_error

__all__ = ["HttpPool", "HttpResponse"]

_Conn = HttpConn  # bench/request_path.py builds `transport_http._Conn(pool)` in its fake `_connect`

_NEVER = float("inf")
_TICK_SLACK = 0.001  # loops may fire a timer up to ~1 ms early (uvloop rounds to ms)


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
        self.name = name
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
        self.max_response_bytes = max_response_bytes
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
        self._idle: list[HttpConn] = []  # LIFO; oldest first
        self._conns: set[HttpConn] = set()  # connected, not yet dropped
        self._count = 0  # reserved slots: connecting + connected
        self._waiters: deque[asyncio.Future] = deque()  # FIFO; result: a conn, or None = "a slot is yours"
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._tick: asyncio.TimerHandle | None = None  # deadline timer, see _on_tick
        self._tick_at = _NEVER
        self._closed = False
        self._created = 0
        self._reused = 0
        self._resent = 0

    def __repr__(self) -> str:
        return f"<HttpPool {self.name!r} open={len(self._conns)} idle={len(self._idle)} max={self._max}>"

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
            raise ConnectFailed(f"{self.name}: pool is closed", provider=self.name)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if headers:
            data = b"".join(
                (
                    self._head,
                    _header_lines(headers, self.name),
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
        except Stale:
            pass
        except AttemptTimeout as exc:
            if waited and not isinstance(exc, PoolSaturated):
                # part of the time went to our own queue (waiting for a connection, or for a slot and then
                # connecting in what was left): not the provider's timeout
                raise PoolSaturated(
                    f"{self.name}: no reply within {timeout:g}s after waiting for a free connection",
                    provider=self.name,
                ) from None
            raise
        # The provider closed this kept-alive connection before replying: nothing of the reply was seen,
        # so send once more on a fresh connection, in the same slot.
        if self._closed or conn.dropped:
            if not conn.dropped:
                self.drop(conn)
            raise ConnectFailed(f"{self.name}: pool is closed", provider=self.name) from None
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
                waiter.set_exception(ConnectFailed(f"{self.name}: pool is closed", provider=self.name))
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
            self.drop(conn)
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
        self, loop: asyncio.AbstractEventLoop, conn: HttpConn, data: bytes, deadline: float, limit: float
    ) -> HttpResponse:
        if conn.lost:
            if conn.uses:
                raise Stale
            self.kill(conn)
            raise ConnectFailed(f"{self.name}: connection closed right after connecting", provider=self.name)
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
        except Stale:
            raise
        except BaseException:
            # Timeout, transport error, bad reply or cancellation: never reuse a half-used connection.
            # But a caller cancelled after its reply completed no longer owns the connection: the
            # protocol already gave it back (maybe to another caller), so it is not touched.
            if not fut.done() or fut.cancelled() or fut.exception() is not None:
                self.kill(conn)
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
        name = self.name
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
    # release / kill / drop / discard_idle are also the pool's side of ``ConnOwner`` (called by HttpConn).

    def _pop_idle(self, loop: asyncio.AbstractEventLoop) -> HttpConn | None:
        idle = self._idle
        now = loop.time()
        while idle:
            conn = idle.pop()
            conn.in_idle = False
            if conn.lost or now - conn.idle_since > self._idle_timeout:
                self.kill(conn)
                continue
            return conn
        return None

    async def _obtain(self, loop: asyncio.AbstractEventLoop, deadline: float, limit: float) -> HttpConn:
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
                PoolSaturated(f"{self.name}: no free connection within {timeout:g}s", provider=self.name)
            )

    def _give_back(self, got: HttpConn | None) -> None:
        if got is None:
            self._give_slot()
        else:
            self.release(got)

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float, limit: float) -> HttpConn:
        """Open a connection in a slot the caller already holds; on failure the slot is given back."""
        name = self.name
        conn = HttpConn(self)
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
                raise ConnectFailed(f"{name}: {describe_connect_error(exc)}", provider=name) from None
            raise
        self._created += 1
        self._conns.add(conn)
        return conn

    def release(self, conn: HttpConn) -> None:
        """A connection finished an exchange cleanly: hand it to the first waiter, or park it."""
        if self._closed or conn.lost:
            self.kill(conn)
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

    def kill(self, conn: HttpConn) -> None:
        """Close a connection now and give its slot back (idempotent)."""
        conn.lost = True
        transport = conn.transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        self.drop(conn)

    def drop(self, conn: HttpConn) -> None:
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

    def discard_idle(self, conn: HttpConn) -> None:
        """An idle connection was closed by the provider."""
        conn.in_idle = False
        try:
            self._idle.remove(conn)
        except ValueError:
            pass
        self.drop(conn)

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
            self.drop(conn)
        if idle and not self._closed:
            delay = max(idle[0].idle_since + self._idle_timeout - now, 0.05)
            self._sweep_handle = self._loop.call_later(delay, self._sweep)  # type: ignore[union-attr]
