"""Mode `lie` over real sockets: a real anvil behind a FaultProxy, each answer compared with the same
request sent to anvil directly. Only what a lie names changes; everything else is byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gzip
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import uvloop

from livechain.devnet import Anvil
from livechain.faults import LIES, Fault, FaultControlServer, FaultError, FaultProxy
from tests.evm_helpers import deploy_emitter, emit, receipt

WAIT = 10.0  # generous: a busy 2-core machine runs anvil and the proxy side by side
HASH = re.compile(r"0x[0-9a-f]{64}")
BLOCK_METHODS = (
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getLogs",
    "eth_getTransactionReceipt",
    "eth_getBlockReceipts",
    "eth_getTransactionByHash",
)


# ---- a tiny keep-alive HTTP client -------------------------------------------------------------------
def call(method: str, params: list | None = None, rid: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def http_request(body: bytes, extra: bytes = b"") -> bytes:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra
    return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).decode()
    lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
    assert "transfer-encoding" not in headers
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WAIT)
    return int(lines[0].split()[1]), headers, body


class Client:
    """One keep-alive HTTP connection to a host:port."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def __aenter__(self) -> Client:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def post(self, payload: Any) -> bytes:
        """The response body to one JSON request (or batch); the status must be 200."""
        self.writer.write(http_request(payload if isinstance(payload, bytes) else encode(payload)))
        status, _, body = await read_response(self.reader)
        assert status == 200
        return body


@dataclass
class World:
    """What the chain on the anvil holds: a log-emitting contract, a transaction with a log, some blocks."""

    node: Anvil
    proxy: FaultProxy
    contract: str
    tx: str
    tx_block: str  # hex number of the block holding `tx`
    tx_block_hash: str
    head: int

    async def both(self, payload: Any) -> tuple[bytes, bytes]:
        """The same request answered by anvil directly and through the proxy (fresh connections)."""
        async with (
            Client(self.node.host, self.node.port) as direct,
            Client(self.proxy.host, self.proxy.port) as lied,
        ):
            return await direct.post(payload), await lied.post(payload)

    def calls(self) -> dict[str, dict[str, Any]]:
        """One request for each method a lie rewrites, each with a result that has something to lie about."""
        return {
            "eth_getBlockByNumber": call("eth_getBlockByNumber", [self.tx_block, False], 11),
            "eth_getBlockByHash": call("eth_getBlockByHash", [self.tx_block_hash, True], 12),
            "eth_getLogs": call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}], 13),
            "eth_getTransactionReceipt": call("eth_getTransactionReceipt", [self.tx], 14),
            "eth_getBlockReceipts": call("eth_getBlockReceipts", [self.tx_block], 15),
            "eth_getTransactionByHash": call("eth_getTransactionByHash", [self.tx], "tx-by-hash"),
            "eth_blockNumber": call("eth_blockNumber", [], 17),
        }


async def build_world(node: Anvil, proxy: FaultProxy) -> World:
    contract = await deploy_emitter(node)
    await emit(node, contract)
    tx = await emit(node, contract)
    found = await receipt(node, tx)
    await node.rpc("anvil_mine", ["0xa"])
    head = int(await node.rpc("eth_blockNumber"), 16)
    return World(node, proxy, contract, tx, found["blockNumber"], found["blockHash"], head)


@contextlib.asynccontextmanager
async def open_world(node: Anvil) -> AsyncIterator[World]:
    async with FaultProxy(node.host, node.port, name="liar") as proxy:
        yield await build_world(node, proxy)


@pytest.fixture
async def world(anvil: Anvil) -> AsyncIterator[World]:
    async with open_world(anvil) as w:
        yield w


# ---- what each lie should produce, computed independently from the true answer -----------------------
def twisted(h: str) -> str:
    """The spec's wrong hash: the last byte xor 0x01."""
    return h[:-2] + format(int(h[-2:], 16) ^ 0x01, "02x")


def expected_block_hash_lie(method: str, result: Any) -> Any:
    result = copy.deepcopy(result)
    if result is None:
        return None
    if method in ("eth_getBlockByNumber", "eth_getBlockByHash"):
        result["hash"] = twisted(result["hash"])
    elif method == "eth_getTransactionByHash":
        result["blockHash"] = twisted(result["blockHash"])
    else:
        for item in result if isinstance(result, list) else [result]:  # logs or receipts
            item["blockHash"] = twisted(item["blockHash"])
            if method != "eth_getLogs":  # a receipt's logs carry the block hash too
                for log in item["logs"]:
                    log["blockHash"] = twisted(log["blockHash"])
    return result


def expected_reply(fault: Fault, method: str, reply: dict[str, Any]) -> dict[str, Any] | None:
    """The lying reply for a true one, or None when the lie leaves it alone."""
    if "error" in reply:
        return None
    result, lie = reply["result"], fault.lie
    if lie == "block_hash" and method in BLOCK_METHODS and result is not None:
        return {**reply, "result": expected_block_hash_lie(method, result)}
    if lie == "null_receipt" and method == "eth_getTransactionReceipt" and result is not None:
        return {**reply, "result": None}
    if lie == "empty_logs" and method == "eth_getLogs" and result:
        return {**reply, "result": []}
    if lie in ("stale_head", "future_head") and method == "eth_blockNumber":
        n = int(result, 16)
        moved = max(0, n - fault.lie_blocks) if lie == "stale_head" else n + fault.lie_blocks
        return {**reply, "result": hex(moved)} if moved != n else None
    return None


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# ---- each lie does exactly what it says ---------------------------------------------------------------
@pytest.mark.parametrize("lie", LIES)
async def test_each_lie_rewrites_exactly_its_methods_and_leaves_the_others_byte_identical(world, lie):
    """For every method a lie could touch, the proxied answer is the true answer (anvil asked directly)
    with exactly the lie's change, re-serialized compactly with the provider's id and jsonrpc; the
    answers a lie does not concern are byte-identical. The counter counts the changed replies."""
    fault = Fault(mode="lie", lie=lie, lie_blocks=3)
    world.proxy.set(fault)
    told = 0
    for method, payload in world.calls().items():
        direct, lied = await world.both(payload)
        truth = json.loads(direct)
        want = expected_reply(fault, method, truth)
        if want is None:
            assert lied == direct, f"{lie} changed {method}"
            continue
        told += 1
        assert lied != direct
        assert lied == compact(want), f"{lie} on {method}"
        assert (json.loads(lied)["id"], json.loads(lied)["jsonrpc"]) == (payload["id"], "2.0")
    assert (
        told == {"block_hash": 6, "null_receipt": 1, "empty_logs": 1, "stale_head": 1, "future_head": 1}[lie]
    )
    assert world.proxy.lies == {lie: told}
    assert world.proxy.stats["lies_told"] == told


async def test_block_hash_lie_gives_valid_but_different_hashes_and_keeps_null_results_null(world):
    """The wrong hashes are valid 32-byte hex strings that differ from the true ones, the same wrong hash
    every time (deterministic); a block that does not exist stays null, byte for byte."""
    world.proxy.set(Fault(mode="lie", lie="block_hash"))
    payload = call("eth_getBlockByNumber", [world.tx_block, False])
    direct, lied = await world.both(payload)
    _, again = await world.both(payload)
    true_hash, wrong = json.loads(direct)["result"]["hash"], json.loads(lied)["result"]["hash"]
    assert HASH.fullmatch(wrong) and wrong != true_hash
    assert json.loads(again)["result"]["hash"] == wrong
    for missing in (
        call("eth_getBlockByNumber", [hex(world.head + 50), False]),
        call("eth_getTransactionReceipt", ["0x" + "ab" * 32]),
        call("eth_getTransactionByHash", ["0x" + "ab" * 32]),
    ):
        direct, lied = await world.both(missing)
        assert json.loads(direct)["result"] is None
        assert lied == direct
    assert world.proxy.lies == {"block_hash": 2}


async def test_stale_and_future_head_move_eth_block_number_only(world):
    """stale_head (default 1000 blocks) floors at 0 on a short chain, with lie_blocks=5 it is n − 5;
    future_head is n + 1000; eth_getBlockByNumber("latest") is never touched."""
    n = world.head
    latest = call("eth_getBlockByNumber", ["latest", False])
    for fault, want in (
        (Fault(mode="lie", lie="stale_head"), 0),
        (Fault(mode="lie", lie="stale_head", lie_blocks=5), n - 5),
        (Fault(mode="lie", lie="future_head"), n + 1000),
    ):
        world.proxy.set(fault)
        _, lied = await world.both(call("eth_blockNumber"))
        assert json.loads(lied)["result"] == hex(want)
        direct, lied = await world.both(latest)
        assert lied == direct
    assert world.proxy.lies == {"stale_head": 2, "future_head": 1}


# ---- what passes untouched ----------------------------------------------------------------------------
@pytest.mark.parametrize("lie", LIES)
async def test_error_replies_and_other_methods_pass_byte_for_byte(world, lie):
    """Error replies (of lied-about methods too), unknown methods and other methods are relayed byte for
    byte under every lie, and no lie is counted."""
    world.proxy.set(Fault(mode="lie", lie=lie))
    for payload in (
        call("eth_chainId"),
        call("eth_getBalance", [world.contract, "latest"]),
        call("eth_call", [{"to": world.contract, "data": "0x"}, "latest"]),
        call("eth_nope"),
        call("eth_getTransactionReceipt", ["0x12"]),
        call("eth_getLogs", [{"fromBlock": "0xzz"}]),
        call("eth_getBlockByNumber", ["not-a-block", False]),
        call("eth_blockNumber", ["unexpected"]),
        b"{not json",
    ):
        direct, lied = await world.both(payload)
        assert lied == direct, payload
    assert world.proxy.lies.total() == 0


async def test_probability_zero_rewrites_nothing(world):
    """lie at probability 0: every answer is byte-identical to anvil's and nothing is counted."""
    for lie in LIES:
        world.proxy.set(Fault(mode="lie", lie=lie, probability=0.0))
        for payload in world.calls().values():
            direct, lied = await world.both(payload)
            assert lied == direct
    assert world.proxy.lies.total() == 0
    assert world.proxy.stats["faults_applied"] == 0


async def test_probability_half_counts_exactly_the_lies_the_client_sees(world):
    """At probability 0.5 over 120 eth_blockNumber requests some answers lie and some don't; the counter
    equals the lies a client detects by comparing with the truth."""
    world.proxy.set(Fault(mode="lie", lie="future_head", lie_blocks=7, probability=0.5))
    truth = hex(world.head)
    detected = 0
    async with Client(world.proxy.host, world.proxy.port) as client:
        for i in range(120):
            result = json.loads(await client.post(call("eth_blockNumber", rid=i)))["result"]
            assert result in (truth, hex(world.head + 7))
            detected += result != truth
    assert 20 <= detected <= 100
    assert world.proxy.lies == {"future_head": detected}


# ---- batches ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("lie", LIES)
async def test_a_batch_is_rewritten_item_by_item(world, lie):
    """A batch mixing lied-about methods, other methods and errors: each item is what it would be on its
    own; untouched items keep their exact bytes inside the batch; the counter counts items."""
    fault = Fault(mode="lie", lie=lie, lie_blocks=2)
    world.proxy.set(fault)
    calls = world.calls()
    batch = [
        *calls.values(),
        call("eth_chainId", rid=40),
        call("eth_nope", rid=41),
        call("eth_getLogs", [{"fromBlock": "0xzz"}], 42),
    ]
    methods = {json.dumps(c["id"]): c["method"] for c in batch}
    direct, lied = await world.both(batch)
    truth, got = json.loads(direct), json.loads(lied)
    assert [r["id"] for r in got] == [r["id"] for r in truth]
    told = 0
    for true_item, lied_item in zip(truth, got, strict=True):
        want = expected_reply(fault, methods[json.dumps(true_item["id"])], true_item)
        if want is None:
            assert lied_item == true_item
            assert compact(true_item) in lied  # its own bytes (anvil answers compactly)
        else:
            told += 1
            assert lied_item == want
    assert told >= 1
    assert world.proxy.lies == {lie: told}
    assert world.proxy.stats["faults_applied"] == 1  # one HTTP response rewritten


async def test_a_batch_with_nothing_to_lie_about_is_byte_identical(world):
    """future_head on a batch without eth_blockNumber: the reply is anvil's, byte for byte."""
    world.proxy.set(Fault(mode="lie", lie="future_head"))
    direct, lied = await world.both(
        [call("eth_chainId", rid=1), call("eth_getLogs", [{"fromBlock": "0x0"}], 2)]
    )
    assert lied == direct
    assert world.proxy.lies.total() == 0


# ---- keep-alive, pipelining, live connections -------------------------------------------------------
async def pipelined_answers_keep_request_order(world: World) -> None:
    """Twelve requests (single and batch, lied-about and not, one with a chunked body) written at once on
    one connection come back in request order, each a correct lie or the truth; the connection is
    still usable afterwards."""
    fault = Fault(mode="lie", lie="future_head", lie_blocks=10)
    world.proxy.set(fault)
    truth = world.head
    payloads: list[Any] = []
    for i in range(4):
        payloads += [
            call("eth_blockNumber", rid=f"bn-{i}"),
            call("eth_chainId", rid=f"cid-{i}"),
            [call("eth_blockNumber", rid=f"b{i}-0"), call("eth_chainId", rid=f"b{i}-1")],
        ]
    raw = b"".join(http_request(encode(p)) for p in payloads[:-1])
    last = encode(payloads[-1])
    raw += (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    raw += b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last)
    async with Client(world.proxy.host, world.proxy.port) as client:
        client.writer.write(raw)
        for payload in payloads:
            status, headers, body = await read_response(client.reader)
            assert (status, headers["connection"]) == (200, "keep-alive")
            answer = json.loads(body)
            if isinstance(payload, list):
                assert [a["id"] for a in answer] == [p["id"] for p in payload]
                assert [a["result"] for a in answer] == [hex(truth + 10), "0x7a69"]
            elif payload["method"] == "eth_blockNumber":
                assert (answer["id"], answer["result"]) == (payload["id"], hex(truth + 10))
            else:
                assert (answer["id"], answer["result"]) == (payload["id"], "0x7a69")
        assert json.loads(await client.post(call("eth_blockNumber")))["result"] == hex(truth + 10)
    assert world.proxy.lies == {"future_head": 9}
    assert world.proxy.stats["connections_total"] == 1


async def test_keep_alive_and_pipelining_answer_in_request_order(world):
    await pipelined_answers_keep_request_order(world)


test_keep_alive_and_pipelining_answer_in_request_order.__doc__ = pipelined_answers_keep_request_order.__doc__


def test_keep_alive_and_pipelining_answer_in_request_order_on_uvloop():
    """The same pipelining scenario on uvloop (what `livechain serve` runs on)."""

    async def scenario() -> None:
        async with Anvil(block_time=None) as node, open_world(node) as world:
            await pipelined_answers_keep_request_order(world)

    uvloop.run(asyncio.wait_for(scenario(), 60))


async def test_a_live_keep_alive_connection_starts_and_stops_lying_at_its_next_request(world):
    """A pooled connection opened before the fault gets the lie on its next request and the truth again
    after the fault is cleared — one client connection throughout."""
    truth = hex(world.head)
    async with Client(world.proxy.host, world.proxy.port) as client:
        for fault, want in (
            (None, truth),
            (Fault(mode="lie", lie="stale_head", lie_blocks=1), hex(world.head - 1)),
            (Fault(), truth),
        ):
            if fault is not None:
                world.proxy.set(fault)
            assert json.loads(await client.post(call("eth_blockNumber")))["result"] == want
    assert world.proxy.stats["connections_total"] == 1
    assert world.proxy.lies == {"stale_head": 1}


async def test_switching_the_lie_kind_takes_effect_on_live_connections(world):
    """On one connection: future_head, then block_hash (mode unchanged, only `lie`): the second request
    tells the new lie."""
    async with Client(world.proxy.host, world.proxy.port) as client:
        world.proxy.set(Fault(mode="lie", lie="future_head"))
        assert json.loads(await client.post(call("eth_blockNumber")))["result"] == hex(world.head + 1000)
        world.proxy.set(Fault(mode="lie", lie="null_receipt"))
        assert json.loads(await client.post(call("eth_getTransactionReceipt", [world.tx])))["result"] is None
        assert json.loads(await client.post(call("eth_blockNumber")))["result"] == hex(world.head)
    assert world.proxy.lies == {"future_head": 1, "null_receipt": 1}


async def test_websocket_connections_are_never_lied_to(world):
    """Lies are HTTP-only: over a WebSocket through the lying proxy eth_blockNumber tells the truth."""
    world.proxy.set(Fault(mode="lie", lie="future_head"))
    async with aiohttp.ClientSession() as session, session.ws_connect(world.proxy.ws_url) as ws:
        for i in range(3):
            await ws.send_json(call("eth_blockNumber", rid=i))
            reply = await asyncio.wait_for(ws.receive_json(), WAIT)
            assert (reply["id"], reply["result"]) == (i, hex(world.head))
    assert world.proxy.lies.total() == 0


# ---- framing: a chunked or compressed provider answer -------------------------------------------------
@contextlib.asynccontextmanager
async def canned_upstream(head: bytes, body: bytes, seen: list[bytes]) -> AsyncIterator[int]:
    """A keep-alive server answering every request with `head` and `body` verbatim; records requests."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                request_head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", request_head)
                seen.append(request_head + await reader.readexactly(int(length.group(1)) if length else 0))
                writer.write(head + body)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_chunked_answer_is_rewritten_and_reframed_with_a_content_length():
    """A provider answering with Transfer-Encoding: chunked: the lying answer carries a correct
    Content-Length and no Transfer-Encoding, and a second request on the connection still works."""
    reply = b'{"jsonrpc":"2.0","id":1,"result":"0x10"}'
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, reply[:10], len(reply) - 10, reply[10:])
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    seen: list[bytes] = []
    async with canned_upstream(head, chunked, seen) as port, FaultProxy("127.0.0.1", port) as proxy:
        proxy.set(Fault(mode="lie", lie="future_head", lie_blocks=1))
        async with Client(proxy.host, proxy.port) as client:
            for _ in range(2):
                client.writer.write(
                    http_request(encode(call("eth_blockNumber")), b"Accept-Encoding: gzip\r\n")
                )
                _, headers, body = await read_response(client.reader)  # asserts no Transfer-Encoding
                assert body == b'{"jsonrpc":"2.0","id":1,"result":"0x11"}'
                assert headers["content-length"] == str(len(body))
        assert proxy.lies == {"future_head": 2}
    assert seen and all(b"accept-encoding" not in r.lower() for r in seen)  # asked for a plain body


async def test_a_compressed_answer_is_relayed_unchanged():
    """A provider that gzips its answer anyway: the proxy cannot read it and relays it untouched."""
    body = gzip.compress(b'{"jsonrpc":"2.0","id":1,"result":"0x10"}')
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        % len(body)
    )
    async with canned_upstream(head, body, []) as port, FaultProxy("127.0.0.1", port) as proxy:
        proxy.set(Fault(mode="lie", lie="future_head"))
        async with Client(proxy.host, proxy.port) as client:
            assert await client.post(call("eth_blockNumber")) == body
        assert proxy.lies.total() == 0


# ---- Fault values and the control port ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"mode": "lie", "lie": "big_lie"}, "lie must be one of block_hash, null_receipt"),
        ({"mode": "lie", "lie": 3}, "lie must be a string"),
        ({"mode": "lie", "lie_blocks": 0}, "lie_blocks must be >= 1"),
        ({"mode": "lie", "lie_blocks": -5}, "lie_blocks must be >= 1"),
        ({"mode": "lie", "lie_blocks": 1.5}, "lie_blocks must be an integer"),
        ({"mode": "lie", "lie_blocks": True}, "lie_blocks must be an integer"),
        ({"mode": "lie", "lie_blocks": "10"}, "lie_blocks must be an integer"),
        ({"mode": "lie", "lies": "block_hash"}, "unknown field(s) 'lies'"),
    ],
)
def test_lie_fields_are_strictly_validated(data, fragment):
    """Bad lie / lie_blocks values raise FaultError naming the field."""
    with pytest.raises(FaultError) as caught:
        Fault.from_dict(data)
    assert fragment in str(caught.value)


def test_lie_fields_have_defaults_and_round_trip():
    """lie defaults to block_hash and lie_blocks to 1000; to_dict/from_dict are inverse."""
    fault = Fault.from_dict({"mode": "lie"})
    assert (fault.lie, fault.lie_blocks) == ("block_hash", 1000)
    custom = Fault(mode="lie", lie="stale_head", lie_blocks=12, probability=0.25)
    assert Fault.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom


async def test_the_control_port_sets_a_lie_and_rejects_bad_lie_fields(world):
    """PUT /faults/{name} with mode lie and its fields sets the fault (and the proxy lies); bad values
    are 400 naming the field, leaving the fault in place; the stats report lies_told."""
    async with FaultControlServer({"anvil": world.proxy}) as control, aiohttp.ClientSession() as http:
        url = f"{control.url}/faults/anvil"
        async with http.put(url, json={"mode": "lie", "lie": "stale_head", "lie_blocks": 4}) as resp:
            assert resp.status == 200
            assert {"mode": "lie", "lie": "stale_head", "lie_blocks": 4}.items() <= (await resp.json())[
                "fault"
            ].items()
        assert world.proxy.fault == Fault(mode="lie", lie="stale_head", lie_blocks=4)
        for body, fragment in (
            ({"mode": "lie", "lie": "whopper"}, "lie must be one of"),
            ({"mode": "lie", "lie_blocks": 0}, "lie_blocks must be >= 1"),
        ):
            async with http.put(url, json=body) as resp:
                assert resp.status == 400
                assert fragment in (await resp.json())["error"]
        assert world.proxy.fault.lie_blocks == 4
        _, lied = await world.both(call("eth_blockNumber"))
        assert json.loads(lied)["result"] == hex(world.head - 4)
        async with http.get(url) as resp:
            assert (await resp.json())["stats"]["lies_told"] == 1
