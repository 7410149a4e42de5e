"""eth_getLogs splitting against providers that limit ranges (tests/rpc_proxy.py, the refusals of real
providers), and archive routing between an archive and a pruned node of one chain (tests/twins.py).

The split test is a scaled copy of the 50,000-block case (`bench/logs_split.py` runs that one): 5,000 blocks
with providers limited to 100 and 200 blocks make as many chunks as 50,000 with 1,000 and 2,000.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from livechain.devnet import Anvil
from tests.conftest import chain_yaml, config_text, provider_yaml, wait_for
from tests.evm_helpers import deploy_emitter, emit, receipt
from tests.rpc_proxy import RpcProxy

BLOCKS = 5_000


def span(params: list) -> int:
    flt = params[0]
    return int(flt["toBlock"], 16) - int(flt["fromBlock"], 16) + 1


async def ask(url: str, method: str, params: list) -> bytes:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    async with aiohttp.ClientSession() as session, session.post(url, data=body,
                                                                 headers={"content-type": "application/json"}) as r:
        return await r.read()


@pytest.fixture
async def long_chain():
    """One node with BLOCKS blocks and a log every ~700 of them (pruned history: logs are all kept)."""
    node = await Anvil(block_time=None, extra_args=("--prune-history",)).start()
    try:
        address = await deploy_emitter(node)
        while int(await node.rpc("eth_blockNumber"), 16) < BLOCKS - 700:
            await receipt(node, await emit(node, address))
            await node.rpc("anvil_mine", [hex(700)])
        yield node, address
    finally:
        await node.stop()


async def test_a_range_wider_than_every_provider_accepts_is_split_and_merged_into_exactly_the_nodes_logs(
    start_livechain, long_chain
):
    """Providers limited to 100 and 200 blocks (refusing in Alchemy's and geth's words) and one with
    `max_logs_range: 100, split_logs: false`: one client call over 5,000 blocks returns exactly the node's
    logs, the limits are learned from the refusals, the fixed provider never gets a range over its limit.
    Then result-count refusals (`halving`)."""
    node, address = long_chain
    async with RpcProxy(node, logs_range_limit=100, limit_style="alchemy") as p0, \
            RpcProxy(node, logs_range_limit=200, limit_style="geth") as p1, \
            RpcProxy(node, logs_range_limit=100, limit_style="quicknode") as fixed:
        providers = (provider_yaml("p0", p0.url) + provider_yaml("p1", p1.url)
                     + f"      - {{id: fixed, http_url: '{fixed.url}', max_logs_range: 100, split_logs: false}}\n")
        lc = await start_livechain(config_text(chain_yaml("dev", 31337, providers, max_block_range=0,
                                                          strategy="round_robin", health_interval="1s")))
        chain = lc.chain()
        assert await wait_for(lambda: all(p.head is not None for p in chain.pool.providers))
        head = hex(max(p.head for p in chain.pool.providers))
        for query in ({"fromBlock": "0x0", "toBlock": head}, {"address": address, "fromBlock": "0x1", "toBlock": head}):
            status, _, raw = await lc.post("/rpc/dev", orjson.dumps(
                {"jsonrpc": "2.0", "id": 7, "method": "eth_getLogs", "params": [query]}))
            expected = await ask(node.url, "eth_getLogs", [query])
            assert status == 200 and orjson.loads(raw) == orjson.loads(expected) and raw == expected
            assert len(orjson.loads(raw)["result"]) >= 6
        assert chain.provider("p0").capabilities.logs_limit == 100  # learned from "up to a 100 block range"
        assert chain.provider("p1").capabilities.logs_limit == 200  # learned from "max 200"
        assert all(span(params) <= 100 for params in fixed.calls("eth_getLogs"))  # never over its limit
        assert fixed.calls("eth_getLogs") == []  # and never a chunk: splitting is off for it
        chunks = [span(params) for params in p1.calls("eth_getLogs") if span(params) <= 200]
        assert len(chunks) >= 2 * (BLOCKS // 200) - 2 and p1.refused["eth_getLogs"] <= 2
    await halving(start_livechain, node, address)


async def halving(start_livechain, node: Anvil, address: str) -> None:
    """A provider that refuses with a result-count message naming no range ("query returned more than 10000
    results") for anything over 300 blocks: chunks of 1,000 are halved down to 250, and the answer is whole."""
    async with RpcProxy(node, logs_range_limit=300, limit_style="infura") as p0:
        lc = await start_livechain(config_text(chain_yaml("dev", 31337, provider_yaml("p0", p0.url),
                                                          max_block_range=0, health_interval="1s")))
        query = {"address": address, "fromBlock": "0x0", "toBlock": hex(3_999)}
        status, _, raw = await lc.post("/rpc/dev", orjson.dumps(
            {"jsonrpc": "2.0", "id": 7, "method": "eth_getLogs", "params": [query]}))
        assert status == 200 and raw == await ask(node.url, "eth_getLogs", [query])
        accepted = [span(params) for params in p0.calls("eth_getLogs") if span(params) <= 300]
        assert accepted and max(accepted) == 250 and sum(accepted) == 4_000


# ---------------------------------------------------------------------------------------------- archive


async def test_old_state_goes_to_the_archive_node_and_the_pruned_one_is_never_asked_for_it(start_livechain):
    """Two nodes of one chain, the first (by priority) keeping 4 states: after the start probe teaches it is
    pruned, state of old blocks — by number, and by a hash of unknown age — goes only to the archive node;
    recent state may go to either; the client never sees a pruned-state error."""
    from tests.twins import Twins

    async with Twins(2, extra_args={0: ("--prune-history", "4")}) as twins:
        for _ in range(12):
            await twins.send_raw(twins.sign(to="0x" + "22" * 20, value=10**15))
            await twins.mine()
        async with RpcProxy(twins[0]) as pruned, RpcProxy(twins[1]) as archive:
            providers = provider_yaml("pruned", pruned.url, priority=0) + provider_yaml("archive", archive.url, priority=1)
            lc = await start_livechain(config_text(chain_yaml("dev", 31337, providers, health_interval="200ms")))
            chain = lc.chain()
            assert await wait_for(lambda: chain.provider("pruned").capabilities.archive is False)
            assert chain.provider("archive").capabilities.archive is not False
            pruned.reset_counts()
            old_hash = (await twins[1].rpc("eth_getBlockByNumber", ["0x2", False]))["hash"]
            account = twins.account.address
            for block in ("0x1", "0x2", "0x5", {"blockHash": old_hash}):
                reply = await lc.rpc("eth_getBalance", [account, block])
                expected = await twins[1].rpc("eth_getBalance", [account, block])
                assert reply["result"] == expected and reply["_provider"] == "archive", (block, reply)
            assert pruned.counts["eth_getBalance"] == 0
            recent = await lc.rpc("eth_getBalance", [account, "latest"])
            assert recent["_provider"] == "pruned" and recent["result"] == await twins[1].rpc("eth_getBalance", [account, "latest"])


async def test_a_pruned_state_refusal_fails_over_and_teaches_the_provider_its_depth(start_livechain):
    """`archive: auto` not yet probed (the chain was too young): the first old-state query meets the pruned
    node's refusal, fails over to the archive node (the client gets the answer), and the next one goes straight
    to the archive node."""
    from tests.twins import Twins

    async with Twins(2, extra_args={0: ("--prune-history", "4")}) as twins:
        async with RpcProxy(twins[0]) as pruned, RpcProxy(twins[1]) as archive:
            providers = provider_yaml("pruned", pruned.url, priority=0) + provider_yaml("archive", archive.url, priority=1)
            lc = await start_livechain(config_text(chain_yaml("dev", 31337, providers, health_interval="200ms")))
            chain = lc.chain()
            assert await wait_for(lambda: all(p.chain_id_ok for p in chain.pool.providers))
            for _ in range(12):
                await twins.mine()
            assert await wait_for(lambda: all(p.head == twins.head for p in chain.pool.providers))
            provider = chain.provider("pruned")
            if provider.capabilities.archive is None:  # the probe had no old block to ask about at start
                first = await lc.rpc("eth_getBalance", [twins.account.address, "0x1"])
                assert "result" in first and first["_provider"] == "archive" and first["_attempts"] in (1, 2)
            assert provider.capabilities.archive is False and provider.capabilities.state_depth is not None
            again = await lc.rpc("eth_getBalance", [twins.account.address, "0x1"])
            assert again["_provider"] == "archive" and again["_attempts"] == 1
