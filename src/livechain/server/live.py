"""The dashboard's live push: `GET /api/live?chain=&since=` — Server-Sent Events, one `tick` about every 200 ms.

Why SSE and not a WebSocket: the page only *receives* (controls are ordinary requests), and EventSource
gives reconnection with `Last-Event-ID` for free. One broadcaster task builds each tick ONCE for every
client, off the request path: the events published since the last tick (at most 200; `skipped` says how many
were left out), the `/api/chains` overview, the fields of the plugged-in extras (the demo's simulator runs),
and once a second each watched chain's leaderboard. JSON fragments are serialized once and spliced per
chain, then written to every client's transport. A client whose unsent bytes exceed `buffer_limit` is
dropped (it reconnects and catches up from its last event id) — a slow dashboard never slows the proxy or
the other dashboards.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson

from livechain.chains.registry import ChainRegistry
from livechain.errors import ShuttingDown, Unavailable
from livechain.events import EventBus
from livechain.server.api import Api
from livechain.server.messages import Request, Response, StreamResponse, error_response

log = logging.getLogger("livechain.dashboard")


class _Client:
    __slots__ = ("chain", "done", "peer", "transport")

    def __init__(self, transport: asyncio.Transport, chain: str | None, peer: str) -> None:
        self.transport = transport
        self.chain = chain
        self.peer = peer
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class LiveHub:
    """The SSE broadcaster. One tick = one shared batch, written to every client."""

    tick = 0.2
    leaderboard_every = 1.0
    max_events = 200
    buffer_limit = 512 * 1024  # unsent bytes per client before it is dropped
    max_clients = 256

    def __init__(
        self,
        registry: ChainRegistry,
        events: EventBus,
        api: Api,
        extras: Sequence[Callable[[], dict[str, Any]]] = (),
    ) -> None:
        self.registry = registry
        self.events = events
        self.api = api
        self.extras = tuple(extras)
        self.clients: set[_Client] = set()
        self.seq: int | None = None  # last event seq included in a tick
        self.ticks = 0
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False
        self._leaderboards: dict[str, bytes] = {}
        self._leaderboard_at = 0.0
        self._overview = b"null"

    # ------------------------------------------------------------------ connecting

    def open(self, request: Request) -> Response:
        if self._closed:
            return error_response(ShuttingDown(), api=True)
        if len(self.clients) >= self.max_clients:
            return error_response(Unavailable(f"too many live dashboards (limit {self.max_clients})"), api=True)
        query = parse_qs(request.query)
        chain_name = (query.get("chain") or [""])[0]
        chain = self.registry.resolve(chain_name) if chain_name else None
        since_raw = request.headers.get("last-event-id") or (query.get("since") or [""])[0]
        since = int(since_raw) if since_raw.isdigit() else None
        return StreamResponse(
            200, b"", "text/event-stream; charset=utf-8",
            [("cache-control", "no-cache, no-transform"), ("x-accel-buffering", "no")], close=True,
            stream=functools.partial(self._stream, chain.name if chain else None, since, request.peer),
        )

    async def _stream(self, chain: str | None, since: int | None, peer: str, transport: asyncio.Transport) -> None:
        if self._task is None:
            self.seq = self.events.seq
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dashboard/live")
        client = _Client(transport, chain, peer)
        if self._overview == b"null":
            self._overview = self._dump(self.api.overview())
        board = b""
        if chain is not None:
            board = self._leaderboards.get(chain) or self.api.leaderboard(chain)
        if transport.is_closing() or self._closed:
            return
        # from here on no await until the client is registered: the next tick continues exactly after `seq`
        if not self.clients:  # idle hub: nobody is owed the events since the last tick, start from now
            self.seq = self.events.seq
        seq = self.seq or 0
        if since is None:
            since = max(0, seq - self.max_events)
        events = [e for e in self.events.since(min(since, seq), self.max_events) if e["seq"] <= seq]
        hello = self._message(seq, self._head(seq, events, 0), b',"leaderboard":' + board if board else b"")
        transport.write(b"retry: 2000\n\n" + hello)
        self.clients.add(client)
        self._wake.set()
        try:
            await client.done
        finally:
            self.clients.discard(client)

    # ------------------------------------------------------------------ broadcasting

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._closed:
            if not self.clients:
                self._wake.clear()
                await self._wake.wait()
                next_at = loop.time()
                continue
            next_at += self.tick
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a busy loop): skip the missed ticks rather than bunching them
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)
            try:
                await self._tick()
            except Exception:
                log.exception("dashboard tick failed")

    async def _tick(self) -> None:
        self._overview = self._dump(self.api.overview())
        now = time.monotonic()
        fresh = now - self._leaderboard_at >= self.leaderboard_every
        if fresh:
            self._leaderboard_at = now
            watched = sorted({c.chain for c in self.clients if c.chain is not None})
            self._leaderboards = {name: self.api.leaderboard(name) for name in watched}
        # the events taken are exactly those after the previous tick's seq
        bus = self.events
        seq = self.seq if self.seq is not None else bus.seq
        events = bus.since(seq, self.max_events)
        skipped = max(0, bus.seq - seq - len(events))
        self.seq = bus.seq
        self.ticks += 1
        head = self._head(self.seq, events, skipped)
        per_chain: dict[str | None, bytes] = {None: self._message(self.seq, head, b"")}
        for client in list(self.clients):
            message = per_chain.get(client.chain)
            if message is None:
                board = self._leaderboards.get(client.chain) if fresh else None
                extra = b',"leaderboard":' + board if board else b""
                message = per_chain[client.chain] = self._message(self.seq, head, extra)
            self._send(client, message)

    def _head(self, seq: int, events: list, skipped: int) -> bytes:
        head: dict[str, Any] = {}
        for extra in self.extras:
            head.update(extra())
        head.update(seq=seq, ts=round(time.time(), 3), skipped=skipped, events=events)
        return self._dump(head)

    @staticmethod
    def _dump(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)

    def _message(self, seq: int, head: bytes, extra: bytes) -> bytes:
        """One SSE message; `head` is a serialized object, the overview and `extra` are spliced into it."""
        return b"id: %d\nevent: tick\ndata: %s,\"overview\":%s%s}\n\n" % (seq, head[:-1], self._overview, extra)

    def _send(self, client: _Client, message: bytes) -> None:
        transport = client.transport
        if transport.is_closing():
            self._forget(client)
            return
        transport.write(message)
        if transport.get_write_buffer_size() > self.buffer_limit:
            self.dropped += 1
            log.warning("slow dashboard client dropped", extra={"peer": client.peer,
                                                                "buffered": transport.get_write_buffer_size()})
            transport.abort()
            self._forget(client)

    def _forget(self, client: _Client) -> None:
        self.clients.discard(client)
        if not client.done.done():
            client.done.set_result(None)

    async def close(self) -> None:
        self._closed = True
        for client in list(self.clients):
            self._forget(client)
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def stats(self) -> dict[str, int]:
        return {"clients": len(self.clients), "ticks": self.ticks, "dropped": self.dropped}
