"""HTTP messages of the web edge: `Request`, `Response`, `StreamResponse`; how a response is written
(`encode`), and the one place an error becomes an HTTP response (`error_response`).

Every refusal of the edge — a malformed request, a body too large, a rate limit, an unknown chain, a
refused WebSocket upgrade — is a `livechain.errors` class carrying its HTTP status, its JSON-RPC code and
its headers (Retry-After, Allow); `error_response` turns it into a JSON-RPC error body with that status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from livechain.errors import LivechainError
from livechain.jsonrpc.messages import error_body

REASONS = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    414: "URI Too Long",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_STATUS_LINES = {code: f"HTTP/1.1 {code} {reason}\r\n".encode() for code, reason in REASONS.items()}
_JSON_HEAD = b"content-type: application/json\r\ncontent-length: "
#: statuses after which the rest of the connection's byte stream cannot be trusted: close it
_CLOSING = frozenset({400, 408, 413, 414, 431})


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    peer: str
    keep_alive: bool = True
    upgrade: bool = False


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


@dataclass(slots=True)
class StreamResponse(Response):
    """A streamed body (Server-Sent Events): the head goes out without content-length, then the connection's
    worker awaits `stream(transport)`; the connection closes when it returns (losing it cancels the stream)."""

    stream: Callable[[asyncio.Transport], Awaitable[None]] | None = None


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


def error_response(exc: LivechainError, rid: Any = None, *, api: bool = False, **extra: Any) -> Response:
    """The HTTP response for an error of the edge: its status and headers, and its JSON-RPC error object —
    or, for the JSON API (`api=True`: `/api/*`, `/admin/*`), `{"error": message, **extra}`."""
    status = exc.http_status
    if api:
        body = orjson.dumps({"error": exc.message, **extra}, option=orjson.OPT_NON_STR_KEYS)
    else:
        body = error_body(exc, rid)
    return Response(status, body, headers=list(exc.headers), close=not api and status in _CLOSING)


def encode(response: Response, keep_alive: bool = True, head_only: bool = False) -> bytes:
    """The bytes of `response` on the wire (HTTP/1.1)."""
    code = response.status
    parts = [_STATUS_LINES.get(code) or f"HTTP/1.1 {code} Status\r\n".encode()]
    if isinstance(response, StreamResponse):
        parts.append(f"content-type: {response.content_type}\r\n".encode())
    elif code != 204:
        if response.content_type == "application/json":
            parts.append(_JSON_HEAD)
            parts.append(b"%d\r\n" % len(response.body))
        else:
            parts.append(f"content-type: {response.content_type}\r\ncontent-length: {len(response.body)}\r\n".encode())
    if response.headers:
        parts.append("".join([f"{name}: {value}\r\n" for name, value in response.headers]).encode("latin-1"))
    if response.close or not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if code != 204 and not head_only:
        parts.append(response.body)
    return b"".join(parts)


def refuse(transport: asyncio.Transport, exc: LivechainError) -> None:
    """Answer a connection that is being taken over (a refused WebSocket upgrade) with `exc`, and close it."""
    response = error_response(exc)
    response.close = True
    transport.write(encode(response))
    transport.close()
