"""Stateful filters served by Livechain itself: geth's semantics over HTTP and WebSocket, from the chain's raced
feeds (not a provider's filter), across failover and reorgs; ids bound to their owner; bounds; expiry."""

from __future__ import annotations

import asyncio

import pytest

from livechain.devnet import Anvil
from livechain.faults import Fault, FaultProxy
from tests.conftest import chain_yaml, config_text, provider_yaml
from tests.evm_helpers import deploy_emitter, emit


async def wait_for(predicate, timeout: float = 20.0, step: float = 0.05) -> bool:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(step)
    return True


@pytest.fixture
async def env(start_livechain):
    """anvil (blocks on demand) behind two fault proxies (HTTP and WS), behind Livechain."""
    async with Anvil(block_time=None) as node:
        proxies = [FaultProxy(node.host, node.port, name=f"p{i}") for i in range(2)]
        for proxy in proxies:
            await proxy.start()
        providers = "".join(provider_yaml(f"p{i}", f"{p.url}/", ws_url=f"{p.ws_url}/") for i, p in enumerate(proxies))
        lc = await start_livechain(config_text(chain_yaml(
            "dev", 31337, providers, health_interval="300ms", filters="{ttl: 2s, max_per_client: 3, max_entries: 5}",
            max_resume_blocks=20,
        )))
        address = await deploy_emitter(node)
        chain = lc.chain()

        async def synced() -> bool:  # a block mined while the subscriptions were being made is seen with the next
            head = int(await node.rpc("eth_blockNumber"), 16)
            if chain.head() == head:
                return True
            await node.rpc("evm_mine")
            await asyncio.sleep(0.2)
            return False

        await wait_for(synced)
        try:
            yield node, lc, address, proxies
        finally:
            for proxy in proxies:
                await proxy.stop()


async def mine(node, lc, n: int = 1) -> None:
    chain = lc.chain()
    for _ in range(n):
        await node.rpc("evm_mine")
    target = int(await node.rpc("eth_blockNumber"), 16)

    async def reached() -> bool:
        return chain.head() == target

    try:
        await wait_for(reached)
    except TimeoutError:
        heads = [(p.id, p.head, p.breaker.state) for p in chain.pool.providers]
        raise AssertionError(f"head stream at {chain.head()}, node at {target}: providers {heads}") from None


async def test_block_and_log_filters_return_changes_since_the_last_poll(env):
    node, lc, address, _ = env
    created = int(await node.rpc("eth_blockNumber"), 16)
    blocks = (await lc.rpc("eth_newBlockFilter"))["result"]
    logs = (await lc.rpc("eth_newFilter", [{"address": address}]))["result"]
    assert blocks != logs and len(blocks) == 34 and blocks.startswith("0x")
    assert (await lc.rpc("eth_getFilterChanges", [blocks]))["result"] == []
    await emit(node, address)
    await mine(node, lc)
    changes = (await lc.rpc("eth_getFilterChanges", [blocks]))["result"]
    head = await node.rpc("eth_getBlockByNumber", ["latest", False])
    assert changes[-1] == head["hash"]
    got = (await lc.rpc("eth_getFilterChanges", [logs]))["result"]
    truth = await node.rpc("eth_getLogs", [{"address": address, "fromBlock": "0x0", "toBlock": "latest"}])
    assert got and got == [entry for entry in truth if int(entry["blockNumber"], 16) > created]
    assert (await lc.rpc("eth_getFilterChanges", [logs]))["result"] == []  # nothing new since
    # eth_getFilterLogs: the criteria's logs (no fromBlock: latest, as geth), as the node answers them
    assert (await lc.rpc("eth_getFilterLogs", [logs]))["result"] == await node.rpc("eth_getLogs", [{"address": address}])
    ranged = (await lc.rpc("eth_newFilter", [{"address": address, "fromBlock": "0x0"}]))["result"]
    assert (await lc.rpc("eth_getFilterLogs", [ranged]))["result"] == truth
    assert (await lc.rpc("eth_uninstallFilter", [logs]))["result"] is True
    assert (await lc.rpc("eth_uninstallFilter", [logs]))["result"] is False
    error = (await lc.rpc("eth_getFilterChanges", [logs]))["error"]
    assert error == {"code": -32000, "message": "filter not found"}


async def test_a_log_filter_from_a_past_block_returns_the_backfill_first_then_new_logs_once(env):
    node, lc, address, _ = env
    for _ in range(3):
        await emit(node, address)
    await mine(node, lc)
    fid = (await lc.rpc("eth_newFilter", [{"address": address, "fromBlock": "0x1"}]))["result"]
    await emit(node, address)
    await mine(node, lc)
    truth = await node.rpc("eth_getLogs", [{"address": address, "fromBlock": "0x1", "toBlock": "latest"}])
    first = (await lc.rpc("eth_getFilterChanges", [fid]))["result"]
    assert first == truth  # the past ones, then the new one, in chain order, none twice
    await emit(node, address)
    await mine(node, lc)
    later = (await lc.rpc("eth_getFilterChanges", [fid]))["result"]
    new_truth = await node.rpc("eth_getLogs", [{"address": address, "fromBlock": "0x1", "toBlock": "latest"}])
    assert later == new_truth[len(truth):]


async def test_filters_are_bound_to_their_owner_bounded_and_expire(env):
    node, lc, _, _ = env
    fid = (await lc.rpc("eth_newBlockFilter"))["result"]
    # another client (an API key) cannot poll or uninstall it: the same error as an unknown id
    chain = lc.chain()
    from livechain.errors import FilterNotFound
    from livechain.jsonrpc.messages import Request

    with pytest.raises(FilterNotFound):
        await chain.call(Request("eth_getFilterChanges", [fid], 1), owner="someone-else")
    other = await chain.call(Request("eth_uninstallFilter", [fid], 1), owner="someone-else")
    assert other.value().result is False
    # at most 3 per client
    for _ in range(2):
        assert "result" in await lc.rpc("eth_newBlockFilter")
    refused = await lc.rpc("eth_newBlockFilter")
    assert refused["error"]["code"] == -32005 and "per client" in refused["error"]["message"]
    # a buffer of 5: the 6th block overflows it; the next poll says so and the filter is gone
    await mine(node, lc, 6)
    overflow = (await lc.rpc("eth_getFilterChanges", [fid]))["error"]
    assert overflow["code"] == -32000 and "buffered more than 5" in overflow["message"]
    assert (await lc.rpc("eth_getFilterChanges", [fid]))["error"]["message"] == "filter not found"
    # not polled for the ttl (2 s): expired
    keep = (await lc.rpc("eth_newBlockFilter"))["result"]
    await asyncio.sleep(2.5)
    assert (await lc.rpc("eth_getFilterChanges", [keep]))["error"]["message"] == "filter not found"
    assert len(chain.filters) == 0  # the other two, not polled either: gone by the chain's timer (every ttl/4)
    assert chain.filters.expired >= 3


async def test_filters_survive_the_loss_of_the_provider_and_work_over_websocket(env):
    node, lc, address, proxies = env
    from tests.ws.client import WsClient

    ws = await WsClient().connect(lc.base.replace("http", "ws") + "/ws/rpc/dev")

    async def request(method, params=None):
        reply = await ws.call(method, params)
        assert "result" in reply, reply
        return reply["result"]

    ws.request = request
    try:
        created = lc.chain().head()
        fid = await ws.request("eth_newFilter", [{"address": address}])
        blocks = await ws.request("eth_newBlockFilter")
        proxies[0].set(Fault(mode="refuse"))
        seen: list[dict] = []
        hashes: list[str] = []
        for _ in range(4):
            await emit(node, address)
            await mine(node, lc)
            seen += await ws.request("eth_getFilterChanges", [fid])
            hashes += await ws.request("eth_getFilterChanges", [blocks])
        proxies[0].clear()
        proxies[1].set(Fault(mode="refuse"))
        for _ in range(3):
            await emit(node, address)
            await mine(node, lc)
            seen += await ws.request("eth_getFilterChanges", [fid])
            hashes += await ws.request("eth_getFilterChanges", [blocks])
        proxies[1].clear()

        async def drained() -> bool:
            nonlocal seen
            seen += await ws.request("eth_getFilterChanges", [fid])
            return len(seen) >= 7

        await wait_for(drained)
    finally:
        await ws.ws.close()
        await ws.session.close()
    head = int(await node.rpc("eth_blockNumber"), 16)
    truth = await node.rpc("eth_getLogs", [{"address": address, "fromBlock": hex(created + 1), "toBlock": "latest"}])
    assert len(truth) == 7 and seen == truth  # every log once, in order, across both providers' outages
    canonical = [(await node.rpc("eth_getBlockByNumber", [hex(n), False]))["hash"] for n in range(created + 1, head + 1)]
    assert hashes == canonical  # every block once, in order


async def test_a_reorg_during_a_log_filter_gives_the_removals_then_the_new_logs(env):
    node, lc, address, _ = env
    from tests.evm_helpers import DEV_ADDRESS, receipt

    fid = (await lc.rpc("eth_newFilter", [{"address": address}]))["result"]
    for _ in range(3):
        await receipt(node, await emit(node, address))
    await mine(node, lc, 0)
    entries: list[dict] = []

    async def polled(count: int):
        async def enough() -> bool:
            entries.extend((await lc.rpc("eth_getFilterChanges", [fid]))["result"])
            return len(entries) >= count

        await wait_for(enough)

    await polled(3)
    before = list(entries)
    tx = {"from": DEV_ADDRESS, "to": address, "data": "0x", "gas": "0x30000"}
    await node.rpc("anvil_reorg", [2, [[tx, 0], [tx, 1]]])
    await receipt(node, await emit(node, address))
    canonical = await node.rpc("eth_getLogs", [{"address": address, "fromBlock": "0x0"}])
    seen = {(e["blockHash"], e["logIndex"]) for e in before}

    async def converged() -> bool:
        for entry in (await lc.rpc("eth_getFilterChanges", [fid]))["result"]:
            entries.append(entry)
            key = (entry["blockHash"], entry["logIndex"])
            seen.discard(key) if entry.get("removed") else seen.add(key)
        return seen == {(e["blockHash"], e["logIndex"]) for e in canonical}

    await wait_for(converged)
    stream = entries[len(before):]
    removals = [i for i, e in enumerate(stream) if e.get("removed")]
    assert removals, "the orphaned logs come back with removed: true"
    new_branch = {e["blockHash"] for e in canonical} - {e["blockHash"] for e in before}
    assert max(removals) < min(i for i, e in enumerate(stream) if e["blockHash"] in new_branch)


async def test_a_resumed_subscription_gets_exactly_the_missed_heads_and_logs_then_live_ones(env):
    """A client drops for 10 blocks and resubscribes with fromBlock = last seen + 1: the missed blocks (and
    logs), in order, none twice, then the live ones."""
    node, lc, address, _ = env
    from tests.ws.client import WsClient

    url = lc.base.replace("http", "ws") + "/ws/rpc/dev"
    client = await WsClient().connect(url)
    heads = await client.subscribe("newHeads")
    logs = await client.subscribe("logs", {"address": address})
    await emit(node, address)
    await mine(node, lc)
    last_head = (await client.next(heads))
    while client.notifications[heads].qsize():
        last_head = await client.next(heads)
    last_log = await client.next(logs)
    await client.close()
    for _ in range(5):  # 10 blocks while the client is away, 5 with a log
        await emit(node, address)
        await mine(node, lc)
    client = await WsClient().connect(url)
    try:
        after = int(last_head["number"], 16) + 1
        heads = await client.subscribe("newHeads", {"fromBlock": hex(after)})
        logs = await client.subscribe("logs", {"address": address, "fromBlock": hex(int(last_log["blockNumber"], 16) + 1)})
        await emit(node, address)  # and live ones
        await mine(node, lc)
        head = int(await node.rpc("eth_blockNumber"), 16)
        got = [await client.next(heads) for _ in range(head - after + 1)]
        assert [int(h["number"], 16) for h in got] == list(range(after, head + 1))
        truth = [(await node.rpc("eth_getBlockByNumber", [hex(n), False]))["hash"] for n in range(after, head + 1)]
        assert [h["hash"] for h in got] == truth
        expected = await node.rpc("eth_getLogs", [{"address": address, "fromBlock": hex(int(last_log["blockNumber"], 16) + 1)}])
        assert len(expected) == 6
        assert [await client.next(logs) for _ in range(6)] == expected
        await asyncio.sleep(0.5)
        assert client.drain(heads) == [] and client.drain(logs) == []  # nothing twice
        # beyond max_resume_blocks (20 here): a clear error
        await mine(node, lc, max(0, 22 - head))
        reply = await client.call("eth_subscribe", ["newHeads", {"fromBlock": "0x0"}])
        assert reply["error"]["code"] == -32005 and "max_resume_blocks = 20" in reply["error"]["message"]
        bad = await client.call("eth_subscribe", ["newHeads", {"fromBlock": "soon"}])
        assert bad["error"]["code"] == -32602
    finally:
        await client.close()


async def test_a_subscription_that_cannot_deliver_is_an_error_not_an_id(start_livechain, anvil):
    """Providers without a WebSocket: newHeads and logs are served by the HTTP fallback (an id at once);
    newPendingTransactions has no fallback: a clear error instead of an id that would never deliver."""
    from tests.ws.client import WsClient

    lc = await start_livechain(config_text(chain_yaml("dev", 31337, provider_yaml("a", anvil.url + "/"),
                                                      health_interval="300ms")))
    client = await WsClient().connect(lc.base.replace("http", "ws") + "/ws/rpc/dev")
    try:
        chain = lc.chain()
        await wait_for(lambda: asyncio.sleep(0, chain.pool.best_head is not None))
        assert "result" in await client.call("eth_subscribe", ["newHeads"])
        assert "result" in await client.call("eth_subscribe", ["logs", {}])
        reply = await client.call("eth_subscribe", ["newPendingTransactions"])
        assert reply["error"]["code"] == -32002 and "newPendingTransactions" in reply["error"]["message"]
        pending = await lc.rpc("eth_newPendingTransactionFilter")
        assert pending["error"]["code"] == -32002
    finally:
        await client.close()
