"""The test kit itself against real anvil: `RpcProxy` (tests/rpc_proxy.py) and `Twins` (tests/twins.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import orjson
import pytest

from livechain.devnet import Anvil
from tests.evm_helpers import DEV_ADDRESS, TOPIC
from tests.rpc_proxy import RpcProxy
from tests.twins import Twins

WS_DEADLINE = 20  # seconds to wait for a WebSocket frame: generous, the machine is shared


def req(method: str, params: list | None = None, rid: int = 1) -> dict:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}


async def post(url: str, body: bytes) -> tuple[int, str, bytes]:
    """(status, content-type, body bytes) of one POST."""
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            return resp.status, resp.headers["Content-Type"], await resp.read()


async def call(url: str, method: str, params: list | None = None) -> dict:
    return orjson.loads((await post(url, orjson.dumps(req(method, params))))[2])


async def mine(node: Anvil, blocks: int) -> None:
    for _ in range(blocks):
        await node.rpc("evm_mine")


# ---- RpcProxy -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps(req("eth_getBlockByNumber", ["0x0", True], rid=7)),
        orjson.dumps(req("no_such_method", rid="s")),
        orjson.dumps([req("eth_chainId", rid=1), {"jsonrpc": "2.0", "method": "eth_blockNumber"}, req("nope", rid=3)]),
        b"not json",
    ],
    ids=["single", "error", "batch", "garbage"],
)
async def test_a_reply_through_the_proxy_is_byte_identical_to_the_nodes(anvil, rpc_proxy, body):
    """The same body sent to the node and through the proxy gets the same status, content-type and bytes."""
    await mine(anvil, 2)
    direct = await post(anvil.url, body)
    proxied = await post(rpc_proxy.url, body)
    assert proxied == direct
    assert direct[0] == 200 and direct[2].startswith((b"{", b"["))


async def test_requests_are_counted_per_method_over_http_batches_and_websocket(rpc_proxy):
    """Every received request object counts once under its method: single, batch items, WS text and
    binary frames; reset_counts() forgets them."""
    await call(rpc_proxy.url, "eth_chainId")
    batch = [req("eth_blockNumber", rid=1), req("eth_blockNumber", rid=2), req("eth_chainId", rid=3)]
    status, _, body = await post(rpc_proxy.url, orjson.dumps(batch))
    assert status == 200 and len(orjson.loads(body)) == 3
    async with aiohttp.ClientSession() as session, session.ws_connect(rpc_proxy.ws_url) as ws:
        await ws.send_str(orjson.dumps(req("eth_gasPrice", rid=10)).decode())
        await ws.send_bytes(orjson.dumps(req("eth_chainId", rid=11)))
        replies = [orjson.loads(await ws.receive_str(timeout=WS_DEADLINE)) for _ in range(2)]
    assert sorted(r["id"] for r in replies) == [10, 11]
    assert next(r for r in replies if r["id"] == 11)["result"] == "0x7a69"
    assert rpc_proxy.counts == Counter(eth_chainId=3, eth_blockNumber=2, eth_gasPrice=1)
    assert rpc_proxy.total == 6 and not rpc_proxy.refused
    rpc_proxy.reset_counts()
    assert rpc_proxy.total == 0 and not rpc_proxy.seen


async def test_websocket_notifications_from_the_node_reach_the_client(anvil, rpc_proxy):
    """A newHeads subscription made through the proxy delivers the node's notifications."""
    async with aiohttp.ClientSession() as session, session.ws_connect(rpc_proxy.ws_url) as ws:
        await ws.send_str(orjson.dumps(req("eth_subscribe", ["newHeads"])).decode())
        sub = orjson.loads(await ws.receive_str(timeout=WS_DEADLINE))["result"]
        await anvil.rpc("evm_mine")
        note = orjson.loads(await ws.receive_str(timeout=WS_DEADLINE))
    assert note["method"] == "eth_subscription" and note["params"]["subscription"] == sub
    assert int(note["params"]["result"]["number"], 16) == 1
    assert rpc_proxy.counts["eth_subscribe"] == 1


STYLES = {
    "alchemy": (
        -32602,
        "Log response size exceeded. You can make eth_getLogs requests with up to a 1000 block range. "
        "Based on your parameters, this block range should work: [0x0, 0x3e7]",
    ),
    "infura": (-32005, "query returned more than 10000 results"),
    "geth": (-32000, "block range too large: max 1000"),
    "generic": (-32000, "block range too large: max 1000"),
    "quicknode": (-32602, "eth_getLogs is limited to a 1000 range"),
}


@pytest.mark.parametrize("style", list(STYLES))
async def test_an_over_limit_get_logs_is_refused_in_the_providers_style_and_never_forwarded(rpc_proxy, style):
    """A span of limit + 1 blocks is answered by the proxy (HTTP 200, the style's error) and never reaches
    the node; a span of exactly the limit is forwarded. (The node here is a second, counting proxy.)"""
    async with RpcProxy(rpc_proxy, logs_range_limit=1000, limit_style=style) as limited:
        status, ctype, body = await post(
            limited.url, orjson.dumps(req("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x3e8"}], rid=5))
        )
        code, message = STYLES[style]
        assert (status, ctype) == (200, "application/json")
        assert orjson.loads(body) == {"jsonrpc": "2.0", "id": 5, "error": {"code": code, "message": message}}
        assert rpc_proxy.counts["eth_getLogs"] == 0
        within = await call(limited.url, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x3e7"}])
        assert within["result"] == []
        assert rpc_proxy.counts["eth_getLogs"] == 1
        assert limited.counts["eth_getLogs"] == 2 and limited.refused == Counter(eth_getLogs=1)


async def test_block_tags_and_absent_bounds_resolve_against_the_nodes_head(anvil, rpc_proxy):
    """With the head at 5 and a limit of 3: an absent toBlock or "latest" means 5, "earliest" 0, a blockHash
    one block; set_limit() changes the limit at run time (None: no limit), with a custom message."""
    await mine(anvil, 5)
    genesis_hash = (await anvil.rpc("eth_getBlockByNumber", ["0x0", False]))["hash"]
    async with RpcProxy(rpc_proxy, logs_range_limit=3, limit_message="too wide", limit_code=-1) as limited:

        async def refused(flt: dict) -> bool:
            reply = await call(limited.url, "eth_getLogs", [flt])
            assert ("error" in reply) != ("result" in reply), reply
            return reply.get("error") == {"code": -1, "message": "too wide"}

        assert await refused({"fromBlock": "0x0"})
        assert await refused({"fromBlock": "0x2", "toBlock": "latest"})
        assert await refused({"fromBlock": "earliest", "toBlock": "0x3"})
        assert not await refused({"fromBlock": "0x3"})
        assert not await refused({"fromBlock": "earliest", "toBlock": "0x2"})
        assert not await refused({})
        assert not await refused({"blockHash": genesis_hash, "fromBlock": "0x0"})
        limited.set_limit(None)
        assert not await refused({"fromBlock": "0x0"})
        limited.set_limit(6)
        assert not await refused({"fromBlock": "0x0"})
        assert limited.refused["eth_getLogs"] == 3
        assert rpc_proxy.counts["eth_getLogs"] == 6


async def test_a_batch_gets_its_refusal_in_place_and_its_other_answers_from_the_node(rpc_proxy):
    """In a batch, only the over-limit item is refused; the others are answered by the node, in order."""
    async with RpcProxy(rpc_proxy, logs_range_limit=10, limit_style="quicknode") as limited:
        batch = [
            req("eth_chainId", rid=1),
            req("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x64"}], rid=2),
            req("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x9"}], rid=3),
        ]
        status, _, body = await post(limited.url, orjson.dumps(batch))
    replies = orjson.loads(body)
    assert status == 200 and [r["id"] for r in replies] == [1, 2, 3]
    assert replies[0]["result"] == "0x7a69" and replies[2]["result"] == []
    assert replies[1]["error"] == {"code": -32602, "message": "eth_getLogs is limited to a 10 range"}
    assert rpc_proxy.counts == Counter(eth_chainId=1, eth_getLogs=1)


async def test_an_over_limit_get_logs_on_a_websocket_is_refused_on_it(rpc_proxy):
    """Over a WebSocket too, the refusal comes back on the socket and the node never sees the request."""
    async with (
        RpcProxy(rpc_proxy, logs_range_limit=10) as limited,
        aiohttp.ClientSession() as session,
        session.ws_connect(limited.ws_url) as ws,
    ):
        await ws.send_str(orjson.dumps(req("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x64"}], rid=9)).decode())
        reply = orjson.loads(await ws.receive_str(timeout=WS_DEADLINE))
        await ws.send_str(orjson.dumps(req("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x1"}], rid=10)).decode())
        forwarded = orjson.loads(await ws.receive_str(timeout=WS_DEADLINE))
    assert reply == {"jsonrpc": "2.0", "id": 9, "error": {"code": -32000, "message": "block range too large: max 10"}}
    assert forwarded == {"jsonrpc": "2.0", "id": 10, "result": []}
    assert rpc_proxy.counts["eth_getLogs"] == 1 and limited.refused["eth_getLogs"] == 1


async def test_seen_keeps_the_last_requests_with_their_params(anvil):
    """`seen` holds the last `seen_size` request objects in order; `calls()` gives one method's params."""
    async with RpcProxy(anvil, seen_size=3) as proxy:
        for n in range(4):
            await call(proxy.url, "eth_getLogs", [{"fromBlock": hex(n), "toBlock": hex(n + 1)}])
        await call(proxy.url, "eth_chainId")
        assert [r["method"] for r in proxy.seen] == ["eth_getLogs", "eth_getLogs", "eth_chainId"]
        assert proxy.calls("eth_getLogs") == [[{"fromBlock": "0x2", "toBlock": "0x3"}], [{"fromBlock": "0x3", "toBlock": "0x4"}]]
        assert proxy.counts["eth_getLogs"] == 4


async def test_delay_ms_holds_each_http_reply_at_least_that_long(rpc_proxy):
    """With delay_ms set at run time, a reply takes at least the delay (a lower bound only)."""
    rpc_proxy.delay_ms = 300
    started = time.monotonic()
    assert (await call(rpc_proxy.url, "eth_chainId"))["result"] == "0x7a69"
    assert time.monotonic() - started >= 0.25  # asyncio may wake a clock tick early


# ---- Twins ----------------------------------------------------------------------------------------


async def block_hashes(node: Anvil) -> list[str]:
    head = int(await node.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]
    blocks = await asyncio.gather(*(node.rpc("eth_getBlockByNumber", [hex(n), False]) for n in range(head + 1)))
    return [b["hash"] for b in blocks]  # type: ignore[index]


async def test_twins_mine_identical_blocks_with_transactions_and_logs(twins):
    """After a deployment, log-emitting calls and empty blocks, both nodes have the same hash at every
    height and return the same logs, byte for byte."""
    address = await twins.deploy_emitter()
    hashes = await twins.emit(address, count=2)
    await twins.mine(3)
    head_hash = await twins.check_same()
    first, second = [await block_hashes(node) for node in twins.nodes]
    assert first == second and len(first) == 6 and first[-1] == head_hash
    assert len(set(first)) == 6
    flt = orjson.dumps(req("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": address}]))
    logs = [await post(node.url, flt) for node in twins.nodes]
    assert logs[0] == logs[1]
    found = orjson.loads(logs[0][2])["result"]
    assert [log["transactionHash"] for log in found] == hashes and found[0]["topics"] == [TOPIC]


async def test_twins_notice_a_node_that_mined_a_different_block(twins):
    """A transaction sent to one node behind Twins' back makes its next block differ: mine() says so."""
    await twins.nodes[1].rpc("eth_sendRawTransaction", [twins.sign(to=DEV_ADDRESS, value=1)])
    with pytest.raises(AssertionError, match="node 1"):
        await twins.mine()


async def test_a_pruned_twin_refuses_old_state_while_the_archive_twin_answers():
    """On one chain, `--prune-history 4` keeps no state for block 1 ten blocks later (anvil's
    BlockOutOfRangeError); the archive node answers; both answer the same at the head."""
    async with Twins(2, extra_args={1: ("--prune-history", "4")}) as twins:
        await twins.send_raw(twins.sign(to="0x" + "22" * 20, value=10**18))
        await twins.mine(11)
        await twins.check_same()
        archive, pruned = [await call(node.url, "eth_getBalance", [DEV_ADDRESS, "0x1"]) for node in twins.nodes]
        assert int(archive["result"], 16) > 0
        assert pruned["error"]["code"] == -32602
        assert pruned["error"]["message"] == "BlockOutOfRangeError: block height is 11 but requested was 1"
        at_head = [await call(node.url, "eth_getBalance", [DEV_ADDRESS, "latest"]) for node in twins.nodes]
        assert at_head[0] == at_head[1] and at_head[0]["result"] == archive["result"]


async def test_a_lagging_twin_falls_behind_then_catches_up_to_identical_hashes(twins):
    """Inside `lagging(1)` node 1 sees neither the new transactions nor the new blocks; at exit it is
    replayed to the very same blocks."""
    address = await twins.deploy_emitter()
    async with twins.lagging(1):
        await twins.emit(address, count=3)
        await twins.mine(2)
        heads = [int(await node.rpc("eth_blockNumber"), 16) for node in twins.nodes]
        assert heads == [4, 1] and twins.behind(1) == 3
        with pytest.raises(AssertionError, match="heads differ"):
            await twins.check_same()
    await twins.check_same()
    assert await block_hashes(twins.nodes[0]) == await block_hashes(twins.nodes[1])


async def test_a_node_left_out_of_mine_catches_up_including_transactions_it_already_holds(twins):
    """`mine(only=[0])` leaves node 1 behind with the block's transaction in its mempool; it cannot mine
    until `catch_up()`, which gives it the same block (not the transaction twice)."""
    tx = await twins.send_raw(twins.sign(to=DEV_ADDRESS, value=1))
    await twins.mine(2, only=[0])
    with pytest.raises(ValueError, match="behind"):
        await twins.mine(only=[1])
    await twins.catch_up()
    await twins.mine()
    await twins.check_same()
    receipts = [await node.rpc("eth_getTransactionReceipt", [tx]) for node in twins.nodes]
    assert receipts[0] == receipts[1] and receipts[0]["blockNumber"] == "0x1"  # type: ignore[index]
