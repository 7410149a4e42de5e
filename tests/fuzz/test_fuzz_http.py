"""Fuzzing POST /rpc/{chain}: whatever the body, the server answers spec JSON-RPC, never HTTP 500, never leaks
Python internals, and keeps serving.

Livechain runs in-process (start_livechain) in front of one anvil. Hypothesis drives it through
pytest-asyncio's support for async `@given` tests: the fixtures are set up once per test function and each
example runs on the test's event loop. Hypothesis raises the interpreter's recursion limit by 2000 while a test
runs, which would hide recursion bugs of the server; each request is therefore sent under the limit the
process started with (`production_recursion_limit`). `derandomize=True` keeps `make test` reproducible;
`scripts/fuzz_long.py` runs the same generators and oracle for 100,000+ random inputs.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import event, given

from tests.conftest import FAKE_KEY
from tests.fuzz.strategies import (
    MAX_BODY,
    Payload,
    check_body,
    expect,
    fuzz_config,
    fuzz_settings,
    payloads,
    production_recursion_limit,
)

FUZZ = fuzz_settings(1000)
PING = b'{"jsonrpc":"2.0","id":"ping","method":"eth_chainId","params":[]}'


@pytest.fixture
async def lc(anvil, start_livechain):
    """The fuzzed server; at teardown, no reply it gave and no line it logged holds the planted key."""
    started = await start_livechain(fuzz_config(anvil, FAKE_KEY))
    yield started
    assert started.leaks(FAKE_KEY) == []


async def post_and_check(lc, payload: Payload) -> list[str]:
    """Send one payload, judge the reply, then check the server still answers a normal request."""
    with production_recursion_limit():
        status, _, body = await lc.post("/rpc/dev", payload.data)
    want = expect(payload.data)
    problems = []
    if status >= 500:
        problems.append(f"HTTP {status}")
    elif status != want.status and not (want.kind == "none" and status == 204):
        problems.append(f"HTTP {status}, expected {want.status}")
    problems += check_body(body, want, payload.data)
    status, _, body = await lc.post("/rpc/dev", PING)
    if status != 200 or orjson.loads(body).get("result") != "0x7a69":
        problems.append(f"the follow-up request failed: {status} {body[:120]!r}")
    return problems


@FUZZ
@given(payload=payloads)
async def test_any_http_body_gets_a_spec_json_rpc_answer_and_the_server_keeps_serving(lc, payload: Payload) -> None:
    """Random bodies of every kind (see strategies.py): never HTTP 500, never a traceback or Python exception
    text, always spec JSON-RPC (-32700 unparsable, -32600 invalid, one response per non-notification, none
    for notifications), and a normal request right after still works."""
    event(payload.kind.split("/")[0])
    assert await post_and_check(lc, payload) == []


async def test_fuzzed_transcript_holds_no_provider_key(lc) -> None:
    """Error replies about bad input never echo the provider URL (it carries the planted key)."""
    for data in (b"{", b'{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":[1,2,3]}', b"[" * 5000):
        await lc.post("/rpc/dev", data)
    await lc.get("/metrics")
    assert lc.leaks(FAKE_KEY) == []


@pytest.mark.parametrize(
    "data",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["' + b"a" * MAX_BODY + b'"]}',
        b"[" + b",".join([b"0"] * 100_000) + b"]",
        b"[" + b",".join([b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'] * 101) + b"]",
        b'{"jsonrpc":"2.0","id":' + b"1" + b"0" * 1000 + b',"method":"eth_chainId"}',
        b'{"jsonrpc":"2.0","id":1e400,"method":"eth_chainId"}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}\xff',
    ],
    ids=["body_over_2MiB", "100k_tiny_items", "batch_over_limit", "id_10e1000", "id_1e400", "nesting_10000", "trailing_invalid_utf8"],
)
async def test_limits_and_edge_bodies_get_the_documented_answers(lc, data: bytes) -> None:
    """Over the body limit: HTTP 413 with -32005; over batch_limit: one -32005 error; numbers beyond double
    range and nesting beyond 1024: -32700 (orjson's limits); invalid UTF-8: -32700."""
    assert await post_and_check(lc, Payload("edge", data)) == []


async def test_deeply_nested_params_with_a_float_id_get_a_json_rpc_answer_not_http_500(lc) -> None:
    """Found by the fuzzer. A float id sends the body through the exact-integer re-read (stdlib json), which
    raises RecursionError at ~1000 levels — below orjson's 1024 limit, so the body is valid for the first
    parser and crashes the second: the edge answers HTTP 500 "internal error" instead of a JSON-RPC reply."""
    nested = b"[" * 1010 + b"]" * 1010
    data = b'{"jsonrpc":"2.0","id":1.5,"method":"eth_call","params":' + nested + b"}"
    status, _, body = await lc.post("/rpc/dev", data)
    assert status == 200, (status, body)
    reply = orjson.loads(body)
    assert reply["id"] == 1.5 and ("error" in reply or "result" in reply)


@pytest.mark.parametrize(
    "data",
    [
        b'{"jsonrpc":"2.0","id":1.5,"method":"eth_getBalance","params":["0x' + b"00" * 20 + b'",100000000000000000000000000]}',
        b'[{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[' + b"[" * 300 + b"]" * 300 + b"]}]",
        b'{"jsonrpc":"2.0","id":null,"method":"eth_call","params":[' + b"[" * 300 + b"]" * 300 + b"]}",
        b'[{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[' + b"[" * 1015 + b"]" * 1015 + b"]}]",
    ],
    ids=["float_id_and_a_2**86_param", "batch_item_params_300_deep", "null_id_params_300_deep",
         "batch_item_params_1015_deep"],
)
async def test_valid_requests_orjson_cannot_reserialize_are_not_answered_internal_error(lc, data: bytes) -> None:
    """Found by the fuzzer. A request that must be re-serialized for the provider (a batch item, or a null /
    float id that gets a wire id) goes through `Request.upstream_body` (jsonrpc/messages.py), which calls
    orjson.dumps directly — not the module's own `dumps()` with its stdlib fallback — so params holding an
    integer beyond 64 bits (kept exact by the float-id re-read) or nested deeper than orjson's 254 levels raise
    TypeError; run_one (server/rpc.py) turns it into -32603 "internal error" and logs a traceback for every such
    request. Expected: the request is forwarded (the provider's own answer comes back) or rejected as the
    client's error — never Livechain's internal error. (With the stdlib fallback, params nested ~1,000 deep —
    still accepted by orjson's parser, up to 1023 levels — make json.dumps raise RecursionError instead.)"""
    with production_recursion_limit():
        status, _, body = await lc.post("/rpc/dev", data)
    assert status == 200
    reply = orjson.loads(body)
    for item in reply if isinstance(reply, list) else [reply]:
        assert item.get("error", {}).get("message") != "internal error", item
    assert "unexpected error while forwarding" not in lc.logs.getvalue()
