"""The same behaviour on every entry point: HTTP, WebSocket and in-process (the `Livechain` library), all three
through one pipeline (`Chain.call`), against anvil behind fault proxies.

Each test runs once per edge. An edge here is a small client that turns one request into the JSON-RPC reply
object a client would see: over HTTP and WebSocket the bytes Livechain sent; in-process the value
`Livechain.request` returned or the error it raised (code, message, data), as a reply object.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import orjson
import pytest

from livechain.errors import LivechainError
from livechain.faults import Fault
from tests.conftest import FAKE_KEY, config_text, dev_chain, wait_for
from tests.ws.client import WsClient

FAST = dict(
    attempt_timeout="400ms", deadline="4s", batch_limit=5, max_block_range=100,
    breaker="{failure_threshold: 3, recovery_timeout: 30s, success_threshold: 2}",
)
ZERO = "0x" + "00" * 20


class HttpEdge:
    name = "http"

    def __init__(self, lc) -> None:
        self.lc = lc

    async def call(self, method: str, params: Any = None, rid: Any = 1) -> dict:
        body = orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []})
        status, _, raw = await self.lc.post("/rpc/dev", body)
        assert status == 200, (status, raw)
        return orjson.loads(raw)

    async def batch(self, items: list[tuple[str, Any]]) -> list[dict] | dict:
        body = orjson.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(items)])
        status, _, raw = await self.lc.post("/rpc/dev", body)
        assert status == 200, (status, raw)
        return orjson.loads(raw)

    async def close(self) -> None:
        pass


class WsEdge:
    name = "ws"

    def __init__(self, lc) -> None:
        self.lc = lc
        self.client = WsClient()

    async def open(self) -> WsEdge:
        await self.client.connect(f"ws://127.0.0.1:{self.lc.app.port}/ws/rpc/dev")
        return self

    async def call(self, method: str, params: Any = None, rid: Any = 1) -> dict:
        reply = await self.client.call(method, params or [])
        reply["id"] = rid  # WsClient numbers its own requests; the id round trip is tested in tests/ws
        return reply

    async def batch(self, items: list[tuple[str, Any]]) -> list[dict] | dict:
        before = len(self.client.other)
        await self.client.send_raw(orjson.dumps(
            [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(items)]
        ).decode())
        assert await wait_for(lambda: len(self.client.other) > before)
        return self.client.other[before]

    async def close(self) -> None:
        await self.client.close()


class InProcessEdge:
    """`Livechain.request` / `request_batch` on the very Livechain the other edges serve."""

    name = "inprocess"

    def __init__(self, lc) -> None:
        self.livechain = lc.app

    async def call(self, method: str, params: Any = None, rid: Any = 1) -> dict:
        try:
            return {"jsonrpc": "2.0", "id": rid, "result": await self.livechain.request("dev", method, params)}
        except LivechainError as exc:
            return {"jsonrpc": "2.0", "id": rid, "error": exc.to_error()}

    async def batch(self, items: list[tuple[str, Any]]) -> list[dict] | dict:
        try:
            results = await self.livechain.request_batch("dev", items)
        except LivechainError as exc:
            return {"jsonrpc": "2.0", "id": None, "error": exc.to_error()}
        return [
            {"jsonrpc": "2.0", "id": i, "error": r.to_error()} if isinstance(r, LivechainError)
            else {"jsonrpc": "2.0", "id": i, "result": r}
            for i, r in enumerate(results)
        ]

    async def close(self) -> None:
        pass


EDGES = {"http": HttpEdge, "ws": WsEdge, "inprocess": InProcessEdge}


@pytest.fixture(params=list(EDGES))
async def edge(request, start_livechain, proxies):
    lc = await start_livechain(config_text(dev_chain(proxies, **FAST)))
    pool = lc.chain().pool
    assert await wait_for(lambda: all(p.chain_id_ok and p.head is not None for p in pool.providers))
    made = EDGES[request.param](lc)
    if isinstance(made, WsEdge):
        await made.open()
    made.lc, made.proxies = lc, proxies
    try:
        yield made
    finally:
        await made.close()


async def test_a_read_is_answered_with_the_providers_result(edge):
    reply = await edge.call("eth_chainId", rid="abc")
    assert reply == {"jsonrpc": "2.0", "id": "abc", "result": "0x7a69"}


async def test_a_method_the_chain_does_not_serve_is_refused_with_32601(edge):
    for method in ("eth_sign", "anvil_mine", "debug_traceTransaction"):
        reply = await edge.call(method, [])
        assert reply["error"]["code"] == -32601, (method, reply)


async def test_a_logs_query_over_the_range_limit_is_refused_before_any_provider_sees_it(edge):
    reply = await edge.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x1f4"}])
    assert reply["error"]["code"] == -32005 and reply["error"]["data"] == {"limit": 100, "requested": 501}
    assert (await edge.call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x1"}]))["result"] == []
    store = edge.lc.chain().store
    store.fold()
    logs_attempts = sum(m.get("eth_getLogs", {}).get("count", 0) for m in store.rpc().values())
    assert logs_attempts == 1  # only the query within the limit reached a provider


async def test_a_providers_own_error_is_the_answer_and_is_not_failed_over(edge):
    reply = await edge.call("eth_getBalance", ["not-an-address", "latest"])
    assert reply["error"]["code"] in (-32602, -32600), reply
    p1 = edge.lc.chain().provider("p1")
    assert p1.stats.get("eth_getBalance") is None  # p0 answered; nobody failed over to p1


async def test_a_batch_is_answered_in_order_with_each_items_own_outcome(edge):
    replies = await edge.batch([("eth_chainId", []), ("eth_sign", []), ("eth_getBalance", [ZERO, "latest"])])
    assert [r["id"] for r in replies] == [0, 1, 2]
    assert replies[0]["result"] == "0x7a69"
    assert replies[1]["error"]["code"] == -32601
    assert replies[2]["result"] == "0x0"


async def test_a_batch_over_the_chains_limit_is_refused_as_a_whole(edge):
    reply = await edge.batch([("eth_chainId", [])] * 6)
    assert isinstance(reply, dict) and reply["error"]["code"] == -32005 and "limit of 5" in reply["error"]["message"]


@pytest.mark.parametrize(
    "fault", [Fault(mode="refuse"), Fault(mode="http_status", status=502), Fault(mode="blackhole")],
    ids=["refuse", "http_502", "blackhole"],
)
async def test_a_faulted_provider_is_failed_over_and_no_client_sees_an_error(edge, fault):
    """p0 (first by priority) faulted: every request is answered by another provider; p0's breaker opens."""
    edge.proxies[0].set(fault)
    ids = itertools.count()
    for method, params in [("eth_chainId", []), ("eth_blockNumber", []), ("eth_getBalance", [ZERO, "latest"])] * 4:
        rid = next(ids)
        reply = await edge.call(method, params, rid)
        assert "result" in reply and reply["id"] == rid, reply
    assert edge.lc.chain().provider("p0").breaker.state.value == "open"
    assert edge.lc.leaks(FAKE_KEY) == []


async def test_with_every_provider_down_the_answer_is_a_fast_32002(edge):
    for proxy in edge.proxies:
        proxy.set(Fault(mode="refuse"))
    reply = await edge.call("eth_chainId")
    assert reply["error"]["code"] == -32002 and "attempt" in reply["error"]["message"]
    chain = edge.lc.chain()
    assert await wait_for(lambda: all(p.breaker.state.value == "open" for p in chain.pool.providers))
    started = time.perf_counter()
    replies = await asyncio.gather(*(edge.call("eth_chainId", rid=i) for i in range(5)))
    assert {r["error"]["code"] for r in replies} == {-32002}
    assert time.perf_counter() - started < 2.0  # no attempt waits: every breaker is open


async def test_a_subscription_is_not_a_request(edge):
    """eth_subscribe is the WebSocket session's own method (a live id); a request elsewhere is -32601 that says
    where subscriptions live."""
    reply = await edge.call("eth_subscribe", ["newHeads"])
    if edge.name == "ws":
        assert reply["result"].startswith("0x")
    else:
        assert reply["error"]["code"] == -32601 and "/ws/rpc/dev" in reply["error"]["message"]


@pytest.mark.parametrize("kind", list(EDGES))
async def test_a_cached_answer_is_the_same_on_every_edge_and_costs_no_provider_request(kind, start_livechain, proxies):
    """With the cache on, the second identical read (a final block: `finality_depth: 0`) is answered by the
    cache whichever edge asks, with that request's own id, and no provider sees it."""
    lc = await start_livechain(config_text(dev_chain(proxies, cache="{enabled: true}", finality_depth=0, **FAST)))
    chain = lc.chain()
    assert await wait_for(lambda: all(p.chain_id_ok and p.head is not None for p in chain.pool.providers))
    made = EDGES[kind](lc)
    if isinstance(made, WsEdge):
        await made.open()
    try:
        first = await made.call("eth_getBalance", ["0x" + "ab" * 20, "0x0"], rid=1)
        second = await made.call("eth_getBalance", ["0x" + "AB" * 20, "0x00"], rid=2)  # the same question
    finally:
        await made.close()
    assert first == {"jsonrpc": "2.0", "id": 1, "result": "0x0"} and second == {**first, "id": 2}
    assert chain.cache_counts.totals().get("hit") == 1
    chain.store.fold()
    attempts = sum(m.get("eth_getBalance", {}).get("count", 0) for m in chain.store.rpc().values())
    assert attempts == 1


async def test_pipelined_http_requests_are_answered_in_order_when_a_cache_hit_follows_a_slow_request(
    start_livechain, proxies
):
    """A hit is written at once only when nothing of its connection is pending: behind a slow request (every
    provider 300 ms away) on the same connection, it waits its turn — HTTP/1.1 answers in request order."""
    lc = await start_livechain(config_text(dev_chain(proxies, cache="{enabled: true}", finality_depth=0, **FAST)))
    chain = lc.chain()
    assert await wait_for(lambda: all(p.chain_id_ok and p.head is not None for p in chain.pool.providers))
    hit = {"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": [ZERO, "0x0"]}
    assert (await lc.rpc("eth_getBalance", [ZERO, "0x0"]))["result"] == "0x0"  # now cached
    for proxy in proxies:
        proxy.set(Fault(latency_ms=300))
    slow = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": ["0x" + "cd" * 20, "latest"]}
    reader, writer = await asyncio.open_connection("127.0.0.1", lc.app.port)
    try:
        wire = b""
        for message in (slow, hit, {**slow, "id": 3, "params": ["0x" + "ef" * 20, "latest"]}):
            body = orjson.dumps(message)
            wire += b"POST /rpc/dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        writer.write(wire)  # three requests in one write: pipelined
        ids, caches = [], []
        for _ in range(3):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
            length = int(fields.get("content-length") or fields["Content-Length"])
            ids.append(orjson.loads(await reader.readexactly(length))["id"])
            caches.append(fields.get("x-livechain-cache"))
    finally:
        writer.close()
    assert ids == [1, 2, 3] and caches == ["miss", "hit", "miss"]
