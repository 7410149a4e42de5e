"""`FaultProxy`: the listener, the set of live connections and the run-time fault switch.

The proxy owns every task it starts (upstream connects, listener re-binds); `stop()` cancels and
awaits them. `set()` is synchronous and takes effect before it returns: the listening socket is
closed for `refuse` (connect() then gets ECONNREFUSED) and re-bound on the same port, already
listening, when the fault leaves `refuse`; live connections are told about the new fault at once.

Besides its public API, `FaultProxy` implements `ConnectionOwner` (connection.py): the few public members
its connections use (`adopt`, `release`, `mode_for_connection`, `fault_for_request`, `delay_s`, `spawn`,
`counters`, `target_host`, `target_port`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from livechain.faults.connection import Connection, Counters
from livechain.faults.faults import REQUEST_MODES, Fault

__all__ = ["FaultProxy"]

log = logging.getLogger(__name__)


class FaultProxy:
    """A byte-level TCP proxy in front of one target whose fault can be changed at run time."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        name: str = "proxy",
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = listen_host
        self.port = listen_port
        self.name = name
        self._fault = Fault()
        self._rng = random.Random()
        self.counters = Counters()  # written by the connections; read through `stats`
        self._conns: set[Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._lsock: socket.socket | None = None
        self._listening = False
        self._generation = 0  # bumped at every listener open/close, so a late re-bind knows it is stale
        self._started = self._stopped = False
        self._seq = 0

    def __repr__(self) -> str:  # never shows the target: provider addresses may carry secrets
        return f"<FaultProxy {self.name} :{self.port} {self._fault.mode}>"

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and listen; afterwards `.port` is the real listening port."""
        if self._started:
            raise RuntimeError(f"fault proxy {self.name} already started")
        self._started = True
        sock = self._bind()
        self.port = sock.getsockname()[1]
        self._lsock, self._listening = sock, True
        try:
            self._server = await asyncio.get_running_loop().create_server(self._new_connection, sock=sock)
        except BaseException:
            self._close_listener()
            raise
        if not self._wants_listener(self._fault):
            self._close_listener()

    async def stop(self) -> None:
        """Close the listener and every connection, cancel every task. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        server = self._server
        self._close_listener()
        for conn in list(self._conns):
            conn.abort(rst=False)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        await asyncio.sleep(0)  # let the aborted transports run their connection_lost

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # ---- the fault switch ----------------------------------------------------------------------
    @property
    def fault(self) -> Fault:
        return self._fault

    def set(self, fault: Fault) -> None:
        """Switch to `fault` now, for new connections and (where it makes sense) live ones.

        Raises OSError, leaving the old fault in place, if the port cannot be re-bound when leaving
        `refuse` (another process took it).
        """
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        old = self._fault
        live = self._started and not self._stopped
        if live and self._wants_listener(fault) and not self._listening:
            self._open_listener()
        self._fault = fault
        if live and not self._wants_listener(fault) and self._listening:
            self._close_listener()
        if (fault.mode, fault.probability) != (old.mode, old.probability):
            for conn in list(self._conns):
                conn.apply_mode(self._draw_mode(fault))

    def clear(self) -> None:
        self.set(Fault())

    def drop_connections(self) -> int:
        """Abort (RST) every live proxied connection now; returns how many there were."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort(rst=True)
        return len(conns)

    @property
    def lies(self) -> Counter[str]:
        """Lies told since start, per lie kind (`Fault.lie`): JSON-RPC replies mode `lie` changed, each
        item of a batch counted. The live counter (read it, don't write it)."""
        return self.counters.lies

    @property
    def stats(self) -> dict[str, int | bool]:
        """Counters since start: bytes_up = bytes read from clients, bytes_down = bytes delivered to
        clients, faults_applied = connections/requests/chunks a fault acted on (for `lie`: HTTP
        responses rewritten), lies_told = JSON-RPC replies rewritten (`lies` has them per kind)."""
        c = self.counters
        return {
            "connections_total": c.connections_total,
            "connections_open": len(self._conns),
            "bytes_up": c.bytes_up,
            "bytes_down": c.bytes_down,
            "faults_applied": c.faults_applied,
            "lies_told": c.lies.total(),
            "listening": self._listening,
        }

    # ---- ConnectionOwner: used by Connection and its HttpInjector ------------------------------
    def adopt(self, conn: Connection) -> None:
        self._conns.add(conn)
        self.counters.connections_total += 1

    def release(self, conn: Connection) -> None:
        self._conns.discard(conn)

    def mode_for_connection(self) -> str:
        return self._draw_mode(self._fault)

    def fault_for_request(self) -> Fault | None:
        fault = self._fault
        return fault if fault.mode in REQUEST_MODES and self._draw(fault.probability) else None

    def delay_s(self) -> float:
        return self._fault.delay_s(self._rng.uniform)

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"faults/{self.name}/{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _draw(self, probability: float) -> bool:
        return probability >= 1.0 or (probability > 0.0 and self._rng.random() < probability)

    def _draw_mode(self, fault: Fault) -> str:
        """The mode one connection gets: HTTP modes and `lie` draw per request, the others per connection."""
        if fault.mode in REQUEST_MODES or self._draw(fault.probability):
            return fault.mode
        return "none"

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("fault proxy task %s failed", task.get_name(), exc_info=task.exception())

    # ---- listener --------------------------------------------------------------------------------
    def _new_connection(self) -> Connection:
        self._seq += 1
        return Connection(self, self._seq)

    @staticmethod
    def _wants_listener(fault: Fault) -> bool:
        return not (fault.mode == "refuse" and fault.probability >= 1.0)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open_listener(self) -> None:
        sock = self._bind()  # listening in the kernel from here: connect() succeeds at once
        self._generation += 1
        self._lsock, self._listening = sock, True
        self.spawn(self._serve(sock, self._generation), "listen")

    async def _serve(self, sock: socket.socket, generation: int) -> None:
        try:
            server = await asyncio.get_running_loop().create_server(self._new_connection, sock=sock)
        except (OSError, ValueError):
            sock.close()  # closed by a `refuse` that came first
            return
        if generation == self._generation and self._listening:
            self._server = server
        else:
            server.close()

    def _close_listener(self) -> None:
        self._generation += 1
        self._listening = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
        sock, self._lsock = self._lsock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
