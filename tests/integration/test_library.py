"""Livechain as a Python library (`from livechain import Livechain`) against anvil behind fault proxies: requests,
batches and raced subscriptions in-process, with no HTTP server unless asked; config from a dict or a file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from livechain import Livechain
from livechain.config import ConfigError
from livechain.errors import (
    InvalidParams,
    InvalidRequest,
    LimitExceeded,
    MethodNotFound,
    RpcError,
    UnknownChain,
)
from livechain.faults import Fault
from livechain.library import SubscriptionOverflow
from tests.conftest import FAKE_KEY, wait_for
from tests.evm_helpers import deploy_emitter, emit

ZERO = "0x" + "00" * 20


def config(proxies, **chain: object) -> dict:
    """The same schema as the YAML file, as a dict; every provider URL carries the planted key. The response
    cache and coalescing are off unless a test turns them on."""
    providers = [{"id": f"p{i}", "http_url": f"{p.url}/?apikey={FAKE_KEY}{i}", "ws_url": f"{p.ws_url}/"}
                 for i, p in enumerate(proxies)]
    return {
        "persistence": {"sqlite_path": None},
        "chains": {"dev": {"chain_id": 31337, "strategy": "priority", "health_interval": "200ms",
                           "max_block_range": 100, "attempt_timeout": "500ms", "deadline": "4s",
                           "cache": {"enabled": False}, "coalesce": False,
                           "providers": providers, **chain}},
    }


async def test_a_livechain_from_a_dict_answers_in_process_and_listens_on_no_port(proxies):
    async with Livechain.from_config(config(proxies)) as lc:
        assert await lc.request("dev", "eth_chainId") == "0x7a69"
        assert await lc.request("31337", "eth_getBalance", [ZERO, "latest"]) == "0x0"
        answer = await lc.answer("dev", "eth_chainId", rid="x")
        assert answer.provider == "p0" and answer.attempts == 1 and answer.body.startswith(b'{"jsonrpc":"2.0","id":"x"')
        assert lc.edge is None and lc.port == 0


async def test_errors_raise_with_their_json_rpc_code(proxies):
    async with Livechain.from_config(config(proxies)) as lc:
        with pytest.raises(RpcError) as caught:  # the provider's own error: not failed over
            await lc.request("dev", "eth_getBalance", ["not-an-address", "latest"])
        assert caught.value.code in (-32602, -32600) and caught.value.message
        with pytest.raises(MethodNotFound):
            await lc.request("dev", "eth_sign", [ZERO, "0x00"])
        with pytest.raises(LimitExceeded) as limit:
            await lc.request("dev", "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x1f4"}])
        assert limit.value.code == -32005 and limit.value.data == {"limit": 100, "requested": 501}
        with pytest.raises(UnknownChain):
            await lc.request("nowhere", "eth_chainId")
        with pytest.raises(InvalidRequest):
            await lc.request("dev", "eth_chainId", "not params")
        with pytest.raises(InvalidParams):  # Python objects JSON cannot carry: the caller's error, no traceback
            await lc.request("dev", "eth_getBalance", [{1, 2}, "latest"])


async def test_a_batch_answers_each_request_in_order_and_fails_over_like_any_request(proxies):
    proxies[0].set(Fault(mode="refuse"))
    async with Livechain.from_config(config(proxies)) as lc:
        results = await lc.request_batch("dev", [("eth_chainId", []), ("eth_sign", []), ("eth_getBalance", [ZERO, "latest"])])
        assert results[0] == "0x7a69" and isinstance(results[1], MethodNotFound) and results[2] == "0x0"
        with pytest.raises(LimitExceeded):
            await lc.request_batch("dev", [("eth_chainId", [])] * 101)


async def test_a_subscription_delivers_every_new_head_once_in_order_and_logs_of_a_filter(anvil, proxies):
    address = await deploy_emitter(anvil)
    async with Livechain.from_config(config(proxies)) as lc:
        chain = lc.chain("dev")
        assert await wait_for(lambda: len(chain.subscriptions.heads.live) == 3)  # raced on every provider
        with lc.subscribe("dev", "newHeads") as heads, lc.subscribe("dev", "logs", {"address": address}) as logs:
            for _ in range(3):
                await anvil.rpc("evm_mine", [])
            await emit(anvil, address)
            await anvil.rpc("evm_mine", [])
            numbers = []
            async with asyncio.timeout(10):
                async for head in heads:
                    numbers.append(int(head["number"], 16))
                    if len(numbers) == 4:
                        break
                log = await anext(logs)
        assert numbers == list(range(numbers[0], numbers[0] + 4))
        assert log["address"] == address.lower() and log["removed"] is False
        assert chain.subscriptions.clients_by_kind() == {"newHeads": 0}  # the logs feed went with its client


async def test_a_consumer_that_does_not_read_loses_its_subscription_and_nobody_else_does(anvil, proxies):
    async with Livechain.from_config(config(proxies)) as lc:
        assert await wait_for(lambda: len(lc.chain("dev").subscriptions.heads.live) == 3)
        slow = lc.subscribe("dev", "newHeads", queue=2)
        with lc.subscribe("dev", "newHeads") as fine:
            for _ in range(5):
                await anvil.rpc("evm_mine", [])
            async with asyncio.timeout(10):
                got = [await anext(fine) for _ in range(5)]
            assert len(got) == 5
            with pytest.raises(SubscriptionOverflow):
                async with asyncio.timeout(10):
                    async for _ in slow:
                        pass


async def test_from_a_file_and_reload(tmp_path: Path, proxies):
    path = tmp_path / "livechain.yaml"
    one = f"persistence: {{sqlite_path: null}}\nchains:\n  dev:\n    chain_id: 31337\n    providers:\n      - {{id: a, http_url: '{proxies[0].url}/'}}\n"
    path.write_text(one)
    async with Livechain.from_config(path) as lc:
        assert await lc.request("dev", "eth_chainId") == "0x7a69"
        path.write_text(one + f"      - {{id: b, http_url: '{proxies[1].url}/'}}\n")
        result = lc.reload()
        assert result["ok"] is True and [p.id for p in lc.chain("dev").pool.providers] == ["a", "b"]
        path.write_text("chains: {dev: {chain_id: nope}}\n")
        assert lc.reload()["ok"] is False
        assert await lc.request("dev", "eth_chainId") == "0x7a69"  # the last good config stays


def test_a_bad_config_names_the_dotted_path_and_never_the_value(proxies):
    bad = config(proxies)
    bad["chains"]["dev"]["providers"][0]["http_url"] = f"ftp://{FAKE_KEY}.example"
    with pytest.raises(ConfigError) as caught:
        Livechain.from_config(bad)
    assert "chains.dev.providers[0].http_url" in str(caught.value)
    assert FAKE_KEY not in str(caught.value)


async def test_the_web_edge_can_run_beside_the_library(proxies):
    async with Livechain.from_config(config(proxies)) as lc:
        port = await lc.serve("127.0.0.1", 0, admin_token="")
        assert port > 0 and lc.port == port
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/rpc/dev",
                                    json={"jsonrpc": "2.0", "id": 7, "method": "eth_chainId"}) as resp:
                assert (await resp.json()) == {"jsonrpc": "2.0", "id": 7, "result": "0x7a69"}
        assert await lc.request("dev", "eth_chainId") == "0x7a69"
