"""Reorgs (anvil_reorg), slow clients, and the WebSocket endpoint's JSON-RPC edge cases."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import orjson
import pytest

from livechain.devnet import Anvil
from livechain.faults import FaultProxy
from tests.conftest import chain_yaml, config_text, provider_yaml
from tests.evm_helpers import DEV_ADDRESS, deploy_emitter, emit, receipt
from tests.ws.client import WsClient


@pytest.fixture
async def env(start_livechain):
    """anvil mining on demand, behind two proxies, behind Livechain with a small WS send queue."""
    async with Anvil(block_time=None) as node:
        proxies = [FaultProxy(node.host, node.port, name=f"p{i}") for i in range(2)]
        for proxy in proxies:
            await proxy.start()
        providers = "".join(provider_yaml(f"p{i}", f"{p.url}/", ws_url=f"{p.ws_url}/") for i, p in enumerate(proxies))
        extra = "server: {ws: {send_queue: 64, max_subscriptions: 1000}}\n"
        lc = await start_livechain(config_text(chain_yaml("dev", 31337, providers, health_interval="300ms"), extra))
        try:
            yield node, lc
        finally:
            for proxy in proxies:
                await proxy.stop()


async def test_reorg_resends_orphaned_logs_as_removed_before_the_new_chains_logs(env):
    """After anvil_reorg, the client's log stream, read as add/remove operations, equals the node's
    canonical logs; every removal comes before the first log of the new branch."""
    node, lc = env
    address = await deploy_emitter(node)
    client = await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")
    try:
        sid = await client.subscribe("logs", {"address": address})
        await asyncio.sleep(0.5)  # provider subscriptions in place
        for _ in range(3):
            await receipt(node, await emit(node, address))
        received = [await client.next(sid) for _ in range(3)]
        assert all(not log.get("removed") for log in received)
        tx = {"from": DEV_ADDRESS, "to": address, "data": "0x", "gas": "0x30000"}
        await node.rpc("anvil_reorg", [2, [[tx, 0], [tx, 1]]])
        await receipt(node, await emit(node, address))  # the new chain grows one more block
        canonical = await node.rpc("eth_getLogs", [{"address": address, "fromBlock": "0x0"}])
        seen: set[tuple] = {(log["blockHash"], log["logIndex"]) for log in received}
        stream = []
        async with asyncio.timeout(10):
            while seen != {(log["blockHash"], log["logIndex"]) for log in canonical}:
                log = await client.next(sid)
                stream.append(log)
                key = (log["blockHash"], log["logIndex"])
                if log.get("removed"):
                    seen.discard(key)
                else:
                    seen.add(key)
        removals = [i for i, log in enumerate(stream) if log.get("removed")]
        assert removals, "the orphaned logs were re-sent with removed: true"
        new_branch = {log["blockHash"] for log in canonical} - {log["blockHash"] for log in received}
        first_new = min(i for i, log in enumerate(stream) if log["blockHash"] in new_branch and not log.get("removed"))
        assert max(removals) < first_new
        await asyncio.sleep(0.5)
        assert client.drain(sid) == []  # nothing more: no duplicates
        assert lc.chain().subscriptions.tracker.reorgs >= 1
    finally:
        await client.close()


async def raw_ws_client(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw client with tiny receive buffers that completes the handshake and then stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


def masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    header = bytes([0x81, 0x80 | length]) if length < 126 else bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
    return header + mask + data


async def test_a_client_that_cannot_keep_up_is_closed_with_a_reason_while_others_keep_receiving(env):
    node, lc = env
    port = lc.app.port
    slow_reader, slow = await raw_ws_client(port, "/ws/rpc/dev")
    good = await WsClient().connect(f"ws://127.0.0.1:{port}/ws/rpc/dev")
    try:
        for i in range(600):  # 600 subscriptions: each head becomes 600 notifications for the slow client
            slow.write(masked_text(orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": ["newHeads"]})))
        await slow.drain()
        good_sid = await good.subscribe("newHeads")
        sessions = lc.app.edge.ws.sessions
        async with asyncio.timeout(5):
            while not any(x.subscriptions == 600 for x in sessions):
                await asyncio.sleep(0.02)
        slow_session = next(x for x in sessions if x.subscriptions == 600)
        for _ in range(60):
            await node.rpc("evm_mine", [])
            await asyncio.sleep(0.05)
            if slow_session.conn.closed:  # the close frame is on its way; TCP is aborted 2 s later
                break
        tail = b""  # the client wakes up: whole frames, then the close frame with the reason
        async with asyncio.timeout(5):
            while chunk := await slow_reader.read(1 << 16):
                tail += chunk
        assert slow_session not in sessions
        assert slow_session.close_code == 1008
        assert slow_session.close_reason == "client too slow: outbound queue full"
        assert b"client too slow: outbound queue full" in tail[-100:]
        heads = [await good.next(good_sid) for _ in range(3)]
        numbers = [int(h["number"], 16) for h in heads]
        assert numbers == list(range(numbers[0], numbers[0] + 3))
    finally:
        slow.close()
        await good.close()


async def test_ws_json_rpc_edge_cases(env):
    _, lc = env
    client = await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")
    try:
        assert (await client.call("eth_chainId"))["result"] == "0x7a69"
        bad = await client.call("eth_subscribe", ["logs", {"address": "nope"}])
        assert bad["error"]["code"] == -32602
        bad = await client.call("eth_subscribe", ["newHeads", {"x": 1}])
        assert bad["error"]["code"] == -32602
        assert (await client.call("eth_sign", []))["error"]["code"] == -32601
        await client.send_raw("{not json")
        await client.send_raw(b"\xff\xfe")
        await client.send_raw("[]")
        await client.send_raw(orjson.dumps([{"jsonrpc": "2.0", "id": "x", "method": "eth_chainId"},
                                            {"jsonrpc": "2.0", "method": "eth_chainId"}, 5]).decode())
        await asyncio.sleep(0.5)
        codes = [m.get("error", {}).get("code") for m in client.other if isinstance(m, dict)]
        assert codes.count(-32700) == 2 and -32600 in codes
        batch = next(m for m in client.other if isinstance(m, list))
        assert [item.get("id") for item in batch] == ["x", None]
        assert batch[0]["result"] == "0x7a69" and batch[1]["error"]["code"] == -32600
    finally:
        await client.close()


async def test_unknown_ws_chain_is_refused_with_404(env):
    _, lc = env
    reader, writer = await asyncio.open_connection("127.0.0.1", lc.app.port)
    writer.write(b"GET /ws/rpc/nochain HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 404") and b"unknown chain" in reply


async def test_pending_transactions_are_raced_and_delivered_once(env):
    node, lc = env
    client = await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")
    try:
        sid = await client.subscribe("newPendingTransactions")
        await asyncio.sleep(0.5)
        sent = [await node.rpc("eth_sendTransaction", [{"from": DEV_ADDRESS, "to": DEV_ADDRESS, "value": "0x1"}])
                for _ in range(3)]
        got = [await client.next(sid) for _ in range(3)]
        await asyncio.sleep(0.3)
        assert sorted(got) == sorted(sent) and client.drain(sid) == []
        races = lc.chain().store.races()
        assert sum(r.get("newPendingTransactions", {}).get("total", 0) for r in races.values()) == 6
    finally:
        await client.close()


async def test_new_heads_flow_over_http_polling_when_no_provider_has_a_websocket(start_livechain, anvil):
    """A chain whose providers are HTTP-only still serves newHeads subscriptions (from the health checks),
    in order and without gaps."""
    lc = await start_livechain(config_text(chain_yaml("dev", 31337, provider_yaml("h0", anvil.url + "/"), health_interval="100ms")))
    client = await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")
    try:
        sid = await client.subscribe("newHeads")
        await asyncio.sleep(0.3)
        for _ in range(3):
            await anvil.rpc("evm_mine", [])
            await asyncio.sleep(0.05)  # faster than the polling: some heads are backfilled
        await anvil.rpc("evm_mine", [])
        heads = []
        async with asyncio.timeout(5):
            while len(heads) < 4:
                heads.append(await client.next(sid))
        numbers = [int(h["number"], 16) for h in heads]
        assert numbers == list(range(numbers[0], numbers[0] + 4))
    finally:
        await client.close()
