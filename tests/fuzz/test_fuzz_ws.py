"""Fuzzing /ws/rpc/{chain}: every message (text or binary frame) yields at most one reply, spec JSON-RPC,
without Python internals; invalid UTF-8 in a text frame closes with 1007, an oversized message with 1009; and
the server keeps serving (a sentinel request after every message must be answered).

Same harness as test_fuzz_http.py: in-process Livechain (start_livechain) in front of one anvil, async
`@given` tests run by pytest-asyncio, requests sent under the process's original recursion limit.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from tests.conftest import FAKE_KEY
from tests.fuzz.strategies import (
    BAD_UTF8,
    MAX_WS_MESSAGE,
    Payload,
    WsJudge,
    fuzz_config,
    fuzz_settings,
    payloads,
    production_recursion_limit,
    raw_ws_frames,
)

FUZZ = fuzz_settings(800)


@pytest.fixture
async def lc(anvil, start_livechain):
    return await start_livechain(fuzz_config(anvil, FAKE_KEY))


@pytest.fixture
async def judge(lc):
    opened = await WsJudge(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev").open()
    yield opened
    await opened.close()
    lc.transcript.extend(opened.received)
    assert lc.leaks(FAKE_KEY) == []


@FUZZ
@given(payload=payloads, binary=st.booleans())
async def test_every_ws_message_gets_at_most_one_spec_reply_and_the_connection_keeps_serving(
    judge: WsJudge, payload: Payload, binary: bool
) -> None:
    """Text and binary frames of every fuzz kind: one reply per message that needs one (none for
    notifications), spec-shaped, no traceback or Python exception text; the sentinel request after it is
    answered on the same connection."""
    event(payload.kind.split("/")[0])
    with production_recursion_limit():
        problems = await judge.judge(payload, binary)
    assert problems == []


def _fragments(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        if point > start or (not pieces and point == len(data)):
            pieces.append(data[start:point])
            start = point
    frames = []
    for i, piece in enumerate(pieces):
        opcode = Opcode.TEXT if i == 0 else Opcode.CONT
        frames.append(Frame(opcode, piece, fin=i == len(pieces) - 1).serialize(mask=True))
    return frames


@fuzz_settings(40)
@given(
    valid=st.booleans(),
    bad=st.lists(st.sampled_from(BAD_UTF8), min_size=1, max_size=3).map(b"".join),
    cuts=st.lists(st.integers(0, 200), max_size=3),
)
async def test_text_frames_are_checked_for_utf8_across_fragments(lc, valid: bool, bad: bytes, cuts: list[int]) -> None:
    """A text message split into fragments anywhere (even inside a multi-byte character) is accepted when it is
    UTF-8 as a whole — and answered — and closed with 1007 when it is not; the server serves the next client."""
    text = '{"jsonrpc":"2.0","id":"é€😀","method":"eth_chainId"}'.encode()
    data = text if valid else text[:20] + bad + text[20:]
    code, received = await raw_ws_frames(
        "127.0.0.1", lc.app.port, "/ws/rpc/dev", _fragments(data, cuts), timeout=3, until=b'"result"'
    )
    if valid:
        assert b'"result":"0x7a69"' in received and code is None, (code, received[:200])
    else:
        assert code == 1007, (code, received[:200])
    assert (await lc.rpc("eth_chainId"))["result"] == "0x7a69"


async def test_a_message_over_the_limit_closes_with_1009_and_a_new_connection_works(lc, judge: WsJudge) -> None:
    data = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["' + b"a" * MAX_WS_MESSAGE + b'"]}'
    assert await judge.judge(Payload("too_big", data), binary=False) == []
    ok = Payload("ok", b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
    assert await judge.judge(ok, binary=False) == []


async def test_deeply_nested_params_with_a_float_id_get_exactly_one_ws_reply(judge: WsJudge) -> None:
    """Found by the fuzzer (the WebSocket face of the HTTP 500 in test_fuzz_http.py): the exact-integer re-read
    of a body with a float id raises RecursionError, which escapes RpcSession.on_message; the connection logs
    it and the client's request is never answered."""
    nested = b"[" * 1010 + b"]" * 1010
    data = b'{"jsonrpc":"2.0","id":1.5,"method":"eth_call","params":' + nested + b"}"
    with production_recursion_limit():
        problems = await judge.judge(Payload("deep", data), binary=False)
    assert problems == []


async def test_eth_subscribe_with_an_integer_beyond_64_bits_gets_an_answer(judge: WsJudge) -> None:
    """Found by the fuzzer: with a float id the body is re-read with exact integers; eth_subscribe of an
    unknown kind then serialises its params with orjson (subscriptions/params.py canonical()), which raises
    TypeError for an integer beyond 64 bits. RpcSession._answer_local only catches LivechainError, so the
    exception escapes on_message and the request is never answered."""
    data = b'{"jsonrpc":"2.0","id":1.5,"method":"eth_subscribe","params":["foo",100000000000000000000000000]}'
    problems = await judge.judge(Payload("subscribe", data), binary=False)
    assert problems == []


# ---------------------------------------------------------------------------------------------- documented limits


async def test_ws_limits_subscriptions_per_connection_and_connections_per_address(anvil, start_livechain) -> None:
    """max_subscriptions per connection → the next eth_subscribe gets -32005 (the connection stays usable);
    max_connections_per_ip WebSockets → the next upgrade is refused with HTTP 429 and a -32005 body; closing
    one frees its slot."""
    import aiohttp

    text = fuzz_config(anvil, FAKE_KEY).replace(
        "chains:\n", "server: {max_connections_per_ip: 3, ws: {max_subscriptions: 2}}\nchains:\n"
    )
    lc = await start_livechain(text)
    url = f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev"
    judges = [await WsJudge(url).open() for _ in range(3)]
    try:
        ws = judges[0].ws
        for i in range(3):
            await ws.send_str(f'{{"jsonrpc":"2.0","id":{i},"method":"eth_subscribe","params":["newHeads"]}}')
        replies = []
        while len(replies) < 3:
            msg = await ws.receive(timeout=5)
            if b"eth_subscription" not in msg.data.encode():
                replies.append(orjson.loads(msg.data))
        by_id = {r["id"]: r for r in replies}
        assert "result" in by_id[0] and "result" in by_id[1]
        assert by_id[2]["error"]["code"] == -32005, by_id[2]
        assert await judges[0].judge(Payload("ok", b'{"jsonrpc":"2.0","id":9,"method":"eth_chainId"}'), False) == []

        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            assert refused.value.status == 429
            async with session.get(url.replace("ws://", "http://"), headers={
                "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            }) as resp:
                assert resp.status == 429 and (await resp.json())["error"]["code"] == -32005
            await judges.pop().close()
            for _ in range(50):  # the server notices the close asynchronously
                try:
                    extra = await session.ws_connect(url)
                    break
                except aiohttp.WSServerHandshakeError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("a closed WebSocket's slot was never freed")
            await extra.close()
    finally:
        for judge in judges:
            await judge.close()
