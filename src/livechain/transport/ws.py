"""One supervised WebSocket connection to one provider: `UpstreamWs`.

Livechain subscribes on every provider and races their notifications, so this connection must stay up,
notice a dead socket fast, correlate replies with requests and hand each notification on with an arrival
timestamp. The layer above resubscribes in `on_connect`, which runs after every (re)connect.

Shape: `run()` loops connect → serve → backoff. While a socket is open it owns three named tasks:

- ``ws/{name}/read``: the read loop. Takes ``perf_counter_ns()`` as soon as `receive()` hands over a frame
  (before JSON decoding), resolves the future of a reply by wire id (``dict[int, Future]``, never
  polled), calls ``on_notification`` for an ``eth_subscription`` frame, answers PINGs (``autoping=False``
  so PONGs reach it and count as liveness), counts and ignores garbage.
- ``ws/{name}/ping``: liveness. Pings when nothing arrived for ``ping_interval``; when no frame at all
  arrived for ``liveness`` the socket is declared dead. aiohttp's heartbeat and close handshake are not
  used: a blackholed peer never answers them.
- ``ws/{name}/on_connect``: the layer's hook, raced against the socket's death.

Death (peer close, reset, liveness, `drop()`, cancellation) goes through `_lose()`, which is synchronous:
``connected`` turns False, every pending future fails with `TransportError`, new requests raise
`ConnectFailed`, ``on_disconnect(reason)`` is called — all before any I/O. Then `run()` cancels the read
task (aiohttp marks a socket whose `receive()` was cancelled as abnormally closed, so the following
`close()` closes the transport right after writing the close frame instead of waiting for the peer's
reply) and closes the socket. ``ws_close`` is also capped at `_CLOSE_TIMEOUT` for the one path where a
handshake would be awaited. No private aiohttp attribute is touched.

Errors are translated here, once: messages name the provider, never the URL (it carries API keys), and
aiohttp's exceptions (whose text can contain the URL) are neither chained nor logged.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter_ns
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import WSCloseCode, WSMsgType

from livechain.errors import AttemptTimeout, BadResponse, ConnectFailed, ProviderError, TransportError
from livechain.evm.errors import provider_error
from livechain.failsafe.backoff import Backoff
from livechain.jsonrpc.replies import NotJsonRpc, Reply, reply_of

__all__ = ["UpstreamWs"]

log = logging.getLogger("livechain.transport")

_CLOSE_TIMEOUT = 0.1  # seconds to wait for the peer's close frame, when anything waits at all
_WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_TIMEOUT)
_MIN_SLEEP_NS = 1_000_000
_SEND_ERRORS = (ConnectionError, aiohttp.ClientError, OSError)

_TEXT, _BINARY, _PING, _PONG = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG

Notification = Callable[[str, Any, int], None]


class _Link:
    """One open socket and what belongs to it."""

    __slots__ = ("done", "lost", "ready", "ready_at", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, done: asyncio.Future[str]) -> None:
        self.ws = ws
        self.done = done  # resolved with the reason when the socket is declared dead
        self.lost = False
        self.ready = False
        self.ready_at = 0


class UpstreamWs:
    """A WebSocket to one provider, reconnected forever by `run()`. Single event loop; not thread-safe.

    `request()` works as soon as the socket is open (so `on_connect` can resubscribe); `connected` is
    True only once `on_connect` has finished. `request`/`subscribe`/`unsubscribe` raise only
    ``livechain.errors`` provider errors (and ``CancelledError``).
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        on_notification: Notification,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        liveness: float = 10.0,
        ping_interval: float = 2.5,
        connect_timeout: float = 5.0,
        max_message_bytes: int = 64 * 1024 * 1024,
        backoff: Backoff | None = None,
        headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 — raises ValueError on a bad port
        except ValueError:
            raise ValueError(f"{name}: provider WebSocket URL is not a valid URL") from None
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"{name}: provider WebSocket URL must be ws:// or wss:// with a host")
        if not 0 < ping_interval < liveness:
            raise ValueError(f"{name}: need 0 < ping_interval < liveness")
        self.name = name
        self._url = url
        self._on_notification = on_notification
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._liveness_ns = int(liveness * 1e9)
        self._ping_ns = int(ping_interval * 1e9)
        self._connect_timeout = connect_timeout
        self._max_bytes = max_message_bytes
        self.backoff = backoff or Backoff(base=0.2, cap=30.0)
        self._headers = dict(headers) if headers else None
        self._session = session

        self._link: _Link | None = None
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._next_id = 1
        self._last_frame = 0
        self._running = False
        self._state = "stopped"
        # counters for stats
        self._connects = self._disconnects = self._connect_failures = 0
        self._messages = self._notifications = self._garbage = self._unmatched = self._callback_errors = 0
        self._last_reason: str | None = None
        self._last_error: str | None = None
        self._next_delay: float | None = None

    def __repr__(self) -> str:  # never the URL
        return f"<UpstreamWs {self.name} {self._state}>"

    # ------------------------------------------------------------------ public view

    @property
    def connected(self) -> bool:
        """Ready: the socket is open and `on_connect` has finished. (False *during* `on_connect`.)"""
        link = self._link
        return link is not None and link.ready and not link.lost

    @property
    def is_open(self) -> bool:
        """The socket is open and `request()` is accepted — already while `on_connect` runs, so code
        called from `on_connect` (resubscription) must check this, not `connected`."""
        link = self._link
        return link is not None and not link.lost

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since construction. ``disconnects`` counts opened sockets that ended (including
        those whose ``on_connect`` failed); failed connects are ``connect_failures``."""
        link = self._link
        age = None
        if link is not None and not link.lost:
            age = round((perf_counter_ns() - self._last_frame) / 1e9, 3)
        return {
            "state": self._state,
            "connects": self._connects,
            "disconnects": self._disconnects,
            "connect_failures": self._connect_failures,
            "messages": self._messages,
            "notifications": self._notifications,
            "garbage": self._garbage,
            "unmatched": self._unmatched,
            "callback_errors": self._callback_errors,
            "pending": len(self._pending),
            "last_frame_age_s": age,
            "last_disconnect_reason": self._last_reason,
            "last_error": self._last_error,
            "reconnect_delay_s": self._next_delay,
        }

    # ------------------------------------------------------------------ requests

    async def request(self, method: str, params: list | dict | None = None, *, timeout: float) -> Reply:
        """One JSON-RPC request on the socket. Returns the provider's reply, result or error.

        ConnectFailed: no open socket (raised at once). TransportError: the socket died before the
        reply. AttemptTimeout: no reply within `timeout` (the wire id is forgotten). BadResponse: the
        reply with our id is not JSON-RPC.
        """
        name = self.name
        link = self._link
        if link is None or link.lost:
            raise ConnectFailed(f"{name}: WebSocket not connected ({self._state})", provider=name)
        wid = self._next_id
        self._next_id = wid + 1
        data = orjson.dumps(
            {"jsonrpc": "2.0", "id": wid, "method": method, "params": [] if params is None else params}
        )
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        pending = self._pending
        pending[wid] = fut
        cm = asyncio.timeout(timeout)
        try:
            async with cm:
                try:
                    await link.ws.send_frame(data, _TEXT)
                except _SEND_ERRORS:
                    if not fut.done():
                        raise TransportError(
                            f"{name}: WebSocket failed while sending the request", provider=name
                        ) from None
                return await fut
        except TimeoutError:
            if cm.expired():
                raise AttemptTimeout(f"{name}: no reply within {timeout:g}s", provider=name) from None
            raise
        finally:
            pending.pop(wid, None)
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # mark retrieved: nobody may be awaiting it any more

    async def subscribe(self, params: list, *, timeout: float) -> str:
        """eth_subscribe; returns the provider subscription id. An error reply raises a ProviderError
        carrying the reply (ProviderRateLimited / MethodUnsupported when recognisable, else BadResponse)."""
        reply = await self.request("eth_subscribe", params, timeout=timeout)
        if reply.error is not None:
            raise self._reply_error("eth_subscribe", reply)
        if type(reply.result) is not str or not reply.result:
            raise BadResponse(
                f"{self.name}: eth_subscribe returned no subscription id", provider=self.name, reply=reply
            )
        return reply.result

    async def unsubscribe(self, sub_id: str, *, timeout: float) -> bool:
        """eth_unsubscribe; True when the provider confirmed. Raises like `request()` when the socket
        fails (the provider subscription then died with the socket anyway)."""
        reply = await self.request("eth_unsubscribe", [sub_id], timeout=timeout)
        return reply.error is None and reply.result is True

    def _reply_error(self, method: str, reply: Reply) -> ProviderError:
        error = reply.error or {}
        known = provider_error(error, self.name, reply=reply, what=f"{method}: ")
        if known is not None:
            return known
        text = f"{self.name}: {method} failed: {error.get('code')} {str(error.get('message', ''))[:200]}"
        return BadResponse(text, provider=self.name, reply=reply)

    def drop(self, reason: str = "dropped") -> None:
        """Declare the current socket dead now; `run()` closes it and reconnects after a backoff."""
        link = self._link
        if link is not None:
            self._lose(link, reason)

    # ------------------------------------------------------------------ supervision

    async def run(self) -> None:
        """Connect, serve, and reconnect after a backoff — forever, until cancelled."""
        if self._running:
            raise RuntimeError(f"{self.name}: run() is already running")
        self._running = True
        session = self._session
        own = session is None
        if session is None:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        streak = 0  # consecutive failed connects
        try:
            while True:
                self._state = "connecting"
                try:
                    ws = await self._open(session)
                except ConnectFailed as exc:
                    streak += 1
                    self._connect_failures += 1
                    self._last_error = exc.message
                    self._last_reason = "connect_failed"
                    log.log(
                        logging.WARNING if streak == 1 else logging.DEBUG,
                        "provider WebSocket connect failed: %s",
                        exc.message,
                        extra={"provider": self.name, "failures": streak},
                    )
                    self._notify_disconnect("connect_failed")
                else:
                    streak = 0
                    await self._serve(ws)
                delay = self._next_delay = self.backoff.next()
                self._state = "backoff"
                log.log(
                    logging.INFO if streak <= 1 else logging.DEBUG,
                    "provider WebSocket reconnecting in %.3fs",
                    delay,
                    extra={"provider": self.name, "delay_s": round(delay, 3)},
                )
                await asyncio.sleep(delay)
        finally:
            self._state = "stopped"
            self._running = False
            if own:
                await session.close()

    async def _open(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        """The WebSocket handshake, every failure translated into ConnectFailed naming only the provider."""
        name = self.name
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await session.ws_connect(
                    self._url,
                    autoping=False,
                    heartbeat=None,
                    compress=0,
                    max_msg_size=self._max_bytes,
                    headers=self._headers,
                    timeout=_WS_TIMEOUT,
                    decode_text=False,
                )
        except TimeoutError:
            what = f"timed out after {self._connect_timeout:g}s"
        except aiohttp.ClientResponseError as exc:  # WSServerHandshakeError included
            what = f"upgrade rejected (HTTP {exc.status})"
        except aiohttp.ClientConnectorCertificateError:
            what = "TLS certificate verification failed"
        except (aiohttp.ClientSSLError, ssl.SSLError):
            what = "TLS handshake failed"
        except aiohttp.ClientConnectorDNSError:
            what = "DNS lookup failed"
        except aiohttp.ClientConnectorError as exc:
            what = _describe_os_error(exc.os_error)
        except (aiohttp.ClientError, OSError, ValueError) as exc:  # text may name the URL: type only
            what = f"failed ({_errname(exc)})"
        raise ConnectFailed(f"{name}: WebSocket connect {what}", provider=name)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Own one open socket until it is declared dead (or run() is cancelled), then close it."""
        loop = asyncio.get_running_loop()
        link = self._link = _Link(ws, loop.create_future())
        self._last_frame = perf_counter_ns()
        self._connects += 1
        prefix = f"ws/{self.name}"
        tasks = [
            loop.create_task(self._read(link), name=f"{prefix}/read"),
            loop.create_task(self._watch(link), name=f"{prefix}/ping"),
        ]
        try:
            if self._on_connect is not None:
                hook = loop.create_task(self._on_connect(), name=f"{prefix}/on_connect")  # type: ignore[arg-type]
                tasks.append(hook)
                await asyncio.wait((hook, link.done), return_when=asyncio.FIRST_COMPLETED)
                if hook.done() and not link.lost and (hook.cancelled() or hook.exception() is not None):
                    exc = None if hook.cancelled() else hook.exception()
                    if exc is None:
                        detail = "cancelled"
                    else:
                        detail = exc.message if isinstance(exc, ProviderError) else type(exc).__name__
                    self._last_error = f"{self.name}: on_connect failed: {detail}"
                    log.warning(
                        "provider WebSocket on_connect failed: %s", detail, extra={"provider": self.name}
                    )
                    self._lose(link, "on_connect_failed")
            if not link.lost:
                link.ready = True
                link.ready_at = perf_counter_ns()
                self._state = "ready"
                # connected and subscribed: the provider is healthy again, whatever happened before (a
                # flapping load balancer must not leave a healthy provider waiting out a long backoff)
                self.backoff.reset()
                log.info("provider WebSocket connected", extra={"provider": self.name})
            await link.done
        finally:
            self._lose(link, "stopped")
            for task in tasks:
                task.cancel()
            try:
                await asyncio.wait(tasks)
                for task in tasks:
                    if not task.cancelled():
                        task.exception()  # retrieved; the loops catch their own errors
            finally:
                try:
                    await ws.close()
                except Exception:  # closing a dead socket: nothing left to learn
                    pass
                if self._link is link:
                    self._link = None

    def _lose(self, link: _Link, reason: str) -> None:
        """Declare `link` dead now (idempotent): not connected, pending requests fail, notify."""
        if link.lost:
            return
        link.lost = True
        name = self.name
        self._disconnects += 1
        self._last_reason = reason
        uptime = (perf_counter_ns() - link.ready_at) / 1e9 if link.ready else 0.0
        pending = self._pending
        if pending:
            futures = list(pending.values())
            pending.clear()
            for fut in futures:
                if not fut.done():
                    fut.set_exception(
                        TransportError(f"{name}: WebSocket lost ({reason}) before the reply", provider=name)
                    )
        if reason != "stopped" or link.ready:
            log.log(
                logging.INFO if reason == "stopped" else logging.WARNING,
                "provider WebSocket disconnected: %s",
                reason,
                extra={"provider": name, "reason": reason, "uptime_s": round(uptime, 3)},
            )
        self._notify_disconnect(reason)
        if not link.done.done():
            link.done.set_result(reason)

    def _notify_disconnect(self, reason: str) -> None:
        if self._on_disconnect is None:
            return
        try:
            self._on_disconnect(reason)
        except Exception:
            self._callback_errors += 1
            log.exception("on_disconnect callback failed", extra={"provider": self.name})

    # ------------------------------------------------------------------ the connection's tasks

    async def _read(self, link: _Link) -> None:
        ws = link.ws
        receive = ws.receive
        on_frame = self._on_frame
        try:
            while True:
                msg = await receive()
                t = perf_counter_ns()
                self._last_frame = t
                kind = msg.type
                if kind is _TEXT or kind is _BINARY:
                    self._messages += 1
                    on_frame(msg.data, t)
                elif kind is _PING:
                    await ws.pong(msg.data)
                elif kind is not _PONG:  # CLOSE, CLOSING, CLOSED, ERROR: the socket is gone
                    self._lose(link, _reason(ws, msg))
                    return
        except _SEND_ERRORS:  # answering a PING on a socket that just died
            self._lose(link, "reset")
        except Exception:  # a bug here must not leave a socket that reads nothing
            log.exception("provider WebSocket read loop failed", extra={"provider": self.name})
            self._lose(link, "error")

    async def _watch(self, link: _Link) -> None:
        """Ping a quiet socket; declare it dead when no frame arrived for `liveness`."""
        live, every = self._liveness_ns, self._ping_ns
        last_ping = perf_counter_ns()
        try:
            while not link.lost:
                now = perf_counter_ns()
                last = self._last_frame
                age = now - last
                if age >= live:
                    self._lose(link, "liveness")
                    return
                if age >= every and now - last_ping >= every:
                    last_ping = now
                    try:
                        async with asyncio.timeout((live - age) / 1e9):
                            await link.ws.ping()
                    except TimeoutError:
                        pass  # a send blocked by a full buffer: the liveness check comes next
                    except _SEND_ERRORS:
                        self._lose(link, "reset")
                        return
                    continue
                wake = min(last + live, max(last, last_ping) + every)
                await asyncio.sleep(max(wake - now, _MIN_SLEEP_NS) / 1e9)
        except Exception:
            log.exception("provider WebSocket liveness check failed", extra={"provider": self.name})
            self._lose(link, "error")

    def _on_frame(self, data: bytes, t: int) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._garbage += 1
            return
        if type(obj) is dict:
            if obj.get("method") == "eth_subscription":  # the hot path: checked first
                params = obj.get("params")
                if type(params) is dict and "subscription" in params:
                    self._notifications += 1
                    try:
                        self._on_notification(params["subscription"], params.get("result"), t)
                    except Exception:
                        self._callback_errors += 1
                        log.exception("on_notification callback failed", extra={"provider": self.name})
                    return
            elif "id" in obj:
                self._settle(obj["id"], data, obj)
                return
        elif type(obj) is list and obj:  # a batch of replies
            for item in obj:
                if type(item) is dict and "id" in item:
                    self._settle(item["id"], None, item)
                else:
                    self._garbage += 1
            return
        self._garbage += 1

    def _settle(self, wid: Any, body: bytes | None, obj: dict) -> None:
        fut = self._pending.pop(wid, None) if type(wid) is int else None
        if fut is None or fut.done():
            self._unmatched += 1  # a reply after its timeout, or an id we never sent
            return
        try:
            fut.set_result(reply_of(obj, body))
        except NotJsonRpc:
            fut.set_exception(BadResponse(f"{self.name}: reply is not JSON-RPC", provider=self.name))


def _reason(ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage) -> str:
    if msg.type is WSMsgType.ERROR:
        code = getattr(msg.data, "code", None)
        return "too_big" if code == WSCloseCode.MESSAGE_TOO_BIG else "error"
    return "reset" if ws.close_code == WSCloseCode.ABNORMAL_CLOSURE else "closed"


def _errname(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return errno.errorcode[code]
    return type(exc).__name__


def _describe_os_error(exc: OSError) -> str:
    """A host-free description (an OSError's own text may contain the address or hostname)."""
    if isinstance(exc, socket.gaierror):
        return "failed (DNS lookup failed)"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    return f"failed ({_errname(exc)})"
