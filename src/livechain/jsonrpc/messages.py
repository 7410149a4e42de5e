"""Parse client JSON-RPC 2.0 bodies exactly as the spec says, and build responses.

Ids are preserved exactly. orjson turns integers beyond 64 bits into floats, so a body with a float id is
re-read with the stdlib parser (arbitrary-precision ints); requests whose id is such an integer or a float,
and those with id null, go upstream with a wire id of Livechain's own and their reply is rebuilt with the
client's id (`Request.exact` is False / `needs_wire_id`).
Everything else is forwarded as the client's own bytes (single requests) or its own parsed values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from livechain.errors import InvalidParams, InvalidRequest, LivechainError, ParseError

#: marks "this request has no id member": a notification
NO_ID: Any = object()


@dataclass(slots=True)
class Request:
    method: str
    params: Any  # list | dict | None (absent)
    id: Any  # str | int | float | None, or NO_ID for a notification
    #: the client's bytes, forwardable upstream unchanged (single, exact-id requests only)
    raw: bytes | None = None
    #: True when the id survives an orjson round trip unchanged, so the provider's echo can be trusted
    exact: bool = True

    @property
    def notification(self) -> bool:
        return self.id is NO_ID

    @property
    def reply_id(self) -> Any:
        """The id to put on an error reply: the request's id, or null for a notification."""
        return None if self.id is NO_ID else self.id

    def upstream_body(self, wire_id: int | None = None) -> bytes:
        """Bytes to send a provider. With `wire_id`, the provider sees that id instead of the client's."""
        if wire_id is None:
            if self.raw is not None:
                return self.raw
            if self.exact and self.id is not None and self.id is not NO_ID:
                wire = {"jsonrpc": "2.0", "id": self.id, "method": self.method}
                if self.params is not None:
                    wire["params"] = self.params
                return _wire_bytes(wire)
            wire_id = 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": wire_id, "method": self.method}
        if self.params is not None:
            msg["params"] = self.params
        return _wire_bytes(msg)

    @property
    def needs_wire_id(self) -> bool:
        """True when the client's id must not go upstream (null, or not exact after orjson)."""
        return self.id is None or not self.exact


@dataclass(slots=True)
class Invalid:
    """A batch item (or single message) that is not a valid request: answered with `error`."""

    id: Any
    error: LivechainError


def _wire_bytes(msg: dict) -> bytes:
    """`dumps()`, not orjson.dumps: params may hold integers beyond 64 bits or nesting deeper than orjson
    writes. Params too deep even for the stdlib encoder, or holding what JSON cannot carry (an in-process
    caller's Python objects), are the client's error, not an internal one."""
    try:
        return dumps(msg)
    except RecursionError:
        raise InvalidParams("invalid params: nested too deeply to forward") from None
    except (TypeError, ValueError):
        raise InvalidParams("invalid params: not JSON (only null, booleans, numbers, strings, arrays, objects)") from None


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError("parse error: body is not valid JSON", data=_position(exc)) from None


def _position(exc: orjson.JSONDecodeError) -> str:
    return f"line {exc.lineno} column {exc.colno}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _valid_id(value: Any) -> bool:
    return value is None or type(value) in (str, int, float)


def _stdlib_loads(body: bytes) -> Any:
    """Exact integers of any size (orjson reads those beyond 64 bits as floats)."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # nesting orjson accepts can exceed the stdlib parser's recursion
        return None


def _has_float_id(decoded: Any) -> bool:
    if type(decoded) is dict:
        return type(decoded.get("id")) is float
    return any(type(item) is dict and type(item.get("id")) is float for item in decoded)


def parse_message(obj: Any, raw: bytes | None = None, *, exact: bool = True) -> Request | Invalid:
    """Validate one decoded message. `raw` is its original bytes when it is a whole single body;
    `exact` is False when the message came from the stdlib re-read (ids that orjson cannot echo)."""
    if type(obj) is not dict:
        return Invalid(None, InvalidRequest("invalid request: expected a JSON-RPC request object"))
    rid = obj.get("id", NO_ID)
    if rid is not NO_ID and not _valid_id(rid):
        return Invalid(None, InvalidRequest("invalid request: id must be a string, number or null"))
    if exact is False and type(rid) is int and -(2**63) <= rid < 2**64:
        exact = True
    if type(rid) is float:
        exact = False
    reply_id = None if rid is NO_ID else rid
    if obj.get("jsonrpc") != "2.0":
        return Invalid(reply_id, InvalidRequest('invalid request: "jsonrpc" must be exactly "2.0"'))
    method = obj.get("method")
    if type(method) is not str or not method:
        return Invalid(reply_id, InvalidRequest('invalid request: "method" must be a non-empty string'))
    params = obj.get("params")
    if params is not None and type(params) not in (list, dict):
        return Invalid(reply_id, InvalidRequest('invalid request: "params" must be an array or an object'))
    if "params" in obj and params is None:
        return Invalid(reply_id, InvalidRequest('invalid request: "params" must be an array or an object'))
    if raw is not None and len(obj) != 2 + (rid is not NO_ID) + ("params" in obj):
        raw = None  # members beyond the spec's: forward a clean re-encoding (some providers reject extras)
    return Request(method, params, rid, raw if exact and rid is not None else None, exact)


def parse_body(body: bytes) -> Request | Invalid | list[Request | Invalid]:
    """Parse a client body. Raises ParseError / InvalidRequest when the body as a whole is unusable
    (bad JSON, not an object or array, empty batch): those get one error response, not an array."""
    decoded = _loads(body)
    exact = True
    if type(decoded) in (dict, list) and decoded and _has_float_id(decoded):
        reread = _stdlib_loads(body)
        if reread is not None:
            decoded, exact = reread, False
    if type(decoded) is dict:
        return parse_message(decoded, body, exact=exact)
    if type(decoded) is list:
        if not decoded:
            raise InvalidRequest("invalid request: empty batch")
        return [parse_message(item, exact=exact) for item in decoded]
    raise InvalidRequest("invalid request: expected a JSON-RPC request object or a batch array")


# ----------------------------------------------------------------------------- building replies


def dumps(value: Any) -> bytes:
    """orjson, falling back to the stdlib for integers orjson cannot write (beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def error_body(err: LivechainError, rid: Any = None) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": rid, "error": err.to_error()})


def result_response(rid: Any, result: Any) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": rid, "result": result})
