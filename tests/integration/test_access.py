"""Client API keys and rate limits (token buckets), over HTTP and WebSocket."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from livechain.clients.access import Access
from livechain.clock import ManualClock
from livechain.config import parse_config
from livechain.errors import LimitExceeded, Unauthorized
from tests.conftest import config_text, dev_chain

KEY = "client-key-0123456789"
BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'


def auth_config(text: str) -> Access:
    return Access(parse_config(config_text("  x:\n    chain_id: 1\n    providers:\n      - {id: a, http_url: 'http://h'}\n", text)).auth, ManualClock().monotonic)


def test_token_bucket_allows_the_burst_then_the_rate():
    clock = ManualClock()
    access = Access(parse_config(config_text(
        "  x:\n    chain_id: 1\n    providers:\n      - {id: a, http_url: 'http://h'}\n",
        "auth: {per_ip: {rate: 10, burst: 5}}\n",
    )).auth, clock.monotonic)
    for _ in range(5):
        access.charge(None, "1.2.3.4")
    with pytest.raises(LimitExceeded) as caught:
        access.charge(None, "1.2.3.4")
    assert caught.value.http_status == 429 and caught.value.data == {"retry_after": 1}
    access.charge(None, "5.6.7.8")  # another address has its own bucket
    clock.advance(0.1)
    access.charge(None, "1.2.3.4")  # one token came back
    with pytest.raises(LimitExceeded):
        access.charge(None, "1.2.3.4", 3)


def test_keys_are_required_when_configured_and_compared_exactly():
    access = auth_config(f"auth: {{keys: [{{name: dapp, key: '{KEY}'}}]}}\n")
    assert access.identify(KEY) == "dapp"
    for bad in (None, "", KEY + "x", KEY[:-1]):
        with pytest.raises(Unauthorized):
            access.identify(bad)


@pytest.fixture
async def guarded(start_livechain, proxies):
    extra = f"auth: {{keys: [{{name: dapp, key: '{KEY}', rate: 20, burst: 10}}], per_ip: {{rate: 1000, burst: 1000}}}}\n"
    return await start_livechain(config_text(dev_chain(proxies), extra))


async def test_http_requests_need_a_key_in_the_path_or_header(guarded):
    status, _, body = await guarded.post("/rpc/dev", BODY)
    assert status == 401 and orjson.loads(body)["error"]["code"] == -32003
    status, _, body = await guarded.post("/rpc/dev/wrong-key-000000", BODY)
    assert status == 401 and b"unknown API key" in body
    status, _, body = await guarded.post(f"/rpc/dev/{KEY}", BODY)
    assert status == 200 and orjson.loads(body)["result"] == "0x7a69"
    status, _, body = await guarded.post("/rpc/priority/dev", BODY, {"X-Api-Key": KEY})
    assert status == 200
    status, _, _ = await guarded.post(f"/rpc/provider/p1/dev/{KEY}", BODY)
    assert status == 200
    assert KEY not in guarded.logs.getvalue()


async def test_key_rate_limit_counts_batch_items_and_answers_429_with_retry_after(guarded):
    batch = orjson.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(8)])
    status, _, _ = await guarded.post(f"/rpc/dev/{KEY}", batch)
    assert status == 200
    status, headers, body = await guarded.post(f"/rpc/dev/{KEY}", batch)  # 16 > burst 10
    reply = orjson.loads(body)
    assert status == 429 and reply["error"]["code"] == -32005 and int(headers["Retry-After"]) >= 1
    await asyncio.sleep(0.5)  # 20/s refills 10 tokens
    assert (await guarded.post(f"/rpc/dev/{KEY}", batch))[0] == 200


async def test_websocket_needs_the_key_and_is_rate_limited_per_message(guarded):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"ws://127.0.0.1:{guarded.app.port}/ws/rpc/dev")
        assert refused.value.status == 401
        async with session.ws_connect(f"ws://127.0.0.1:{guarded.app.port}/ws/rpc/dev?key={KEY}") as ws:
            replies = []
            for i in range(14):
                await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}).decode())
            for _ in range(14):
                replies.append(orjson.loads((await ws.receive(timeout=5)).data))
            limited = [r for r in replies if "error" in r]
            assert len(limited) >= 3 and all(r["error"]["code"] == -32005 for r in limited)
            assert {r["id"] for r in replies} == set(range(14))
        async with session.ws_connect(f"ws://127.0.0.1:{guarded.app.port}/ws/rpc/dev/{KEY}") as ws:
            await asyncio.sleep(0.6)
            await ws.send_str(BODY.decode())
            assert orjson.loads((await ws.receive(timeout=5)).data)["result"] == "0x7a69"


async def test_per_ip_limit_uses_forwarded_for_only_when_trusted(start_livechain, proxies):
    extra = "auth: {per_ip: {rate: 1, burst: 2}, trust_forwarded_for: true}\n"
    lc = await start_livechain(config_text(dev_chain(proxies), extra))
    statuses = [(await lc.post("/rpc/dev", BODY, {"X-Forwarded-For": "10.0.0.1"}))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert (await lc.post("/rpc/dev", BODY, {"X-Forwarded-For": "10.0.0.2, 1.1.1.1"}))[0] == 200
