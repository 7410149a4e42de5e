"""The response cache and coalescing against anvil behind counting proxies (tests/rpc_proxy.py): what reaches
the providers, what the clients get — checked byte for byte against the node itself."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from eth_account import Account

from livechain.devnet import Anvil
from livechain.library import request_of
from tests.conftest import chain_yaml, config_text, provider_yaml, wait_for
from tests.evm_helpers import DEV_ADDRESS, DEV_KEY, deploy_emitter, emit, receipt
from tests.rpc_proxy import RpcProxy

ZERO = "0x" + "00" * 20


async def start_cached(start_livechain, proxies: list[RpcProxy], node: Anvil, **chain: Any):
    providers = "".join(provider_yaml(f"p{i}", p.url, ws_url=p.ws_url) for i, p in enumerate(proxies))
    settings = {"cache": "{enabled: true}", "coalesce": "true", "finality_depth": 2, "health_interval": "200ms",
                "strategy": "round_robin", **chain}
    lc = await start_livechain(config_text(chain_yaml("dev", 31337, providers, **settings)))
    await settled(lc, node)
    return lc


async def settled(lc, node: Anvil) -> None:
    """Every provider's head and the head tracker are at the node's head (Livechain has seen what there is)."""
    head = await node.rpc("eth_getBlockByNumber", ["latest", False])
    chain = lc.chain()
    number = int(head["number"], 16)
    assert await wait_for(lambda: all(p.chain_id_ok and p.head == number for p in chain.pool.providers))
    assert await wait_for(lambda: chain.subscriptions.tracker.last_hash == head["hash"])


def upstream(proxies: list[RpcProxy], *methods: str) -> int:
    return sum(p.counts[m] for p in proxies for m in methods)


async def post(lc, method: str, params: list, rid: Any = 1, headers: dict | None = None) -> tuple[bytes, str]:
    body = orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    status, got, raw = await lc.post("/rpc/dev", body, headers)
    assert status == 200, raw
    return raw, got.get("X-Livechain-Cache", "")


async def direct(node: Anvil, method: str, params: list, rid: Any = 1) -> bytes:
    body = orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    async with aiohttp.ClientSession() as session, session.post(node.url, data=body,
                                                                 headers={"content-type": "application/json"}) as r:
        return await r.read()


@pytest.fixture
async def counted(anvil):
    proxies = [RpcProxy(anvil) for _ in range(3)]
    for proxy in proxies:
        await proxy.start()
    try:
        yield proxies
    finally:
        for proxy in proxies:
            await proxy.stop()


# ---------------------------------------------------------------------------------------------- coalescing


async def test_100_identical_requests_in_flight_share_one_upstream_attempt_and_100_different_ones_do_not(
    start_livechain, counted, anvil
):
    lc = await start_cached(start_livechain, counted, anvil, cache="{enabled: false}")
    for proxy in counted:
        proxy.delay_ms = 300  # they overlap
        proxy.reset_counts()
    replies = await asyncio.gather(*(post(lc, "eth_getBalance", [DEV_ADDRESS, "latest"], rid=i) for i in range(100)))
    assert upstream(counted, "eth_getBalance") == 1
    assert [orjson.loads(raw)["id"] for raw, _ in replies] == list(range(100))  # each its own id
    assert len({orjson.loads(raw)["result"] for raw, _ in replies}) == 1
    assert sorted(h for _, h in replies).count("coalesced") == 99
    different = await asyncio.gather(*(post(lc, "eth_getBalance", ["0x" + f"{i:040x}", "latest"], rid=i)
                                       for i in range(100)))
    assert upstream(counted, "eth_getBalance") == 101
    assert all(orjson.loads(raw)["result"] == "0x0" and h != "coalesced" for raw, h in different)


async def test_one_caller_going_away_cancels_nothing_of_the_others(start_livechain, counted, anvil):
    lc = await start_cached(start_livechain, counted, anvil, cache="{enabled: false}")
    for proxy in counted:
        proxy.delay_ms = 300
    first = asyncio.ensure_future(lc.app.request("dev", "eth_getBalance", [DEV_ADDRESS, "latest"]))
    await asyncio.sleep(0.05)
    others = [asyncio.ensure_future(lc.app.request("dev", "eth_getBalance", [DEV_ADDRESS, "latest"])) for _ in range(3)]
    await asyncio.sleep(0.05)
    first.cancel()
    results = await asyncio.gather(*others)
    assert len(set(results)) == 1 and int(results[0], 16) > 0
    assert first.cancelled()
    assert upstream(counted, "eth_getBalance") <= 2  # the first caller's attempt, then one for the others


async def test_an_error_is_shared_like_a_result(start_livechain, counted, anvil):
    """Every provider too slow: ten identical requests in flight get the same -32002 after one round of
    attempts (one per provider), not ten rounds."""
    lc = await start_cached(start_livechain, counted, anvil, cache="{enabled: false}", attempt_timeout="200ms",
                            deadline="3s", breaker="{failure_threshold: 100}")
    for proxy in counted:
        proxy.delay_ms = 1000
        proxy.reset_counts()
    replies = await asyncio.gather(*(post(lc, "eth_getBalance", [DEV_ADDRESS, "0x0"], rid=i) for i in range(10)))
    assert {orjson.loads(raw)["error"]["code"] for raw, _ in replies} == {-32002}
    assert upstream(counted, "eth_getBalance") == 3


async def test_a_signed_transaction_is_never_coalesced_with_another_clients(start_livechain, counted, anvil):
    lc = await start_cached(start_livechain, counted, anvil)
    for proxy in counted:
        proxy.delay_ms = 200
        proxy.reset_counts()
    nonce = int(await anvil.rpc("eth_getTransactionCount", [DEV_ADDRESS, "latest"]), 16)
    raw = Account.sign_transaction({"to": ZERO, "value": 1, "gas": 21000, "gasPrice": 10**10, "nonce": nonce,
                                    "chainId": 31337}, DEV_KEY).raw_transaction.to_0x_hex()
    replies = await asyncio.gather(*(post(lc, "eth_sendRawTransaction", [raw], rid=i) for i in range(5)))
    assert upstream(counted, "eth_sendRawTransaction") == 5
    assert all(h == "bypass" for _, h in replies)


# ---------------------------------------------------------------------------------------------- cache


async def workload(lc, node: Anvil, blocks: range, address: str, txs: list[str]) -> list[tuple[str, list]]:
    """An extraction over final blocks: blocks with transactions, receipts, transactions and receipts by
    hash, logs over ranges, state at those blocks."""
    requests: list[tuple[str, list]] = []
    for n in blocks:
        requests += [("eth_getBlockByNumber", [hex(n), True]), ("eth_getBlockReceipts", [hex(n)]),
                     ("eth_getBalance", [DEV_ADDRESS, hex(n)]), ("eth_getCode", [address, hex(n)]),
                     ("eth_getTransactionCount", [DEV_ADDRESS, hex(n)]), ("eth_call", [{"to": address}, hex(n)])]
    for tx in txs:
        requests += [("eth_getTransactionByHash", [tx]), ("eth_getTransactionReceipt", [tx])]
    requests += [("eth_getLogs", [{"address": address, "fromBlock": hex(blocks.start), "toBlock": hex(blocks.stop - 1)}]),
                 ("eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(blocks.stop - 1)}]),
                 ("eth_chainId", []), ("net_version", [])]
    return requests


DAPP_MIX = [("eth_blockNumber", []), ("eth_gasPrice", []), ("eth_getBalance", [DEV_ADDRESS, "latest"]),
            ("eth_getBalance", [DEV_ADDRESS])]


async def test_a_replayed_workload_costs_a_tenth_upstream_and_every_answer_is_the_nodes_byte_for_byte(
    start_livechain, counted, anvil
):
    address = await deploy_emitter(anvil)
    txs = [await emit(anvil, address) for _ in range(6)]
    for tx in txs:
        await receipt(anvil, tx)
    for _ in range(4):  # the blocks with transactions sink below the finalized head (finality_depth 2)
        await anvil.rpc("evm_mine", [])
    lc = await start_cached(start_livechain, counted, anvil)
    head = int(await anvil.rpc("eth_blockNumber"), 16)
    final = range(1, head - 2)
    requests = await workload(lc, anvil, final, address, txs)
    methods = {m for m, _ in requests}
    seen_by: dict[str, list[str]] = {}
    for replay in range(2):
        for proxy in counted:
            proxy.reset_counts()
        for i, (method, params) in enumerate(requests + DAPP_MIX):
            raw, cache = await post(lc, method, params, rid=i)
            assert raw == await direct(anvil, method, params, rid=i), (method, params)
            seen_by.setdefault(f"{method} {params}", []).append(cache)
        if replay == 0:
            first = upstream(counted, *methods)
        else:
            second = upstream(counted, *methods)
    assert first >= len(requests) - 2 and second <= first // 10, (first, second)
    not_hit = {k: c for k, c in seen_by.items() if c != ["miss", "hit"]}
    # eth_getBalance without a block parameter is the node's error each time (never described, never kept)
    assert not_hit == {f"eth_getBalance {[DEV_ADDRESS]}": ["bypass", "bypass"]}, not_hit
    await what_the_cache_did_is_reported(lc, seen_by)


async def what_the_cache_did_is_reported(lc, seen_by: dict[str, list[str]]) -> None:
    """The API (overview and chain), Prometheus and the headers clients saw tell one story."""
    statuses = [c for seen in seen_by.values() for c in seen]
    hits = statuses.count("hit")
    overview = next(c for c in (await lc.api("/api/chains"))["chains"] if c["name"] == "dev")["cache"]
    assert overview["enabled"] is True and overview["hits"] == hits and overview["misses"] >= statuses.count("miss")
    assert overview["saved"] == hits + overview["coalesced"] and 0 < overview["hit_ratio"] < 1
    assert (await lc.api("/api/chains/dev"))["cache"] == overview
    _, _, metrics = await lc.get("/metrics")
    text = metrics.decode()
    prometheus_hits = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                          if line.startswith("livechain_cache_requests_total{") and 'chain="dev"' in line
                          and 'result="hit"' in line)
    assert prometheus_hits == hits
    entries = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("livechain_cache_entries{")]
    assert entries and 0 < entries[0] <= overview["kept"]


async def test_a_client_asking_no_cache_gets_a_providers_answer_and_refreshes_the_entry(start_livechain, counted, anvil):
    lc = await start_cached(start_livechain, counted, anvil)
    assert (await post(lc, "eth_chainId", []))[1] == "miss"
    assert (await post(lc, "eth_chainId", []))[1] == "hit"
    counted[0].reset_counts(), counted[1].reset_counts(), counted[2].reset_counts()
    raw, cache = await post(lc, "eth_chainId", [], headers={"Cache-Control": "no-cache"})
    assert cache == "bypass" and orjson.loads(raw)["result"] == "0x7a69" and upstream(counted, "eth_chainId") >= 1
    assert (await post(lc, "eth_chainId", []))[1] == "hit"


async def test_head_answers_live_until_the_next_head(start_livechain, counted, anvil):
    lc = await start_cached(start_livechain, counted, anvil)
    raw, cache = await post(lc, "eth_blockNumber", [])
    before = orjson.loads(raw)["result"]
    assert (await post(lc, "eth_blockNumber", []))[1] == "hit"
    await anvil.rpc("evm_mine", [])
    await settled(lc, anvil)
    raw, cache = await post(lc, "eth_blockNumber", [])
    assert cache == "miss" and int(orjson.loads(raw)["result"], 16) == int(before, 16) + 1


@pytest.mark.parametrize("depth", [1, 3, 5])
async def test_after_a_reorg_no_answer_about_an_orphaned_block_comes_from_the_cache(start_livechain, counted, anvil, depth):
    address = await deploy_emitter(anvil)
    for _ in range(8):
        await receipt(anvil, await emit(anvil, address))
    lc = await start_cached(start_livechain, counted, anvil, finality_depth=20)  # nothing here is final
    head = int(await anvil.rpc("eth_blockNumber"), 16)
    questions = [(m, p) for n in range(head - depth - 1, head + 1) for m, p in (
        ("eth_getBlockByNumber", [hex(n), False]), ("eth_getBalance", [DEV_ADDRESS, hex(n)]),
        ("eth_getLogs", [{"address": address, "fromBlock": hex(n), "toBlock": hex(n)}]))]
    for method, params in questions:
        await post(lc, method, params)
    assert sum(1 for m, p in questions if m == "eth_getBlockByNumber") == depth + 2
    tx = {"from": DEV_ADDRESS, "to": ZERO, "value": "0x1", "gas": "0x5208"}
    await anvil.rpc("anvil_reorg", [depth, [[tx, 0]]])
    await anvil.rpc("evm_mine", [])
    await settled(lc, anvil)
    assert lc.chain().subscriptions.tracker.reorgs >= 1
    for i, (method, params) in enumerate(questions):
        raw, cache = await post(lc, method, params, rid=i)
        assert raw == await direct(anvil, method, params, rid=i), (method, params, cache)


async def test_a_lagging_providers_answers_are_never_kept():
    """Two nodes of one chain, the second two blocks behind: what it answers is not kept; once it has caught
    up, its answers are."""
    from tests.twins import Twins

    async with Twins(2) as twins:
        await twins.mine(3)
        proxies = [RpcProxy(node) for node in twins.nodes]
        for proxy in proxies:
            await proxy.start()
        try:
            await _lagging_scenario(twins, proxies)
        finally:
            for proxy in proxies:
                await proxy.stop()


async def _lagging_scenario(twins, proxies) -> None:
    from livechain.app import App
    from livechain.config import ConfigStore, parse_config

    providers = "".join(provider_yaml(f"p{i}", p.url, priority=1 - i) for i, p in enumerate(proxies))  # p1 first
    text = config_text(chain_yaml("dev", 31337, providers, cache="{enabled: true}", finality_depth=50,
                                  health_interval="100ms", strategy="priority"))
    app = App(ConfigStore(None, parse_config(text)))
    await app.start("127.0.0.1", 0)
    try:
        chain = app.registry.resolve("dev")
        async with twins.lagging(1):
            await twins.mine(2)
            assert await wait_for(lambda: chain.provider("p0").head == twins.head and chain.provider("p1").head == twins.head - 2)
            # freshness sends reads at latest to p0 (at the head); pinned to p1, two blocks behind: never kept
            pinned = chain.route(provider="p1")
            for _ in range(2):
                answer = await chain.call(request_of("eth_getBalance", [DEV_ADDRESS, "latest"]), pinned)
                assert answer.provider == "p1" and answer.cache == "miss"
            assert chain.cache_counts.totals().get("kept", 0) == 0
            assert (await app.answer("dev", "eth_getBalance", [DEV_ADDRESS, "latest"])).provider == "p0"
            assert chain.cache_counts.totals()["kept"] == 1  # p0 is at the head: its answer is kept
            assert (await app.answer("dev", "eth_getBalance", [DEV_ADDRESS, "latest"])).cache == "hit"
        assert await wait_for(lambda: chain.provider("p1").head == twins.head)
        caught_up = await chain.call(request_of("eth_getBalance", [DEV_ADDRESS, "latest"]), pinned, None, True)
        assert caught_up.provider == "p1" and chain.cache_counts.totals()["kept"] == 2  # caught up: kept
    finally:
        await app.stop()
