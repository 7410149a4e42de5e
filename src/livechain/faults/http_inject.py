"""HTTP-aware mode of a connection: answer each request with an injected status — or forward it.

Used for the `http_status`, `garbage` and `lie` faults. Requests are parsed with httptools (keep-alive,
pipelining, Content-Length and chunked bodies). For each complete request the proxy's current fault
decides, with its probability (drawn by the connection's owner, `ConnectionOwner.fault_for_request()`):
inject (answer here, nothing goes upstream) or forward (the request is re-serialized with a
Content-Length, sent on the connection's upstream and the parsed response is relayed). Responses leave in
request order, always re-framed with a Content-Length (a chunked provider response is de-chunked).
A WebSocket upgrade that is forwarded as the first request turns the connection into a plain byte pipe;
a later upgrade that is not injected aborts the connection. HEAD requests and read-until-close responses
are not supported when forwarding (JSON-RPC uses neither).

A request on which `lie` is drawn is forwarded with a `LiePlan` (lies.py) when it asks a method the lie
rewrites; it goes upstream without Accept-Encoding, and its 2xx response body, if not content-encoded, is
rewritten before it is relayed. The lies told are counted in `Counters.lies`. A WebSocket upgrade is
forwarded and then piped, never rewritten: lies are HTTP-only.
"""

from __future__ import annotations

from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING

import httptools

from livechain.faults.faults import Fault
from livechain.faults.lies import LiePlan

if TYPE_CHECKING:
    from livechain.faults.connection import Connection

__all__ = ["HttpInjector", "build_injected", "looks_like_plain_http"]

_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"TRACE ")
_DROP = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"expect"})
_DROP_LYING = _DROP | {b"accept-encoding"}  # a request that may be lied about asks for a plain body
GARBAGE_BODY = b"<html>oops"
_BAD_BODY = b'{"error":"fault proxy: bad request"}'
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n%s" % (len(_BAD_BODY), _BAD_BODY)
)


def looks_like_plain_http(head: bytes) -> bool | None:
    """True for an HTTP request that is not an Upgrade, False for anything else, None if undecided yet."""
    if not head.startswith(_METHODS):
        return None if any(m.startswith(head) for m in _METHODS) else False
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return None if len(head) < 65536 else False
    return b"\r\nupgrade:" not in head[: end + 2].lower()


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Injected"


def build_injected(fault: Fault, keep_alive: bool) -> bytes:
    """The complete response the HTTP modes send instead of asking the provider."""
    if fault.mode == "garbage":
        status, ctype, body = 200, b"text/html", GARBAGE_BODY
    else:
        status, ctype = fault.status, b"application/json"
        body = b'{"error":"injected %d"}' % status
    head = [
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        % (status, _phrase(status), ctype, len(body))
    ]
    head.append(b"Connection: keep-alive\r\n" if keep_alive else b"Connection: close\r\n")
    if fault.retry_after is not None:
        head.append(b"Retry-After: %s\r\n" % format(fault.retry_after, "g").encode())
    head.append(b"\r\n")
    return b"".join(head) + body


def _headers(headers: list[tuple[bytes, bytes]], drop: frozenset[bytes] = _DROP) -> bytes:
    return b"".join(n + b": " + v + b"\r\n" for n, v in headers if n.lower() not in drop)


def _encoded(headers: list[tuple[bytes, bytes]]) -> bool:
    """True when a response body carries a Content-Encoding other than identity (it cannot be read)."""
    return any(n.lower() == b"content-encoding" and v.strip().lower() != b"identity" for n, v in headers)


class _Slot:
    """One response owed to the client, in request order; `data` is None until it is known.

    `plan` is the lie to tell about the forwarded request's response (mode `lie`), else None.
    """

    __slots__ = ("data", "forwarded", "keep", "plan")

    def __init__(self, data: bytes | None, keep: bool, forwarded: bool, plan: LiePlan | None = None) -> None:
        self.data, self.keep, self.forwarded, self.plan = data, keep, forwarded, plan


class _Message:
    """One parsed request or response."""

    __slots__ = ("body", "headers", "reason", "url")

    def __init__(self) -> None:
        self.url = self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []


class _Parser:
    """httptools callback target that turns a byte stream into complete `_Message`s."""

    def __init__(self, response: bool) -> None:
        self.response = response
        self.parser = (httptools.HttpResponseParser if response else httptools.HttpRequestParser)(self)
        self.msg = _Message()
        self.done: list[tuple[_Message, bytes | int, bool]] = []  # (message, method or status, keep-alive)

    def on_message_begin(self) -> None:
        self.msg = _Message()

    def on_url(self, url: bytes) -> None:
        self.msg.url += url

    def on_status(self, reason: bytes) -> None:
        self.msg.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.msg.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.msg.body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        key = p.get_status_code() if self.response else p.get_method()
        self.done.append((self.msg, key, p.should_keep_alive()))


class HttpInjector:
    """Answers (or forwards) the HTTP requests of one client connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.requests = _Parser(response=False)
        self.responses: _Parser | None = None  # for the current upstream; None until it sends
        self.slots: deque[_Slot] = deque()
        self.raw: bytearray | None = bytearray()  # bytes before the first request, for an upgrade
        self.stopped = False  # no more requests will be read (close pending, or handed over)
        self.close_when_flushed = False

    def feed(self, data: bytes) -> None:
        if self.stopped:
            return
        if self.raw is not None:
            self.raw += data
        upgrade = bad = False
        try:
            self.requests.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            upgrade = True
        except httptools.HttpParserError:
            bad = True
        done, self.requests.done = self.requests.done, []
        for i, (msg, method, keep) in enumerate(done):
            if self.stopped:
                break
            self._handle(msg, method, keep, upgrade and i == len(done) - 1)
        if bad and not self.stopped:
            self.slots.append(_Slot(_BAD_REQUEST, False, False))
            self.stopped = True
        self._flush()

    def _handle(self, msg: _Message, method: bytes, keep: bool, upgrade: bool) -> None:
        owner = self.conn.owner
        fault = owner.fault_for_request()
        lie: Fault | None = None
        if fault is not None and fault.mode == "lie":  # forwarded; only the answer is rewritten
            lie, fault = fault, None
        first, self.raw = self.raw, None
        if fault is not None:
            owner.counters.faults_applied += 1
            keep = keep and not upgrade
            self.slots.append(_Slot(build_injected(fault, keep), keep, False))
        elif upgrade:  # a WebSocket is never lied to: it becomes a byte pipe
            self.stopped = True
            if first is not None and not self.slots:
                self.conn.become_pipe(bytes(first))
            else:
                self.conn.abort(rst=True)
            return
        else:
            body = b"".join(msg.body)
            plan = LiePlan.for_request(lie, body) if lie is not None else None
            self.slots.append(_Slot(None, keep, True, plan))
            length = (
                b"Content-Length: %d\r\n" % len(body)
                if body or method in (b"POST", b"PUT", b"PATCH")
                else b""
            )
            headers = _headers(msg.headers, _DROP if plan is None else _DROP_LYING)
            self.conn.write_up(
                b"%s %s HTTP/1.1\r\n%s%sConnection: keep-alive\r\n\r\n%s"
                % (method, msg.url, headers, length, body)
            )
        if not keep:
            self.stopped = True

    def _flush(self) -> None:
        slots = self.slots
        while slots and slots[0].data is not None:
            slot = slots.popleft()
            self.conn.send_down(slot.data)
            if not slot.keep:
                slots.clear()
                self.stopped = True
                self.close_when_flushed = True
        if not slots and self.close_when_flushed:
            self.close_when_flushed = False
            self.conn.finish_down()

    def client_eof(self) -> None:
        self.stopped = True
        self.close_when_flushed = True
        self._flush()

    # ---- upstream side -----------------------------------------------------------------------
    def upstream_data(self, data: bytes) -> None:
        if self.responses is None:
            self.responses = _Parser(response=True)
        try:
            self.responses.parser.feed_data(data)
        except httptools.HttpParserError:
            self.conn.abort(rst=True)
            return
        done, self.responses.done = self.responses.done, []
        for msg, status, upstream_keep in done:
            if 100 <= status < 200:
                continue  # interim responses are not relayed
            slot = next((s for s in self.slots if s.forwarded and s.data is None), None)
            if slot is None:  # an answer nobody asked for: the stream is out of step
                self.conn.abort(rst=True)
                return
            reason = msg.reason or _phrase(status)
            body = b"".join(msg.body)
            if slot.plan is not None and 200 <= status < 300 and not _encoded(msg.headers):
                body = self._lie(slot.plan, body)
            slot.data = b"HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\nConnection: %s\r\n\r\n%s" % (
                status,
                reason,
                _headers(msg.headers),
                len(body),
                b"keep-alive" if slot.keep else b"close",
                body,
            )
            if not upstream_keep:
                self.responses = None
                self.conn.drop_upstream()
        self._flush()

    def _lie(self, plan: LiePlan, body: bytes) -> bytes:
        """The response body with `plan`'s lie told (counted), or `body` itself when nothing changed."""
        lied = plan.rewrite(body)
        if lied is None:
            return body
        counters = self.conn.owner.counters
        counters.faults_applied += 1
        counters.lies[plan.lie] += lied[1]
        return lied[0]

    def upstream_lost(self) -> None:
        self.responses = None
        if any(s.forwarded and s.data is None for s in self.slots):
            self.conn.abort(rst=True)  # the provider died with a request outstanding
