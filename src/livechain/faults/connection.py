"""One proxied client connection: byte pipe, flow control and fault transitions.

`Connection` is the asyncio Protocol of an accepted client socket; `Upstream` is the Protocol of the
socket it opens to the target. Bytes client→provider go straight through; bytes provider→client go
through `send_down()` and the connection's `DelayLine` (latency ± jitter per chunk, order kept, never
cumulative). Reading pauses on the side whose peer cannot keep up (transport buffers or the delay line
above its high-water mark). EOF is passed on as a half-close; once both directions are done, or when
either side closes or resets, both sockets close (a provider reset becomes a client reset).

States: ``pipe`` (forwarding bytes; the upstream may still be connecting), ``inject`` (an
`HttpInjector` answers, forwards or lies about requests, see http_inject.py), ``reset_on_data`` (RST at the first client byte),
``frozen`` (blackhole: read and discard both ways, never answer, never close) and ``closed``.
``stalled`` is a flag on pipe/inject: client bytes still go upstream, nothing comes back.

What a connection needs from the proxy that accepted it is the `ConnectionOwner` protocol below
(`FaultProxy` implements it): the target address, the fault drawn for it, its delay, a task owner and the
shared `Counters`. Neither side touches the other's private members.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Protocol

from livechain.faults.delay import DelayLine
from livechain.faults.faults import REQUEST_MODES, Fault
from livechain.faults.http_inject import HttpInjector, looks_like_plain_http

__all__ = ["CLOSE", "EOF", "RESET", "Connection", "ConnectionOwner", "Counters", "rst_abort"]

EOF, CLOSE, RESET = object(), object(), object()  # markers queued behind data in the down path
PENDING_HIGH = 1 << 20  # client bytes buffered while the upstream connects before client reading pauses
_LINGER_RST = struct.pack("ii", 1, 0)


class Counters:
    """Traffic counters of one proxy, written by its connections (`FaultProxy.stats` reports them).

    `lies` counts the JSON-RPC replies mode `lie` changed, per lie kind (a batch counts each item).
    """

    __slots__ = ("bytes_down", "bytes_up", "connections_total", "faults_applied", "lies")

    def __init__(self) -> None:
        self.connections_total = self.bytes_up = self.bytes_down = self.faults_applied = 0
        self.lies: Counter[str] = Counter()


class ConnectionOwner(Protocol):
    """What a `Connection` (and its `HttpInjector`) needs from the proxy that accepted it."""

    @property
    def target_host(self) -> str: ...

    @property
    def target_port(self) -> int: ...

    @property
    def counters(self) -> Counters: ...

    def adopt(self, conn: Connection) -> None:
        """A new connection is live: track it (for `set()`, `drop_connections()`, `stop()`) and count it."""

    def release(self, conn: Connection) -> None:
        """The connection is closed: stop tracking it."""

    def mode_for_connection(self) -> str:
        """The current fault's mode drawn for one connection ("none" when the draw spares it)."""

    def fault_for_request(self) -> Fault | None:
        """The current fault if it is decided per request (an HTTP mode or `lie`) and the per-request
        draw hits, else None (forward untouched)."""

    def delay_s(self) -> float:
        """One draw of the provider→client delay of the current fault, in seconds."""

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        """Run `coro` as a task the owner keeps, names (`what`) and cancels at stop."""


def rst_abort(transport: asyncio.BaseTransport | None) -> None:
    """Abort a socket transport with a TCP RST (SO_LINGER 0), not a FIN."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except (OSError, ValueError):
            pass
    transport.abort()


class Upstream(asyncio.Protocol):
    """The provider side of a connection; reports everything to its `Connection`."""

    __slots__ = ("conn", "transport")
    transport: asyncio.Transport  # set in connection_made, before the Connection ever sees it

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn.upstream_made(self)

    def data_received(self, data: bytes) -> None:
        self.conn.upstream_data(data)

    def eof_received(self) -> bool:
        return self.conn.upstream_eof(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.upstream_lost(self, exc)

    def pause_writing(self) -> None:
        self.conn.block_client_reading("upstream_buffer", True)

    def resume_writing(self) -> None:
        self.conn.block_client_reading("upstream_buffer", False)


class Connection(asyncio.Protocol):
    """An accepted client connection and everything the proxy does to it."""

    def __init__(self, owner: ConnectionOwner, number: int) -> None:
        self.owner = owner
        self.number = number
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.upstream: Upstream | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.had_upstream = False
        self.injector: HttpInjector | None = None
        self.state = "pipe"
        self.stalled = False
        self.cut_next = False  # reset_mid_response: cut the next provider chunk, then RST
        self.pending_inject = False  # switch to the HTTP injector at the next client bytes
        self.is_http: bool | None = None  # plain HTTP (not an upgrade), sniffed from the first bytes
        self.sniff = b""
        self.pending_up: list[bytes] = []
        self.pending_up_size = 0
        self.eof_up_pending = False
        self.client_eof = False
        self.down_eof_sent = False
        self.delay = DelayLine(self._deliver, lambda on: self.block_upstream_reading("delay_line", on))
        self.up_read_block: set[str] = set()
        self.client_read_block: set[str] = set()

    # ---- client side (asyncio.Protocol) ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.owner.adopt(self)
        mode = self.owner.mode_for_connection()
        if mode in ("refuse", "reset", "blackhole", "silent", "stall"):
            self.owner.counters.faults_applied += 1
        if mode == "refuse":  # refuse with probability < 1: the listener stays open, this one is reset
            self.abort(rst=True)
        elif mode == "reset":
            self.state = "reset_on_data"
        elif mode in ("blackhole", "silent"):
            self.state = "frozen"
        elif mode in REQUEST_MODES:
            self.state = "inject"
            self.injector = HttpInjector(self)
        else:
            self.cut_next = mode == "reset_mid_response"
            if mode == "stall":
                self.stalled = True
                self.block_upstream_reading("stall", True)
            self.start_upstream()

    def data_received(self, data: bytes) -> None:
        self.owner.counters.bytes_up += len(data)
        state = self.state
        if state == "pipe":
            if self.is_http is None:
                self._sniff(data)
            if self.pending_inject:
                self.become_injector().feed(data)
            else:
                self.write_up(data)
        elif state == "inject":
            self.injector.feed(data)  # type: ignore[union-attr]
        elif state == "reset_on_data":
            self.owner.counters.faults_applied += 1
            self.abort(rst=True)
        # frozen: read and discard

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.state == "reset_on_data":
            return False
        if self.state == "inject":
            self.injector.client_eof()  # type: ignore[union-attr]
        elif self.state == "pipe":
            if self.upstream is not None:
                if self.upstream.transport.can_write_eof():
                    self.upstream.transport.write_eof()
            else:
                self.eof_up_pending = True
            if self.down_eof_sent:
                self.close()
        return True  # frozen connections stay open; the others half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self._cleanup(abort_upstream=exc is not None)

    def pause_writing(self) -> None:
        self.block_upstream_reading("client_buffer", True)

    def resume_writing(self) -> None:
        self.block_upstream_reading("client_buffer", False)

    # ---- upstream side ----------------------------------------------------------------------
    def start_upstream(self) -> None:
        if self.had_upstream and self.state == "pipe":
            return  # a pipe never reconnects; only the HTTP injector opens a fresh upstream
        if self.connect_task is None and self.upstream is None and self.state != "closed":
            self.connect_task = self.owner.spawn(self._connect(), f"connect#{self.number}")

    async def _connect(self) -> None:
        try:
            await self.loop.create_connection(
                lambda: Upstream(self), self.owner.target_host, self.owner.target_port
            )
        except OSError:
            if self.state not in ("closed", "frozen") and not self.stalled:
                self.abort(rst=True)  # an unreachable provider looks like a reset to the client
        finally:
            self.connect_task = None

    def upstream_made(self, upstream: Upstream) -> None:
        if self.state == "closed" or self.upstream is not None:
            upstream.transport.abort()
            return
        self.upstream = upstream
        self.had_upstream = True
        if self.pending_up:
            upstream.transport.write(b"".join(self.pending_up))
            self.pending_up.clear()
            self.pending_up_size = 0
        if self.eof_up_pending and upstream.transport.can_write_eof():
            upstream.transport.write_eof()
        self.block_client_reading("connecting", False)
        if self.up_read_block:
            upstream.transport.pause_reading()

    def write_up(self, data: bytes) -> None:
        up = self.upstream
        if up is not None and not up.transport.is_closing():
            up.transport.write(data)
            return
        self.pending_up.append(data)
        self.pending_up_size += len(data)
        if self.pending_up_size > PENDING_HIGH:
            self.block_client_reading("connecting", True)
        self.start_upstream()

    def upstream_data(self, data: bytes) -> None:
        if self.state == "inject":
            self.injector.upstream_data(data)  # type: ignore[union-attr]
        elif self.state == "pipe":
            self.send_down(data)
        # frozen: discard

    def upstream_eof(self, upstream: Upstream) -> bool:
        if upstream is not self.upstream or self.state == "frozen":
            return True
        if self.state == "inject":
            return False  # the injector reconnects on demand; let this one close
        self.send_down(EOF)
        return True

    def upstream_lost(self, upstream: Upstream, exc: Exception | None) -> None:
        if upstream is not self.upstream:
            return
        self.upstream = None
        if self.state in ("closed", "frozen") or self.stalled:
            return  # silent and stalled clients stay hanging
        if self.state == "inject":
            self.injector.upstream_lost()  # type: ignore[union-attr]
        else:
            self.send_down(CLOSE if exc is None else RESET)

    def drop_upstream(self) -> None:
        """Close the upstream gracefully (it said Connection: close); the injector reconnects on demand."""
        up, self.upstream = self.upstream, None
        if up is not None:
            up.transport.close()

    # ---- provider→client path ------------------------------------------------------------
    def finish_down(self) -> None:
        """Close the client connection once everything queued before now has been delivered."""
        self.send_down(CLOSE)

    def send_down(self, item: Any) -> None:
        if self.state in ("closed", "frozen") or self.stalled:
            return  # stalled: held forever (leaving stall aborts the connection)
        if self.cut_next and isinstance(item, bytes) and item:
            self.cut_next = False
            self.owner.counters.faults_applied += 1
            self._enqueue(item[: max(1, len(item) // 2)])
            self._enqueue(RESET)
            self.state = "cutting"  # drop everything after the cut
            self.block_upstream_reading("cut", True)
            return
        if self.state != "cutting":
            self._enqueue(item)

    def _enqueue(self, item: Any) -> None:
        self.delay.push(item, self.owner.delay_s())

    def _deliver(self, item: Any) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if isinstance(item, bytes):
            transport.write(item)
            self.owner.counters.bytes_down += len(item)
        elif item is EOF:
            self.down_eof_sent = True
            if self.client_eof or not transport.can_write_eof():
                self.close()
            else:
                transport.write_eof()
        elif item is CLOSE:
            self.close()
        elif item is RESET:
            self.abort(rst=True)

    # ---- flow control ------------------------------------------------------------------------
    def block_upstream_reading(self, reason: str, on: bool) -> None:
        blocked = bool(self.up_read_block)
        if on:
            self.up_read_block.add(reason)
        else:
            self.up_read_block.discard(reason)
        up = self.upstream.transport if self.upstream is not None else None
        if up is None or up.is_closing() or blocked == bool(self.up_read_block):
            return
        up.pause_reading() if self.up_read_block else up.resume_reading()

    def block_client_reading(self, reason: str, on: bool) -> None:
        blocked = bool(self.client_read_block)
        if on:
            self.client_read_block.add(reason)
        else:
            self.client_read_block.discard(reason)
        t = self.transport
        if t is None or t.is_closing() or blocked == bool(self.client_read_block):
            return
        t.pause_reading() if self.client_read_block else t.resume_reading()

    # ---- fault transitions -------------------------------------------------------------------
    def apply_mode(self, mode: str) -> None:
        """React to a new proxy fault; `mode` is already drawn against its probability."""
        if self.state == "closed":
            return
        frozen_as = "blackhole" if self.state == "frozen" else "stall" if self.stalled else None
        wants = "blackhole" if mode in ("blackhole", "silent") else "stall" if mode == "stall" else None
        if frozen_as is not None and frozen_as != wants:
            self.abort(rst=True)  # leaving blackhole/stall: these connections are lost
            return
        if mode in ("refuse", "reset"):
            self.owner.counters.faults_applied += 1
            self.abort(rst=True)
        elif wants == "blackhole" and self.state != "frozen":
            self.owner.counters.faults_applied += 1
            self._freeze()
        elif wants == "stall" and not self.stalled:
            self.owner.counters.faults_applied += 1
            if self.state == "reset_on_data":
                self.state = "pipe"
                self.start_upstream()
            self.stalled = True
            self.delay.clear()
            self.block_upstream_reading("stall", True)
        elif wants is None:
            if self.state == "reset_on_data":
                self.state = "pipe"
                self.start_upstream()
            self.cut_next = mode == "reset_mid_response" and self.state in ("pipe", "inject")
            # a pipe can switch to HTTP answers only between requests: before its first byte, or
            # (plain HTTP, non-pipelining clients) at the next bytes of a keep-alive connection
            fresh = self.is_http is None and not self.sniff
            sniffed_http = self.is_http is True or fresh
            self.pending_inject = mode in REQUEST_MODES and self.state == "pipe" and sniffed_http

    def _freeze(self) -> None:
        self.state = "frozen"
        self.injector = None
        self.pending_up.clear()
        self.delay.clear()
        self.up_read_block.clear()
        self.block_upstream_reading("stall", False)  # read and discard the provider's bytes
        self.client_read_block.discard("upstream_buffer")
        self.block_client_reading("connecting", False)

    def _sniff(self, data: bytes) -> None:
        self.sniff += data
        verdict = looks_like_plain_http(self.sniff)
        if verdict is not None:
            self.is_http = verdict
            self.sniff = b""

    def become_injector(self) -> HttpInjector:
        """Hand a plain-HTTP pipe (between requests) to an HTTP injector; the upstream is reused."""
        self.state = "inject"
        self.pending_inject = False
        self.injector = HttpInjector(self)
        return self.injector

    def become_pipe(self, first_bytes: bytes) -> None:
        """Turn an injector connection into a byte pipe (a forwarded WebSocket upgrade)."""
        self.state = "pipe"
        self.injector = None
        self.is_http = False
        self.write_up(first_bytes)

    # ---- closing -----------------------------------------------------------------------------
    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._cleanup(abort_upstream=False)

    def abort(self, *, rst: bool) -> None:
        if rst:
            rst_abort(self.transport)
        elif self.transport is not None:
            self.transport.abort()
        self._cleanup(abort_upstream=True)

    def _cleanup(self, *, abort_upstream: bool) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        self.injector = None
        self.delay.clear()
        self.pending_up.clear()
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        up, self.upstream = self.upstream, None
        if up is not None:
            rst_abort(up.transport) if abort_upstream else up.transport.close()
        self.owner.release(self)
