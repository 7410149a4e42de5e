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


class NotJsonRpc(ValueError):
    """The bytes are not one JSON-RPC 2.0 response object."""


def parse_reply(body: bytes) -> Reply:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NotJsonRpc("reply is not JSON") from None
    if type(obj) is not dict:
        raise NotJsonRpc("reply is not a JSON object")
    if "result" in obj:
        return Reply(body, obj.get("id"), obj["result"], None)
    error = obj.get("error")
    if type(error) is dict and type(error.get("code")) is int:
        if type(error.get("message")) is not str:
            error = {**error, "message": str(error.get("message", ""))}
        return Reply(body, obj.get("id"), None, error)
    raise NotJsonRpc("reply has neither result nor a valid error")
