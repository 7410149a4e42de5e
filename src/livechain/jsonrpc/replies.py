"""Read a provider's reply to one request: is it a JSON-RPC response, a result or an error, which id?

Providers do not always speak the spec (anvil answers malformed JSON with -32600 and HTTP 200, a
notification with HTTP 204); this module only says what the bytes are. Classifying what an error *means*
(rate limit, unsupported method, "already known") is `livechain.evm.errors`' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from livechain.jsonrpc.messages import dumps


@dataclass(slots=True)
class Reply:
    body: bytes  # the provider's bytes, forwarded to the client when the id matches
    id: Any
    result: Any
    error: dict | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def for_client(self, request_id: Any) -> bytes:
        """The bytes to send the client: the provider's own when it echoed the id exactly."""
        if type(self.id) is type(request_id) and self.id == request_id:
            return self.body
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if self.error is None:
            msg["result"] = self.result
        else:
            msg["error"] = self.error
        return dumps(msg)


@dataclass(slots=True)
class Answer:
    """What one client request got: the reply for the client (bytes with the client's own id, and decoded),
    who answered and after how many attempts. Built by the forwarder; reply fixes replace it with a new one.
    `reply` is None for an answer built without a provider's reply (a cache hit: `value()` decodes `body`
    when someone needs the value); `provider` is "" and `attempts` 0 then."""

    body: bytes
    provider: str
    attempts: int
    reply: Reply | None = None
    #: what the cache did: "hit" (answered from it), "miss" (asked upstream, kept if it may be),
    #: "coalesced" (shared an identical request's upstream attempt), "bypass" (not consulted)
    cache: str = "bypass"

    def value(self) -> Reply:
        """The decoded reply (decoded from `body` when a stage gave none)."""
        if self.reply is None:
            self.reply = reply_of(orjson.loads(self.body), self.body)
        return self.reply


class NotJsonRpc(ValueError):
    """The bytes are not one JSON-RPC 2.0 response object."""


def parse_reply(body: bytes) -> Reply:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotJsonRpc("reply is not JSON") from None
    if type(obj) is not dict:
        raise NotJsonRpc("reply is not a JSON object")
    return reply_of(obj, body)


def reply_of(obj: dict, body: bytes | None = None) -> Reply:
    """The reply an already decoded response object stands for (`body`: its bytes, re-encoded when None).
    The rules of a JSON-RPC response, in one place: a `result` member, or an `error` with an integer code."""
    if "result" in obj:
        return Reply(orjson.dumps(obj) if body is None else body, obj.get("id"), obj["result"], None)
    error = obj.get("error")
    if type(error) is dict and type(error.get("code")) is int:
        if type(error.get("message")) is not str:
            error = {**error, "message": str(error.get("message", ""))}
        return Reply(orjson.dumps(obj) if body is None else body, obj.get("id"), None, error)
    raise NotJsonRpc("reply has neither result nor a valid error")
