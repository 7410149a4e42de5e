"""What a read request asks, for the cache and for coalescing: its normalized key, and the block it is about.

    describe(method, params) → Described(key, ref), or None for params of a shape this module cannot reason
                               about (such a request is simply not cached)
    plain_key(method, params) → a key for any request (coalescing), None when the params are not plain JSON

The key is the method and its canonical params: hex quantities canonical ("0x01" → "0x1"), every other hex
string (addresses, hashes, data) lower-case, an omitted block parameter = "latest" where nodes default it so
(eth_call, eth_getLogs' fromBlock/toBlock — a node refuses eth_getBalance without one, and so must the cache:
such a request is not described, it goes upstream and gets the node's error), JSON object key order
irrelevant, set-like lists (eth_getLogs addresses, a topic position's alternatives) sorted. Two requests
with the same key ask the same question. The key only decides sharing: what goes upstream is always the
client's own request.

The ref says what the answer depends on (`Ref.kind`):

    static    chain facts (eth_chainId, net_version): never change
    head      the chain's head, whatever the params (eth_blockNumber, eth_gasPrice, …)
    tag       latest | pending | safe | finalized | earliest          (`tag`)
    number    a block by number                                        (`number`)
    hash      a block by hash, including EIP-1898 {"blockHash": …}     (`hash`)
    answer    the block the answer itself names (a transaction or receipt by hash)
    range     eth_getLogs: `low` and `high`, each a tag or number ref — or a `hash` ref for a blockHash filter

Which methods have which shape is `SHAPES`; the cache's table of methods (`livechain.pipeline.cache`) is
built from it.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

TAGS = frozenset({"latest", "pending", "safe", "finalized", "earliest"})
#: call-object fields that are quantities (canonicalized); every other hex field is data (lower-cased)
QUANTITY_FIELDS = frozenset(
    {"gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "maxFeePerBlobGas", "value", "nonce", "type",
     "chainId", "fromBlock", "toBlock", "blockNumber"}
)

# shapes: how to read each method's params
STATIC, HEAD, ANSWER, LOGS = "static", "head", "answer", "logs"


def _block_at(position: int, optional: bool = True) -> tuple[str, int, bool]:
    return ("block", position, optional)


#: method → shape: STATIC | HEAD | ANSWER | LOGS | ("block", position of the block parameter, may be omitted)
SHAPES: dict[str, Any] = {
    "eth_chainId": STATIC,
    "net_version": STATIC,
    "eth_blockNumber": HEAD,
    "eth_gasPrice": HEAD,
    "eth_maxPriorityFeePerGas": HEAD,
    "eth_blobBaseFee": HEAD,
    "eth_getBlockByNumber": _block_at(0, optional=False),
    "eth_getBlockByHash": _block_at(0, optional=False),
    "eth_getBlockReceipts": _block_at(0, optional=False),
    "eth_getBlockTransactionCountByNumber": _block_at(0, optional=False),
    "eth_getBlockTransactionCountByHash": _block_at(0, optional=False),
    "eth_getTransactionByBlockHashAndIndex": _block_at(0, optional=False),
    "eth_getTransactionByBlockNumberAndIndex": _block_at(0, optional=False),
    "eth_getTransactionByHash": ANSWER,
    "eth_getTransactionReceipt": ANSWER,
    "eth_getLogs": LOGS,
    "eth_call": _block_at(1),
    "eth_getBalance": _block_at(1, optional=False),
    "eth_getCode": _block_at(1, optional=False),
    "eth_getTransactionCount": _block_at(1, optional=False),
    "eth_getStorageAt": _block_at(2, optional=False),
    "eth_getProof": _block_at(2, optional=False),
    "eth_feeHistory": _block_at(1, optional=False),
}


class Ref:
    __slots__ = ("hash", "high", "kind", "low", "number", "tag")

    def __init__(
        self, kind: str, tag: str | None = None, number: int | None = None, hash: str | None = None,
        low: Ref | None = None, high: Ref | None = None,
    ) -> None:
        self.kind = kind
        self.tag = tag
        self.number = number
        self.hash = hash
        self.low = low
        self.high = high

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in ("tag", "number", "hash", "low", "high")
                           if getattr(self, k) is not None)
        return f"Ref({self.kind}{', ' + fields if fields else ''})"


STATIC_REF = Ref(STATIC)
HEAD_REF = Ref(HEAD)
ANSWER_REF = Ref(ANSWER)
TAG_REFS = {tag: Ref("tag", tag) for tag in TAGS}
LATEST = TAG_REFS["latest"]


class Described:
    __slots__ = ("key", "ref")

    def __init__(self, key: bytes, ref: Ref) -> None:
        self.key = key
        self.ref = ref


class _Unreadable(Exception):
    """Params of a shape this module does not reason about."""


# ---------------------------------------------------------------------------------------------- normalizing


def _hex(value: str) -> str:
    return value.lower() if value[:2] in ("0x", "0X") else value


#: a hex quantity exactly: Python's int() would also accept "0x1 " and "0x1_0", which a node refuses, so such a
#: request must not share a key with "0x1"
_HEX = re.compile(r"0[xX][0-9a-fA-F]+").fullmatch


def _quantity(value: Any) -> Any:
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        if _HEX(value) is None:
            raise _Unreadable
        return hex(int(value, 16))
    if type(value) is int and value >= 0:
        return hex(value)
    return value


#: nesting deeper than any Ethereum method's params (state overrides are 4 levels): such params are not read
#: (a client may send up to the JSON parser's limit, and reading them must not exhaust the stack)
MAX_DEPTH = 32


def _data(value: Any, depth: int = 0) -> Any:
    """Every hex string lower-case, recursively; quantity fields of objects canonical."""
    if isinstance(value, str):
        return _hex(value)
    if depth > MAX_DEPTH:
        raise _Unreadable
    if isinstance(value, list):
        return [_data(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: (_quantity(v) if k in QUANTITY_FIELDS else _data(v, depth + 1)) for k, v in value.items()}
    return value


def _block(value: Any) -> tuple[Any, Ref]:
    """A block parameter: (normalized, ref)."""
    if type(value) is str:
        tag = TAG_REFS.get(value)
        if tag is not None:
            return value, tag
        if value[:2] in ("0x", "0X"):
            if len(value) == 66:  # a block hash (eth_getBlockByHash & co.)
                lowered = value.lower()
                return lowered, Ref("hash", None, None, lowered)
            if _HEX(value) is None:
                raise _Unreadable
            number = int(value, 16)
            return hex(number), Ref("number", None, number)
    elif isinstance(value, dict):  # EIP-1898
        if "blockHash" in value and isinstance(value["blockHash"], str):
            h = value["blockHash"].lower()
            return {**value, "blockHash": h}, Ref("hash", hash=h)
        if "blockNumber" in value:
            q, ref = _block(value["blockNumber"])
            return {**value, "blockNumber": q}, ref
    raise _Unreadable


def _logs(params: list) -> tuple[list, Ref]:
    if len(params) != 1 or not isinstance(params[0], dict):
        raise _Unreadable
    flt = params[0]
    out: dict[str, Any] = {}
    for name, value in flt.items():
        if name == "address":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(a, str) for a in items):
                raise _Unreadable
            out[name] = sorted({a.lower() for a in items})
        elif name == "topics":
            if not isinstance(value, list):
                raise _Unreadable
            topics: list[Any] = []
            for position in value:
                if isinstance(position, list):
                    topics.append(sorted({_hex(t) for t in position if isinstance(t, str)}) or None)
                else:
                    topics.append(_hex(position) if isinstance(position, str) else position)
            while topics and topics[-1] is None:
                topics.pop()
            out[name] = topics
        elif name not in ("fromBlock", "toBlock", "blockHash"):
            out[name] = _data(value)
    if "blockHash" in flt:
        if not isinstance(flt["blockHash"], str):
            raise _Unreadable
        h = flt["blockHash"].lower()
        out["blockHash"] = h
        return [out], Ref("range", low=Ref("hash", hash=h), high=Ref("hash", hash=h))
    low_value, low = _block(flt.get("fromBlock", "latest"))
    high_value, high = _block(flt.get("toBlock", "latest"))
    if low.kind == "hash" or high.kind == "hash":
        raise _Unreadable
    out["fromBlock"], out["toBlock"] = low_value, high_value
    return [out], Ref("range", low=low, high=high)


def _key(method: str, params: Any) -> bytes:
    try:
        return method.encode() + b"\x00" + orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits: not something to share
        raise _Unreadable from None


def describe(method: str, params: Any) -> Described | None:
    """The key and block ref of a request of a method in SHAPES; None when its params cannot be read."""
    shape = SHAPES.get(method)
    if shape is None:
        return None
    if params is None:
        params = []
    if not isinstance(params, list):
        return None
    try:
        if shape == STATIC or shape == HEAD:
            return Described(method.encode() if not params else _key(method, _data(params)),
                             STATIC_REF if shape == STATIC else HEAD_REF)
        if shape == ANSWER:
            return Described(_key(method, _data(params)), ANSWER_REF)
        if shape == LOGS:
            normalized, ref = _logs(params)
            return Described(_key(method, normalized), ref)
        _, position, optional = shape
        normalized = [(p.lower() if p[:2] == "0x" else p) if type(p) is str else _data(p) for p in params]
        if method == "eth_getStorageAt" and len(normalized) > 1:
            normalized[1] = _quantity(normalized[1])  # a slot is a 256-bit key: 0x0 is 0x00…00
        elif method in ("eth_getTransactionByBlockHashAndIndex", "eth_getTransactionByBlockNumberAndIndex") \
                and len(normalized) > 1:
            normalized[1] = _quantity(normalized[1])
        elif method == "eth_feeHistory" and normalized:
            normalized[0] = _quantity(normalized[0])
        if len(params) <= position:
            if not optional:
                return None
            normalized.extend([None] * (position - len(normalized)))
            normalized.append("latest")
            ref = LATEST
        else:
            normalized[position], ref = _block(params[position])
        return Described(_key(method, normalized), ref)
    except _Unreadable:
        return None


def plain_key(method: str, params: Any) -> bytes | None:
    """A key for coalescing any request: the method and its params with sorted object keys."""
    described = describe(method, params)
    if described is not None:
        return described.key
    try:
        return _key(method, params if params is not None else [])
    except _Unreadable:
        return None
