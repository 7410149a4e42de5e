"""Fuzz inputs for Livechain's JSON-RPC edge, and the JSON-RPC 2.0 oracle that judges its replies.

Inputs (`payloads`, each a `Payload(kind, data)`): invalid UTF-8, deep nesting, huge numbers, wrong types for
every field, giant batches (beyond batch_limit; 100k tiny items within the body limit), duplicate ids, random
JSON, random bytes and valid-looking requests with random methods and params.

The oracle is written from the JSON-RPC 2.0 specification, not from Livechain's parser. It uses orjson only to
decide what counts as parsable (its limits — 1024 levels of nesting, numbers within double range — are
Livechain's documented implementation limits, answered with -32700) and the stdlib parser (exact integers)
to read ids. `expect(data)` says what a reply must look like; `check_body()` lists the violations of a reply.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

BATCH_LIMIT = 100  # the fuzzed chain's batch_limit (the default)
MAX_BODY = 2 * 1024 * 1024  # server.max_body_bytes (the default)
MAX_WS_MESSAGE = 1024 * 1024  # server.ws.max_message_bytes (the default)


#: the recursion limit before Hypothesis raises it (by 2000) around every test it runs
PRODUCTION_RECURSION_LIMIT = sys.getrecursionlimit()


def fuzz_settings(examples: int) -> settings:
    """The suite's Hypothesis settings: `examples` inputs (or FUZZ_EXAMPLES), a fixed sequence unless
    FUZZ_RANDOM is set (then new inputs), no shrinking — a failure reports the input as generated."""
    return settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", str(examples))),
        derandomize=os.environ.get("FUZZ_RANDOM") is None,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@contextlib.contextmanager
def production_recursion_limit() -> Iterator[None]:
    """Run the block under the process's original recursion limit (and restore Hypothesis's after)."""
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(PRODUCTION_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


@dataclass(frozen=True)
class Payload:
    kind: str
    data: bytes

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 160 else self.data[:120] + b"..." + self.data[-30:]
        return f"Payload({self.kind!r}, {len(self.data)} bytes: {shown!r})"


def fuzz_config(node: Any, key: str = "") -> str:
    """The fuzzed server: chain "dev" with one provider (the anvil `node`), short deadlines, default limits."""
    url = f"{node.url}/?apikey={key}"
    ws_url = f"{node.ws_url}/?apikey={key}"
    return (
        "persistence: {sqlite_path: null}\nlogging: {level: info, format: json}\nchains:\n  dev:\n"
        "    chain_id: 31337\n    deadline: 2s\n    attempt_timeout: 1s\n    health_interval: 1s\n"
        f"    providers:\n      - {{id: p0, http_url: '{url}', ws_url: '{ws_url}'}}\n"
    )


# ---------------------------------------------------------------------------------------------- JSON pieces


def dumps(value: Any) -> bytes:
    """Any JSON value, including integers beyond 64 bits."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
huge_ints = st.integers(min_value=19, max_value=1200).map(lambda k: 10**k) | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
ids = (
    st.none()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False)
    | huge_ints
    | huge_ints.map(lambda i: -i)
)
METHODS = [
    "eth_chainId", "eth_blockNumber", "eth_getBalance", "eth_getBlockByNumber", "eth_getBlockByHash", "eth_call",
    "eth_getLogs", "eth_getCode", "eth_getStorageAt", "eth_getTransactionCount", "eth_getTransactionByHash",
    "eth_getTransactionReceipt", "eth_estimateGas", "eth_gasPrice", "eth_feeHistory", "eth_sendRawTransaction",
    "net_version", "web3_clientVersion", "web3_sha3", "eth_subscribe", "eth_unsubscribe", "eth_newFilter",
    "eth_getFilterChanges", "eth_sendTransaction", "eth_sign", "anvil_mine", "evm_mine", "debug_traceCall",
    "admin_peers", "", "rpc.discover",
]
methods = st.sampled_from(METHODS) | st.text(max_size=24)
ADDRESS = "0x" + "00" * 20
BLOCK_TAGS = ["latest", "earliest", "pending", "safe", "finalized", "0x0", "0x1", "0xffffffffffffffff", "0x", "nope"]
params_like = (
    st.lists(json_values, max_size=4)
    | st.dictionaries(st.text(max_size=6), json_values, max_size=3)
    | st.tuples(st.sampled_from([ADDRESS, "0x", "0x" + "zz" * 20, ""]), st.sampled_from(BLOCK_TAGS)).map(list)
    | st.tuples(st.sampled_from(BLOCK_TAGS), st.booleans()).map(list)
    | st.just(["newHeads"])
    | st.tuples(st.sampled_from(["logs", "newPendingTransactions", "syncing", "foo"]), json_values).map(list)
    | st.tuples(st.just("logs"), st.fixed_dictionaries({"address": st.sampled_from([ADDRESS, [ADDRESS], [], "x"])},
                                                       optional={"topics": st.lists(st.none() | st.text(max_size=4), max_size=5)})).map(list)
)


@st.composite
def request_objects(draw: st.DrawFn) -> dict:
    """A valid-looking request: jsonrpc 2.0, a (random) method, maybe an id, maybe params."""
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": draw(methods)}
    if draw(st.integers(0, 4)):  # mostly with an id
        obj["id"] = draw(ids)
    if draw(st.booleans()):
        obj["params"] = draw(params_like)
    return obj


@st.composite
def wrong_types(draw: st.DrawFn) -> dict:
    """A valid request with some of its fields removed, retyped, or joined by unknown fields."""
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    for name in ["jsonrpc", "id", "method", "params"]:
        action = draw(st.sampled_from(["keep", "keep", "drop", "retype"]))
        if action == "drop":
            del obj[name]
        elif action == "retype":
            obj[name] = draw(json_values)
    for name in draw(st.lists(st.text(max_size=6), max_size=2)):
        obj[name] = draw(json_values)
    return obj


# ---------------------------------------------------------------------------------------------- generators

BAD_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
            b"\xed\xa0\x80", b"\xf8\xa1\xa1\xa1\xa1", b"\xf4\x90\x80\x80", b"\xe0\x80\xaf"]
UTF8_TEMPLATES = [
    b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId%s"}',
    b'{"jsonrpc":"2.0","id":"%s","method":"eth_chainId"}',
    b'{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["%s","latest"]}',
    b'[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","x":"%s"}]',
    b'{"%s":1}',
    b"%s",
    b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}%s',
]


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Payload:
    template = draw(st.sampled_from(UTF8_TEMPLATES))
    bad = b"".join(draw(st.lists(st.sampled_from(BAD_UTF8), min_size=1, max_size=3)))
    return Payload("invalid_utf8", template.replace(b"%s", bad))


NESTING_DEPTHS = [2, 100, 511, 512, 900, 990, 999, 1000, 1001, 1010, 1020, 1022, 1023, 1024, 1025, 2000, 10_000, 100_000]


@st.composite
def deep_nesting(draw: st.DrawFn) -> Payload:
    depth = draw(st.sampled_from(NESTING_DEPTHS) | st.integers(1, 12_000))
    if draw(st.booleans()):
        nested = b"[" * depth + b"]" * depth
    else:
        nested = b'{"a":' * depth + b"1" + b"}" * depth
    if draw(st.integers(0, 9)) == 0:  # unbalanced
        nested = nested[: len(nested) - draw(st.integers(1, max(1, depth)))]
    rid = draw(st.sampled_from([b"1", b"1.5", b'"x"', b"null", b"18446744073709551616"]))  # a float id re-reads exactly
    where = draw(st.sampled_from(["bare", "params", "id", "method", "batch"]))
    request = b'{"jsonrpc":"2.0","id":' + rid + b',"method":"eth_call","params":[' + nested + b"]}"
    data = {
        "bare": nested,
        "params": request,
        "id": b'{"jsonrpc":"2.0","id":' + nested + b',"method":"eth_chainId"}',
        "method": b'{"jsonrpc":"2.0","id":' + rid + b',"method":' + nested + b"}",
        "batch": b"[" + request + b"]",
    }[where]
    return Payload(f"deep_nesting/{where}", data)


NUMBER_TEXTS = [b"1e400", b"-1e400", b"1e-400", b"1E+308", b"1.7976931348623157e309", b"-0", b"0.0", b"-0.0", b"1.5",
                b"123456789012345678901234567890", b"18446744073709551615", b"18446744073709551616",
                b"-9223372036854775808", b"-9223372036854775809", b"9223372036854775807", b"1" + b"0" * 1000,
                b"-" + b"9" * 5000, b"0." + b"0" * 400 + b"1", b"1" + b"0" * 308 + b".5", b"01", b"+1", b".5", b"1."]


@st.composite
def huge_numbers(draw: st.DrawFn) -> Payload:
    number = draw(
        st.sampled_from(NUMBER_TEXTS)
        | st.integers(min_value=-(10**40), max_value=10**40).map(lambda i: str(i).encode())
        | st.integers(min_value=18, max_value=6000).map(lambda k: b"1" + b"0" * k)
        | st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode())
    )
    where = draw(st.sampled_from(["id", "params", "method", "jsonrpc", "bare", "batch_id", "subscribe"]))
    data = {
        "id": b'{"jsonrpc":"2.0","id":%s,"method":"eth_chainId"}',
        "params": b'{"jsonrpc":"2.0","id":7,"method":"eth_getBalance","params":["' + ADDRESS.encode() + b'",%s]}',
        "method": b'{"jsonrpc":"2.0","id":7,"method":%s}',
        "jsonrpc": b'{"jsonrpc":%s,"id":7,"method":"eth_chainId"}',
        "bare": b"%s",
        "batch_id": b'[{"jsonrpc":"2.0","id":%s,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}]',
        "subscribe": b'{"jsonrpc":"2.0","id":1.5,"method":"eth_subscribe","params":["foo",%s]}',
    }[where].replace(b"%s", number)
    return Payload(f"huge_numbers/{where}", data)


@st.composite
def giant_batches(draw: st.DrawFn) -> Payload:
    shape = draw(st.sampled_from(["over_limit"] * 4 + ["tiny_100k", "notifications_over_limit", "at_limit", "over_body"]))
    if shape == "over_limit":
        n = draw(st.integers(BATCH_LIMIT + 1, 3000))
        item = draw(st.sampled_from([b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}', b"0", b"{}", b"[]"]))
        data = b"[" + b",".join([item] * n) + b"]"
    elif shape == "tiny_100k":
        item = draw(st.sampled_from([b"0", b"{}", b"[]", b"null", b'""', b"1"]))
        data = b"[" + b",".join([item] * 100_000) + b"]"
    elif shape == "notifications_over_limit":
        n = draw(st.integers(BATCH_LIMIT + 1, 40_000))
        data = b"[" + b",".join([b'{"jsonrpc":"2.0","method":"eth_chainId"}'] * n) + b"]"
    elif shape == "at_limit":
        items = [
            {"jsonrpc": "2.0", "method": "eth_chainId", **({"id": i} if i % 3 else {})} for i in range(BATCH_LIMIT)
        ]
        data = dumps(items)
    else:
        data = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["' + b"a" * MAX_BODY + b'"]}'
    return Payload(f"giant_batches/{shape}", data)


@st.composite
def duplicate_ids(draw: st.DrawFn) -> Payload:
    rid = draw(ids)
    n = draw(st.integers(2, 8))
    items = [
        {"jsonrpc": "2.0", "id": rid, "method": draw(st.sampled_from(["eth_chainId", "eth_blockNumber", "no_such_method"]))}
        for _ in range(n)
    ]
    return Payload("duplicate_ids", dumps(items))


def _valid_looking(obj: Any) -> Payload:
    return Payload("valid_looking", dumps(obj))


payloads = st.one_of(
    # the hostile generators are listed twice: Hypothesis favours the cheaper branches otherwise
    invalid_utf8(),
    invalid_utf8(),
    deep_nesting(),
    deep_nesting(),
    huge_numbers(),
    huge_numbers(),
    giant_batches(),
    wrong_types().map(lambda o: Payload("wrong_types", dumps(o))),
    st.lists(wrong_types() | request_objects(), min_size=1, max_size=5).map(lambda o: Payload("wrong_types/batch", dumps(o))),
    giant_batches(),
    duplicate_ids(),
    json_values.map(lambda v: Payload("random_json", dumps(v))),
    st.binary(max_size=300).map(lambda b: Payload("random_bytes", b)),
    request_objects().map(_valid_looking),
    st.lists(request_objects(), min_size=1, max_size=6).map(lambda o: Payload("valid_looking/batch", dumps(o))),
)


# ---------------------------------------------------------------------------------------------- the oracle


@dataclass
class Expect:
    """What a reply to one payload must be.

    kind "error": one error object, code in `codes`, id in `ids`; "single": one response object with id
    `ids[0]`; "batch": an array with one response per entry of `replies` (each a list of acceptable ids);
    "none": nothing at all (only notifications)."""

    kind: str
    codes: set[int] = field(default_factory=set)
    ids: list[Any] = field(default_factory=list)
    replies: list[list[Any]] = field(default_factory=list)
    status: int = 200


_NO_ID = object()


def _exact(data: bytes, fallback: Any) -> Any:
    """The value with exact integers (stdlib), or orjson's when the stdlib parser gives up."""
    try:
        return json.loads(data, parse_constant=lambda name: 1 / 0)
    except (ValueError, RecursionError, ZeroDivisionError, UnicodeDecodeError):
        return fallback


def _valid_id(value: Any) -> bool:
    return value is None or type(value) in (str, int, float)


def _classify(item: Any) -> tuple[str, list[Any]]:
    """("invalid", acceptable reply ids) | ("notification", []) | ("request", [id])."""
    if type(item) is not dict:
        return "invalid", [None]
    rid = item.get("id", _NO_ID)
    if rid is not _NO_ID and not _valid_id(rid):
        return "invalid", [None]
    echo = [None] if rid is _NO_ID or rid is None else [None, rid]
    if item.get("jsonrpc") != "2.0" or type(item.get("method")) is not str or not item["method"]:
        return "invalid", echo
    if "params" in item and type(item["params"]) not in (list, dict):
        return "invalid", echo
    if rid is _NO_ID:
        return "notification", []
    return "request", [rid]


def expect(data: bytes, *, batch_limit: int = BATCH_LIMIT, max_body: int = MAX_BODY) -> Expect:
    if len(data) > max_body:
        return Expect("error", {-32005}, [None], status=413)
    try:
        fast = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Expect("error", {-32700}, [None])
    value = _exact(data, fast) if type(fast) in (dict, list) else fast
    if type(value) is dict:
        kind, reply_ids = _classify(value)
        if kind == "invalid":
            return Expect("error", {-32600}, reply_ids)
        if kind == "notification":
            return Expect("none")
        return Expect("single", ids=reply_ids)
    if type(value) is list:
        if not value:
            return Expect("error", {-32600}, [None])
        if len(value) > batch_limit:
            return Expect("error", {-32005, -32600}, [None])
        replies = []
        for item in value:
            kind, reply_ids = _classify(item)
            if kind != "notification":
                replies.append(reply_ids)
        return Expect("batch", replies=replies) if replies else Expect("none")
    return Expect("error", {-32600}, [None])


def same_id(a: Any, b: Any) -> bool:
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b and type(a) is type(b)
    if type(a) is bool or type(b) is bool:
        return False
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-15)
    except OverflowError:
        return False


PY_EXCEPTIONS = [
    *sorted(
        name for name in dir(builtins)
        if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), BaseException)
    ),
    "JSONDecodeError",
    "CancelledError",
    "InvalidStateError",
]
PY_MARKERS = ["Traceback", 'File "', '.py"', ".py:", "site-packages", "/livechain/", "<module>"] + [
    f"{name}:" for name in PY_EXCEPTIONS
] + [f"{name}(" for name in PY_EXCEPTIONS]


def python_leak(response: bytes, request: bytes) -> str | None:
    """A traceback, Python exception text or file path in `response` that the client did not send itself."""
    text = response.decode("utf-8", "replace")
    sent = request.decode("utf-8", "replace")
    for marker in PY_MARKERS:
        if marker in text and marker not in sent:
            return marker
    return None


def _check_object(obj: Any, where: str) -> list[str]:
    if type(obj) is not dict:
        return [f"{where}: not a response object: {str(obj)[:100]}"]
    problems = []
    if obj.get("jsonrpc") != "2.0":
        problems.append(f'{where}: "jsonrpc" is {obj.get("jsonrpc")!r}')
    if "id" not in obj:
        problems.append(f"{where}: no id")
    extra = set(obj) - {"jsonrpc", "id", "result", "error"}
    if extra:
        problems.append(f"{where}: unexpected members {sorted(extra)}")
    if ("result" in obj) == ("error" in obj):
        problems.append(f"{where}: needs exactly one of result/error")
    if "error" in obj:
        error = obj["error"]
        if type(error) is not dict or type(error.get("code")) is not int or type(error.get("message")) is not str:
            problems.append(f"{where}: malformed error {str(error)[:100]}")
    return problems


def check_body(body: bytes, want: Expect, request: bytes) -> list[str]:
    """Violations of `want` by the reply `body` (b"" = no reply at all)."""
    if want.kind == "none":
        return [] if not body.strip() else [f"a reply to notifications only: {body[:120]!r}"]
    if not body.strip():
        return ["no reply"]
    problems = []
    leak = python_leak(body, request)
    if leak:
        problems.append(f"Python internals in the reply ({leak!r}): {body[:200]!r}")
    try:
        reply = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return [*problems, f"reply is not JSON ({type(exc).__name__}): {body[:120]!r}"]
    if want.kind in ("error", "single"):
        if type(reply) is not dict:
            return [*problems, f"expected one object, got {body[:120]!r}"]
        problems += _check_object(reply, "reply")
        if not any(same_id(reply.get("id"), i) for i in want.ids):
            problems.append(f"reply id {str(reply.get('id'))[:40]} is not one of {[str(i)[:40] for i in want.ids]}")
        if want.kind == "error":
            code = (reply.get("error") or {}).get("code") if type(reply.get("error")) is dict else None
            if code not in want.codes:
                problems.append(f"error code {code} is not one of {sorted(want.codes)}: {body[:200]!r}")
        return problems
    if type(reply) is not list:
        return [*problems, f"expected a batch array, got {body[:120]!r}"]
    if len(reply) != len(want.replies):
        problems.append(f"{len(reply)} responses for {len(want.replies)} answerable entries")
    unmatched = list(want.replies)
    for i, obj in enumerate(reply):
        problems += _check_object(obj, f"item {i}")
        rid = obj.get("id") if type(obj) is dict else None
        for j, options in enumerate(unmatched):
            if any(same_id(rid, o) for o in options):
                del unmatched[j]
                break
        else:
            problems.append(f"item {i}: id {str(rid)[:40]} answers no entry")
    return problems


# ---------------------------------------------------------------------------------------------- WebSocket drivers

SENTINEL = '{"jsonrpc":"2.0","id":"sentinel-%d","method":"eth_chainId","params":[]}'


class WsJudge:
    """One WebSocket to /ws/rpc/{chain}; `judge(payload)` sends it (text or binary frame), then a sentinel
    request, and reads until the sentinel's reply and the payload's expected reply (if any) are in.

    Every message that is neither the sentinel's reply nor an eth_subscription notification is a reply to the
    payload: at most one is allowed, exactly one when the payload needs an answer, and it is judged by
    `check_body`. A reply that comes late is seen by the next payload as an extra one (and flagged there).
    Messages over `max_message` must close the connection with 1009; the judge then reconnects."""

    def __init__(self, url: str, max_message: int = MAX_WS_MESSAGE, timeout: float = 6.0) -> None:
        self.url = url
        self.max_message = max_message
        self.timeout = timeout
        self.session: Any = None
        self.ws: Any = None
        self.n = 0
        self.received: list[bytes] = []  # every text message, for secret-leak checks

    async def open(self) -> WsJudge:
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, max_msg_size=0, autoping=True)
        return self

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()

    async def judge(self, payload: Payload, binary: bool) -> list[str]:
        import aiohttp

        if self.ws is None or self.ws.closed:
            await self.open()
        data = payload.data
        ws = self.ws
        if len(data) > self.max_message:
            await ws.send_bytes(data)
            msg = await ws.receive(timeout=self.timeout)
            problems = []
            if msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING) or (
                ws.close_code != 1009
            ):
                problems.append(f"a {len(data)}-byte message got {msg.type.name} {ws.close_code}, expected close 1009")
            await ws.close()
            await self.open()
            return problems
        want = expect(data, max_body=len(data) + 1)
        text = None
        if not binary:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is not None:
            await ws.send_str(text)
        else:
            await ws.send_bytes(data)
        self.n += 1
        sentinel_id = f"sentinel-{self.n}"
        await ws.send_str(SENTINEL % self.n)
        needed = 0 if want.kind == "none" else 1
        replies: list[bytes] = []
        got_sentinel = False
        loop_deadline = asyncio.get_running_loop().time() + self.timeout
        while not got_sentinel or len(replies) < needed:
            left = loop_deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                msg = await ws.receive(timeout=left)
            except TimeoutError:
                break
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return [f"connection ended ({msg.type.name}, close code {ws.close_code}) after {payload.kind}"]
            raw = msg.data.encode()
            self.received.append(raw)
            if f'"{sentinel_id}"' in msg.data and b'"method":"eth_subscription"' not in raw:
                got_sentinel = True
                continue
            if b'"method":"eth_subscription"' in raw[:80]:
                continue
            replies.append(raw)
        problems = []
        if not got_sentinel:
            problems.append("no reply to the follow-up request")
        if len(replies) > 1:
            problems.append(f"{len(replies)} reply messages for one message: {[r[:80] for r in replies]}")
        if needed and not replies:
            problems.append("no reply")
        elif replies:
            problems += check_body(replies[0], want, data)
        return problems


async def raw_ws_frames(
    host: str, port: int, path: str, frames: list[bytes], timeout: float = 5.0, until: bytes | None = None
) -> tuple[int | None, bytes]:
    """Open a WebSocket by hand, write already-serialized client frames, and return (close code sent by the
    server or None, every byte received after the handshake) once a close frame or `until` arrived."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"handshake refused: {head[:100]!r}")
        for frame in frames:
            writer.write(frame)
        await writer.drain()
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout):
                while chunk := await reader.read(65536):
                    received += chunk
                    if _close_code(received) is not None or (until is not None and until in received):
                        break
        return _close_code(received), received
    finally:
        writer.close()


def _close_code(data: bytes) -> int | None:
    """The code of the first close frame in a stream of unmasked server frames."""
    i = 0
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        j = i + 2
        if length == 126:
            if j + 2 > len(data):
                return None
            length, j = int.from_bytes(data[j : j + 2], "big"), j + 2
        elif length == 127:
            if j + 8 > len(data):
                return None
            length, j = int.from_bytes(data[j : j + 8], "big"), j + 8
        if j + length > len(data):
            return None
        if opcode == 0x8:
            return int.from_bytes(data[j : j + 2], "big") if length >= 2 else 1005
        i = j + length
    return None
