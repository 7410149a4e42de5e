"""Real client libraries over Livechain's WebSocket endpoint: web3.py, viem and ethers, unchanged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from web3 import AsyncWeb3, WebSocketProvider

from livechain.devnet import Anvil
from livechain.faults import FaultProxy
from tests.conftest import chain_yaml, config_text, provider_yaml
from tests.evm_helpers import deploy_emitter, emit

JS = Path(__file__).parent / "js"


@pytest.fixture
async def chain_env(start_livechain):
    """anvil (0.4 s blocks) with a log-emitting contract, behind two proxies, behind Livechain."""
    async with Anvil(block_time=0.4) as node:
        proxies = [FaultProxy(node.host, node.port, name=f"p{i}") for i in range(2)]
        for proxy in proxies:
            await proxy.start()
        providers = "".join(
            provider_yaml(f"p{i}", f"{p.url}/", ws_url=f"{p.ws_url}/") for i, p in enumerate(proxies)
        )
        lc = await start_livechain(config_text(chain_yaml("dev", 31337, providers, health_interval="500ms")))
        address = await deploy_emitter(node)
        try:
            yield node, lc, address
        finally:
            for proxy in proxies:
                await proxy.stop()


def client_counts(lc) -> dict[str, int]:
    manager = lc.chain().subscriptions
    counts: dict[str, int] = {}
    for feed in manager.feeds.values():
        counts[feed.kind] = counts.get(feed.kind, 0) + len(feed.clients)
    return counts


async def run_js(script: str, url: str, address: str, node, lc) -> dict:
    proc = await asyncio.create_subprocess_exec(
        "node", str(JS / script), url, address, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(JS.parents[2]),
    )
    result: dict = {}
    try:
        async with asyncio.timeout(45):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                msg = json.loads(line)
                if msg["event"] == "error":
                    result.setdefault("errors", []).append(msg["message"])
                elif msg["event"] == "subscribed":
                    assert client_counts(lc).get("logs") == 1
                    await emit(node, address)
                elif msg["event"] == "unwatched":
                    result.update(msg)
                    await asyncio.sleep(0.5)
                    result["counts_after_unwatch"] = client_counts(lc)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode()
    assert proc.returncode == 0, stderr
    return result


@pytest.mark.parametrize("script", ["viem_client.mjs", "ethers_client.mjs"])
async def test_js_client_subscribes_to_heads_and_logs_and_unsubscribes(chain_env, script):
    node, lc, address = chain_env
    result = await run_js(script, f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev", address, node, lc)
    assert "errors" not in result, result
    blocks = result["blocks"]
    assert len(blocks) >= 3 and blocks == sorted(blocks) and len(set(blocks)) == len(blocks)
    assert len(result["logs"]) >= 1
    assert result["counts_after_unwatch"].get("logs", 0) == 0
    assert result["counts_after_unwatch"].get("newHeads", 0) == 0


async def test_web3py_websocket_provider_subscribes_to_heads_and_logs_and_unsubscribes(chain_env):
    node, lc, address = chain_env
    heads: list[int] = []
    logs: list[str] = []
    async with AsyncWeb3(WebSocketProvider(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")) as w3:
        assert await w3.eth.chain_id == 31337
        heads_id = await w3.eth.subscribe("newHeads")
        logs_id = await w3.eth.subscribe("logs", {"address": address})
        await emit(node, address)
        async with asyncio.timeout(20):
            async for message in w3.socket.process_subscriptions():
                if message["subscription"] == heads_id:
                    heads.append(message["result"]["number"])
                elif message["subscription"] == logs_id:
                    logs.append(message["result"]["transactionHash"].hex())
                if len(heads) >= 3 and logs:
                    break
        assert await w3.eth.unsubscribe(heads_id) is True
        assert await w3.eth.unsubscribe(logs_id) is True
        assert client_counts(lc).get("logs", 0) == 0 and client_counts(lc).get("newHeads", 0) == 0
    assert heads == sorted(heads) and len(set(heads)) == len(heads)
    assert len(logs) >= 1
