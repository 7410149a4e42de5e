"""The answers mode `lie` rewrites: a wrong block hash, a missing receipt, no logs, a stale or future head.

`LiePlan.for_request()` reads one HTTP request body (a JSON-RPC request or a batch) and remembers which
request ids asked a method the fault's lie applies to; nothing else is planned, so a request without such
a method is forwarded untouched. `LiePlan.rewrite()` then rewrites the provider's reply body: a single
reply is re-serialized compactly when its result changed; in a batch only the changed items are
re-serialized and every other byte of the reply is kept. Error replies, replies of other methods,
replies whose id was not asked and bodies that are not JSON pass unchanged, byte for byte. A lie is told
(and counted) only when it changes a result: a null block stays null, an empty log list stays empty.

What each lie does (`Fault.lie`):
  block_hash    eth_getBlockByNumber/ByHash: the block's `hash`; eth_getLogs, eth_getBlockReceipts,
                eth_getTransactionReceipt (its `blockHash` and its logs'), eth_getTransactionByHash: every
                `blockHash`. A hash is changed by flipping the lowest bit of its last byte (`twist_hash`).
  null_receipt  eth_getTransactionReceipt → null.
  empty_logs    eth_getLogs → [].
  stale_head    eth_blockNumber → max(0, n − lie_blocks).
  future_head   eth_blockNumber → n + lie_blocks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from livechain.faults.faults import LIES, Fault

__all__ = ["LIE_METHODS", "LiePlan", "twist_hash"]

#: The methods whose answers each lie rewrites.
LIE_METHODS: dict[str, frozenset[str]] = {
    "block_hash": frozenset(
        {
            "eth_getBlockByNumber",
            "eth_getBlockByHash",
            "eth_getLogs",
            "eth_getTransactionReceipt",
            "eth_getBlockReceipts",
            "eth_getTransactionByHash",
        }
    ),
    "null_receipt": frozenset({"eth_getTransactionReceipt"}),
    "empty_logs": frozenset({"eth_getLogs"}),
    "stale_head": frozenset({"eth_blockNumber"}),
    "future_head": frozenset({"eth_blockNumber"}),
}
assert set(LIE_METHODS) == set(LIES)

_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_QUANTITY = re.compile(r"0x[0-9a-fA-F]+")
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_UNCHANGED = object()  # what a lie returns when it has nothing to change


def twist_hash(value: Any) -> Any:
    """A different valid 32-byte hash: the lowest bit of the last byte flipped. Anything else unchanged."""
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        return value
    return value[:-1] + format(int(value[-1], 16) ^ 1, "x")


def _twist_field(obj: Any, field: str) -> bool:
    if not isinstance(obj, dict) or field not in obj:
        return False
    twisted = twist_hash(obj[field])
    if twisted == obj[field]:
        return False
    obj[field] = twisted
    return True


def _twist_log(log: Any) -> bool:
    return _twist_field(log, "blockHash")


def _twist_receipt(receipt: Any) -> bool:
    changed = _twist_log(receipt)
    if isinstance(receipt, dict) and isinstance(receipt.get("logs"), list):
        for log in receipt["logs"]:
            changed = _twist_log(log) or changed
    return changed


def _lie_block_hash(method: str, result: Any, blocks: int) -> Any:
    if method in ("eth_getBlockByNumber", "eth_getBlockByHash"):
        changed = _twist_field(result, "hash")
    elif method == "eth_getTransactionReceipt":
        changed = _twist_receipt(result)
    elif method == "eth_getTransactionByHash":
        changed = _twist_field(result, "blockHash")
    elif isinstance(result, list):  # eth_getLogs, eth_getBlockReceipts
        twist = _twist_receipt if method == "eth_getBlockReceipts" else _twist_log
        changed = False
        for item in result:
            changed = twist(item) or changed
    else:
        changed = False
    return result if changed else _UNCHANGED


def _lie_null_receipt(method: str, result: Any, blocks: int) -> Any:
    return None if result is not None else _UNCHANGED


def _lie_empty_logs(method: str, result: Any, blocks: int) -> Any:
    return [] if isinstance(result, list) and result else _UNCHANGED


def _move_head(result: Any, by: int) -> Any:
    if not isinstance(result, str) or not _QUANTITY.fullmatch(result):
        return _UNCHANGED
    n = int(result, 16)
    moved = max(0, n + by)
    return hex(moved) if moved != n else _UNCHANGED


def _lie_stale_head(method: str, result: Any, blocks: int) -> Any:
    return _move_head(result, -blocks)


def _lie_future_head(method: str, result: Any, blocks: int) -> Any:
    return _move_head(result, blocks)


_LIARS: dict[str, Callable[[str, Any, int], Any]] = {
    "block_hash": _lie_block_hash,
    "null_receipt": _lie_null_receipt,
    "empty_logs": _lie_empty_logs,
    "stale_head": _lie_stale_head,
    "future_head": _lie_future_head,
}


def _id_key(rid: Any) -> str:
    return json.dumps(rid, sort_keys=True)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _split_array(text: str) -> list[tuple[int, int, Any]] | None:
    """The items of a JSON array as (start, end, value), or None if `text` is not exactly one array."""
    i = _WS.match(text).end()
    if text[i : i + 1] != "[":
        return None
    i = _WS.match(text, i + 1).end()
    items: list[tuple[int, int, Any]] = []
    if text[i : i + 1] != "]":
        while True:
            value, end = _DECODER.raw_decode(text, i)
            items.append((i, end, value))
            i = _WS.match(text, end).end()
            sep = text[i : i + 1]
            if sep == "]":
                break
            if sep != ",":
                return None
            i = _WS.match(text, i + 1).end()
    return items if _WS.match(text, i + 1).end() == len(text) else None


class LiePlan:
    """The lie to tell about one HTTP request's replies: which ids asked which (lied-about) methods."""

    __slots__ = ("blocks", "lie", "methods")

    def __init__(self, lie: str, blocks: int, methods: dict[str, list[str]]) -> None:
        self.lie = lie
        self.blocks = blocks
        self.methods = methods  # id (as canonical JSON) → methods asked under it, in request order

    @classmethod
    def for_request(cls, fault: Fault, body: bytes) -> LiePlan | None:
        """The plan for a request body, or None when it asks nothing this lie rewrites (or is not JSON)."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        targets = LIE_METHODS[fault.lie]
        methods: dict[str, list[str]] = {}
        for call in request if isinstance(request, list) else [request]:
            if isinstance(call, dict) and call.get("method") in targets and call.get("id") is not None:
                methods.setdefault(_id_key(call["id"]), []).append(call["method"])
        return cls(fault.lie, fault.lie_blocks, methods) if methods else None

    def rewrite(self, body: bytes) -> tuple[bytes, int] | None:
        """The lying reply body and how many replies it changed, or None to relay `body` unchanged."""
        try:
            text = body.decode()
            if not text.startswith("[", _WS.match(text).end()):
                lied = self._rewrite_reply(json.loads(text))
                return (_dumps(lied).encode(), 1) if lied is not None else None
            items = _split_array(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if items is None:
            return None
        out: list[str] = []
        pos = told = 0
        for start, end, item in items:
            lied = self._rewrite_reply(item)
            if lied is not None:
                out += (text[pos:start], _dumps(lied))
                pos, told = end, told + 1
        if not told:
            return None
        out.append(text[pos:])
        return "".join(out).encode(), told

    def _rewrite_reply(self, reply: Any) -> dict[str, Any] | None:
        """The lying version of one JSON-RPC reply object, or None when it is left alone."""
        if not isinstance(reply, dict) or "id" not in reply:
            return None
        asked = self.methods.get(_id_key(reply["id"]))
        if not asked:
            return None
        method = asked.pop(0)
        if "error" in reply or "result" not in reply:
            return None
        result = _LIARS[self.lie](method, reply["result"], self.blocks)
        if result is _UNCHANGED:
            return None
        return {**reply, "result": result}
