"""The HTTP JSON-RPC endpoint against real anvil providers: routes, spec edge cases, policy, headers."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.conftest import FAKE_KEY, chain_yaml, config_text, dev_chain, provider_yaml


@pytest.fixture
async def lc(start_livechain, proxies):
    return await start_livechain(config_text(dev_chain(proxies, batch_limit=5)))


async def test_single_request_is_answered_with_provider_and_attempt_headers(lc):
    """A read goes through; X-Livechain-Provider names the provider id, X-Livechain-Attempts counts tries."""
    reply = await lc.rpc("eth_chainId")
    assert reply["result"] == "0x7a69" and reply["id"] == 1
    assert reply["_provider"] == "p0" and reply["_attempts"] == 1


async def test_chain_is_addressed_by_name_or_decimal_chain_id(lc):
    assert (await lc.rpc("eth_chainId", path="/rpc/31337"))["result"] == "0x7a69"


async def test_unknown_chain_is_a_json_rpc_error_with_http_404(lc):
    status, _, body = await lc.post("/rpc/nochain", b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
    reply = orjson.loads(body)
    assert status == 404 and reply["error"]["code"] == -32001 and "nochain" in reply["error"]["message"]


async def test_strategy_and_provider_routes(lc):
    """/rpc/{strategy}/{chain} uses that strategy; /rpc/provider/{id}/{chain} pins one provider."""
    seen = {(await lc.rpc("eth_chainId", path="/rpc/round_robin/dev"))["_provider"] for _ in range(6)}
    assert seen == {"p0", "p1", "p2"}
    for _ in range(3):
        assert (await lc.rpc("eth_chainId", path="/rpc/provider/p2/dev"))["_provider"] == "p2"
    status, _, body = await lc.post("/rpc/provider/nope/dev", b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
    assert status == 404 and b"nope" in body


@pytest.mark.parametrize(
    "rid", ["0", "42", "-7", '"abc"', '""', "null", "18446744073709551616", "123456789012345678901234567890"]
)
async def test_ids_are_preserved_exactly(lc, rid):
    """number, string and null ids come back exactly as sent — even integers beyond 64 bits."""
    status, _, body = await lc.post("/rpc/dev", f'{{"jsonrpc":"2.0","id":{rid},"method":"eth_chainId"}}'.encode())
    assert status == 200
    assert f'"id":{rid},'.encode() in body and b'"result":"0x7a69"' in body


async def test_batch_preserves_order_routes_items_and_omits_notifications(lc):
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # notification: no item in the reply
        {"jsonrpc": "2.0", "id": 2, "method": "eth_sign", "params": []},  # denied by policy
        {"jsonrpc": "2.0", "id": 3},  # invalid
        {"jsonrpc": "2.0", "id": 4, "method": "eth_getBalance", "params": ["0x" + "00" * 20, "latest"]},
    ]
    status, headers, body = await lc.post("/rpc/dev", orjson.dumps(batch))
    out = orjson.loads(body)
    assert status == 200 and [item["id"] for item in out] == ["a", 2, 3, 4]
    assert out[0]["result"] == "0x7a69"
    assert out[1]["error"]["code"] == -32601
    assert out[2]["error"]["code"] == -32600
    assert out[3]["result"] == "0x0"
    assert int(headers["X-Livechain-Attempts"]) == 3  # the two forwarded requests + the notification


async def test_batch_limit_and_empty_batch_are_clear_errors(lc):
    status, _, body = await lc.post("/rpc/dev", orjson.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(6)]))
    reply = orjson.loads(body)
    assert status == 200 and reply["error"]["code"] == -32005 and "limit of 5" in reply["error"]["message"]
    reply = orjson.loads((await lc.post("/rpc/dev", b"[]"))[2])
    assert reply == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request: empty batch"}}


async def test_all_notification_batch_and_single_notification_get_no_content(lc):
    status, _, body = await lc.post("/rpc/dev", b'{"jsonrpc":"2.0","method":"eth_chainId"}')
    assert status == 204 and body == b""
    status, _, body = await lc.post("/rpc/dev", b'[{"jsonrpc":"2.0","method":"eth_chainId"}]')
    assert status == 204 and body == b""


@pytest.mark.parametrize(
    "body, code",
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"', -32700),
        (b"\xff\xfe\xfd", -32700),
        (b"", -32700),
        (b"42", -32600),
        (b'{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":"x"}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"eth_nonexistent"}', -32601),
        (b'{"jsonrpc":"2.0","id":1,"method":"eth_sendTransaction","params":[{}]}', -32601),
        (b'{"jsonrpc":"2.0","id":1,"method":"anvil_mine","params":[]}', -32601),
        (b'{"jsonrpc":"2.0","id":1,"method":"debug_traceTransaction","params":[]}', -32601),
    ],
)
async def test_spec_error_codes_travel_with_http_200(lc, body, code):
    status, _, raw = await lc.post("/rpc/dev", body)
    reply = orjson.loads(raw)
    assert status == 200 and reply["error"]["code"] == code and reply["jsonrpc"] == "2.0"


async def test_invalid_params_from_the_provider_is_returned_verbatim_not_failed_over(lc):
    """-32602 from the provider is the answer: one attempt, the provider's own message."""
    reply = await lc.rpc("eth_getBalance", ["not-an-address", "latest"])
    assert reply["error"]["code"] in (-32602, -32600) and reply["_attempts"] == 1


async def test_subscribe_over_http_points_to_the_websocket_endpoint(lc):
    reply = await lc.rpc("eth_subscribe", ["newHeads"])
    assert reply["error"]["code"] == -32601 and "/ws/rpc/dev" in reply["error"]["message"]
    reply = await lc.rpc("eth_unsubscribe", ["0x1"])
    assert reply["error"]["code"] == -32601


async def test_oversized_body_gets_413_with_a_json_rpc_error(start_livechain, proxies):
    lc = await start_livechain(config_text(dev_chain(proxies), "server: {max_body_bytes: 1000}\n"))
    status, _, body = await lc.post("/rpc/dev", b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["' + b"x" * 2000 + b'"]}')
    assert status == 413 and orjson.loads(body)["error"]["code"] == -32005


async def test_dev_chain_may_allow_everything_and_deny_wins(start_livechain, proxies, anvil):
    chain = dev_chain(proxies, methods="{allow: ['*'], deny: ['anvil_setBalance']}")
    lc = await start_livechain(config_text(chain))
    assert (await lc.rpc("anvil_mine", [1]))["result"] is None
    assert (await lc.rpc("anvil_setBalance", ["0x" + "11" * 20, "0x1"]))["error"]["code"] == -32601


async def test_get_logs_range_limit_is_a_clear_error(start_livechain, proxies):
    lc = await start_livechain(config_text(dev_chain(proxies, max_block_range=100)))
    reply = await lc.rpc("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x1f4"}])
    assert reply["error"]["code"] == -32005 and reply["error"]["data"] == {"limit": 100, "requested": 501}
    assert (await lc.rpc("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x1"}]))["result"] == []


async def test_concurrent_clients_are_all_answered(lc):
    replies = await asyncio.gather(*(lc.rpc("eth_chainId", rid=i) for i in range(200)))
    assert sorted(r["id"] for r in replies) == list(range(200))
    assert all(r["result"] == "0x7a69" for r in replies)


async def test_health_api_and_metrics_never_show_a_provider_url(lc):
    await lc.rpc("eth_chainId")
    await asyncio.sleep(0.5)
    health = await lc.api("/api/health")
    assert health["chains"]["dev"]["providers"]["p0"]["breaker"] == "closed"
    assert health["chains"]["dev"]["best_head"] is not None
    providers = await lc.api("/api/chains/dev/providers")
    p0 = next(p for p in providers["providers"] if p["id"] == "p0")
    assert p0["methods"]["eth_chainId"]["count"] >= 1 and p0["methods"]["eth_chainId"]["p50_ms"] > 0
    status, _, metrics = await lc.get("/metrics")
    assert status == 200 and b'livechain_rpc_latency_ms_bucket{chain="dev"' in metrics
    for blob in (orjson.dumps(health), orjson.dumps(providers), metrics):
        assert FAKE_KEY.encode() not in blob and b"127.0.0.1:" not in blob


async def test_cors_preflight_and_headers(lc):
    async with lc.session.options(lc.base + "/rpc/dev", headers={"Origin": "https://app.example"}) as resp:
        assert resp.status == 204 and resp.headers["access-control-allow-origin"] == "*"
        assert "POST" in resp.headers["access-control-allow-methods"]
    _, headers, _ = await lc.post("/rpc/dev", b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}', {"Origin": "https://a.example"})
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_chain_yaml_helpers_render_valid_config():
    text = config_text(chain_yaml("x", 5, provider_yaml("a", "http://h/")))
    assert "chain_id: 5" in text


async def test_block_number_never_goes_backwards_across_providers(start_livechain, anvil):
    """Two providers a few blocks apart (one a fork that stopped), round robin: eth_blockNumber answers
    never decrease. Freshness sends them to the provider at the head; asked of the lagging one (pinned), its
    answer is raised to the highest one already returned."""
    from livechain.devnet import Anvil
    from tests.conftest import chain_yaml, provider_yaml

    for _ in range(3):
        await anvil.rpc("evm_mine", [])
    async with Anvil(block_time=None, fork_url=anvil.url) as stale:
        for _ in range(2):
            await anvil.rpc("evm_mine", [])
        providers = provider_yaml("live", anvil.url + "/") + provider_yaml("stale", stale.url + "/")
        lc = await start_livechain(config_text(chain_yaml("dev", 31337, providers, strategy="round_robin",
                                                          max_lag_blocks=10, health_interval="10s")))
        answers = [int((await lc.rpc("eth_blockNumber", rid=i))["result"], 16) for i in range(10)]
        assert answers == sorted(answers) and answers[-1] == int(await anvil.rpc("eth_blockNumber"), 16)
        providers_seen = {(await lc.rpc("eth_blockNumber", rid=i))["_provider"] for i in range(4)}
        assert providers_seen == {"live"}
        pinned = await lc.rpc("eth_blockNumber", path="/rpc/provider/stale/dev")
        assert pinned["_provider"] == "stale" and int(pinned["result"], 16) == answers[-1]
        assert int(await stale.rpc("eth_blockNumber"), 16) < answers[-1]


async def test_members_beyond_the_spec_are_not_forwarded_and_expect_continue_is_honoured(lc):
    """A request with an extra member still works (anvil would reject the extra member: Livechain forwards a
    clean re-encoding); a client that sends Expect: 100-continue gets the interim response first."""
    body = b'{"jsonrpc":"2.0","id":9,"method":"eth_chainId","params":[],"pad":"' + b"x" * 100 + b'"}'
    status, _, raw = await lc.post("/rpc/dev", body)
    assert status == 200 and orjson.loads(raw) == {"jsonrpc": "2.0", "id": 9, "result": "0x7a69"}
    reader, writer = await asyncio.open_connection("127.0.0.1", lc.app.port)
    plain = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
    writer.write(b"POST /rpc/dev HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(plain))
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(plain)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200")
