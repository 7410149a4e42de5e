"""`livechain probe` against real anvil nodes: an archive node with live traffic (WebSocket subscriptions that
deliver), a pruned node behind range-limiting proxies, a provider of the wrong chain id, an unreachable one,
batch limits, and the heads of a configured chain. Every report is asserted, and every call the probe makes is
counted at the proxy in front of the node: the probe's own count must equal it and stay within the budget.

The provider URLs carry a fake key as a path segment (the proxy accepts any path, as hosted providers do);
it must never appear in the report, on stdout or on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from livechain.config import parse_config
from livechain.devnet import Anvil
from livechain.probe import limits
from livechain.probe.client import Calls, ProbeClient
from livechain.probe.report import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_WRONG_CHAIN, to_json
from livechain.probe.run import ProbeOptions, budget, probe
from tests.conftest import FAKE_KEY, chain_yaml, config_text, provider_yaml
from tests.evm_helpers import deploy_emitter, emit
from tests.rpc_proxy import RpcProxy

SECRET_PATH = f"/v2/{FAKE_KEY}"
CORE = {"eth_blockNumber", "eth_getBlockByNumber", "eth_getBalance", "eth_call", "eth_getLogs"}


class AnyPathProxy:
    """HTTP + WebSocket in front of one anvil, on any path (anvil itself answers only "/"), counting every
    request object it receives; batches over `batch_limit` items are refused with `batch_message`."""

    def __init__(self, node: Anvil, *, batch_limit: int | None = None, batch_message: str = "batch too large") -> None:
        self.node = node
        self.batch_limit = batch_limit
        self.batch_message = batch_message
        self.lone: Counter[str] = Counter()  # lone requests, HTTP and WebSocket, by method
        self.batch_items = 0
        self.paths: set[str] = set()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def url(self, path: str = SECRET_PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, path: str = SECRET_PATH) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> AnyPathProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    def _count(self, data: bytes) -> None:
        with contextlib.suppress(orjson.JSONDecodeError):
            parsed = orjson.loads(data)
            if isinstance(parsed, list):
                self.batch_items += len(parsed)
            elif isinstance(parsed, dict):
                self.lone[str(parsed.get("method"))] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.paths.add(request.path)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        body = await request.read()
        self._count(body)
        if self.batch_limit is not None and body[:1] == b"[" and len(orjson.loads(body)) > self.batch_limit:
            error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": self.batch_message}}
            return web.Response(body=orjson.dumps(error), content_type="application/json")
        async with self._session.post(self.node.url + "/", data=body,
                                      headers={"Content-Type": "application/json"}) as resp:
            return web.Response(body=await resp.read(), status=resp.status, content_type="application/json")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        client = web.WebSocketResponse()
        await client.prepare(request)
        async with self._session.ws_connect(self.node.ws_url + "/") as upstream:
            async def down() -> None:
                async for msg in upstream:
                    await client.send_str(msg.data)
                await client.close()

            task = asyncio.get_running_loop().create_task(down())
            try:
                async for msg in client:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        self._count(msg.data.encode())
                        await upstream.send_str(msg.data)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return client


@contextlib.asynccontextmanager
async def traffic(node: Anvil) -> AsyncIterator[None]:
    """A transaction that emits a log every 0.2 s (anvil mines each at once): heads, logs and pending
    transactions for the WebSocket subscriptions to deliver."""
    address = await deploy_emitter(node)

    async def loop() -> None:
        while True:
            await emit(node, address)
            await asyncio.sleep(0.2)

    task = asyncio.get_running_loop().create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert FAKE_KEY not in text and "/v2/" not in text, text[:500]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livechain", "probe", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# ---------------------------------------------------------------------------------------------- archive node


async def test_an_archive_node_with_traffic_is_reported_whole_and_every_call_is_counted(anvil):
    """anvil (full state) behind a proxy, with live traffic: the right chain id and client version, latency
    of the five core methods, every standard method supported, state at block 1 (archive), no eth_getLogs
    limit over the whole chain, batches up to 1,000, and the three subscriptions delivering. The probe's call
    count equals what the proxy received, within the budget; the URL's secret is nowhere in the report."""
    await anvil.rpc("anvil_mine", ["0x20"])
    async with AnyPathProxy(anvil) as proxy, traffic(anvil):
        report = await probe(ProbeOptions(url=proxy.url(), ws_url=proxy.ws_url(), chain_id=31337, ws_wait=8))
    assert SECRET_PATH in proxy.paths  # the probe did go through the secret URL
    assert_no_secret(to_json(report))
    assert report["verdict"] == "ok" and report["exit_code"] == EXIT_OK, report["problems"]
    assert report["chain_id"] == 31337 and report["chain_id_ok"] is True
    assert report["client_version"].startswith("anvil/")
    assert report["url"] == f"http://127.0.0.1:{proxy.port}/…"
    assert report["head"] >= 33
    assert set(report["latency"]) == CORE
    for entry in report["latency"].values():
        assert entry["ok"] == 3 and entry["errors"] == 0 and 0 < entry["p50_ms"] <= entry["p90_ms"]
    assert len(report["methods"]) == 23
    assert {m for m, e in report["methods"].items() if e["status"] != "supported"} == set()
    assert report["archive"] == {"archive": True, "state_depth": None, "oldest_state_block": 1,
                                 "searched_back": None}
    logs = report["logs"]
    assert logs["limit"] is None and logs["refused"] is None and logs["accepted"] >= 33
    assert logs["tried"] == [{"blocks": logs["accepted"], "result": "accepted"}]
    batch = report["batch"]
    assert batch["supported"] is True and batch["largest_ok"] == 1000 and batch["limit"] is None
    assert [t["size"] for t in batch["tried"]] == [1, 10, 100, 1000]
    ws = report["ws"]
    assert ws["connected"] and ws["chain_id"] == 31337 and ws["chain_id_ok"] is True
    assert {kind: entry["status"] for kind, entry in ws["subscriptions"].items()} == {
        "newHeads": "delivers", "logs": "delivers", "newPendingTransactions": "delivers"}
    calls = report["calls"]
    assert calls["total"] == sum(proxy.lone.values()) <= calls["budget"] == budget(3) <= 60
    assert calls["batch_items"] == proxy.batch_items == 1111 and calls["batch_requests"] == 4
    assert sum(calls["by_check"].values()) == calls["total"] and calls["by_check"]["ws"] == 4
    assert proxy.lone["eth_subscribe"] == 3 and proxy.lone["eth_getLogs"] == 3 + 1


# ---------------------------------------------------------------------------------------------- pruned node


@pytest.fixture
async def pruned() -> AsyncIterator[Anvil]:
    """anvil keeping the state of its last few blocks only, 1,500 blocks long."""
    node = await Anvil(block_time=None, extra_args=("--prune-history", "4")).start()
    try:
        await node.rpc("anvil_mine", [hex(1500)])
        yield node
    finally:
        await node.stop()


async def serves_state(node: Anvil, block: int) -> bool:
    try:
        await node.rpc("eth_getBalance", ["0x" + "00" * 20, hex(block)])
    except RuntimeError:
        return False
    return True


async def test_a_pruned_node_behind_a_range_limit_reports_its_state_depth_and_the_limit_and_no_websocket(pruned):
    """anvil --prune-history 4 behind a proxy refusing eth_getLogs over 1,000 blocks in Alchemy's words:
    not archive, with the state depth the node really has (state at the oldest block reported is served,
    the block before it is not); the eth_getLogs limit is 1,000, named by the refusal and confirmed; no --ws:
    the report says the WebSocket was not checked. Calls counted at the proxy, within the budget."""
    async with RpcProxy(pruned, logs_range_limit=1000, limit_style="alchemy") as proxy:
        report = await probe(ProbeOptions(url=proxy.url, chain_id=31337))
    assert report["verdict"] == "ok" and report["exit_code"] == EXIT_OK
    head = report["head"]
    assert head == 1500
    archive = report["archive"]
    assert archive["archive"] is False and archive["state_depth"] is not None and archive["state_depth"] < 50
    oldest = archive["oldest_state_block"]
    assert oldest == head - archive["state_depth"]
    assert await serves_state(pruned, oldest) and not await serves_state(pruned, oldest - 1)
    logs = report["logs"]
    assert logs["limit"] == 1000 and logs["found"] is True and logs["stated"] == 1000
    assert [t["blocks"] for t in logs["tried"]] == [1501, 1000] and logs["refused"] == 1501
    assert logs["tried"][0]["detail"].startswith("-32602 Log response size exceeded.")  # the provider's words
    assert report["ws"] == {"checked": False, "reason": "no --ws URL given"}
    calls = report["calls"]
    assert calls["total"] + calls["batch_items"] == proxy.total and calls["total"] <= calls["budget"]
    assert calls["by_check"]["archive"] <= 14 and calls["by_check"]["logs"] == 2
    assert proxy.refused["eth_getLogs"] == 1


#: (refusal style, the proxy's limit, what the range check finds)
LIMIT_CASES = [
    ("geth", 500, {"limit": 500, "found": True, "stated": 500, "refused": 1501}),  # "block range too large: max 500"
    ("quicknode", 200, {"limit": 200, "found": True, "stated": 200, "refused": 1501}),  # "limited to a 200 range"
    # "query returned more than 10000 results": no number for the range, so the common limits are tried
    ("infura", 1000, {"limit": 1000, "found": False, "stated": None, "refused": 1501, "accepted": 1000}),
    ("infura", 700, {"limit": 500, "found": False, "stated": None, "refused": 1000, "accepted": 500}),
]


async def test_the_logs_range_limit_is_read_from_each_refusal_shape(pruned):
    """The eth_getLogs range check alone against each provider's refusal words: a named limit is confirmed
    with one query; without a number, the limit is bracketed between the common limits tried."""
    for style, limit, expected in LIMIT_CASES:
        async with RpcProxy(pruned, logs_range_limit=limit, limit_style=style) as proxy:
            calls = Calls(limits.LOGS_CALLS)
            client = ProbeClient(proxy.url, calls, timeout=10)
            try:
                found = await limits.logs_range(client, 1500)
            finally:
                await client.close()
        assert {key: found[key] for key in expected} == expected, (style, limit, found)
        assert calls.calls == proxy.counts["eth_getLogs"] <= limits.LOGS_CALLS


# ---------------------------------------------------------------------------------------------- batches


@pytest.mark.parametrize(("batch_limit", "message", "expected"), [
    (50, "batch too large: at most 50 requests", {"supported": True, "limit": 50, "found": True, "refused_at": 100}),
    (50, "batch too large", {"supported": True, "limit": 10, "found": False, "refused_at": 100}),
    (0, "batch requests are not supported", {"supported": False, "limit": None, "refused_at": 1}),
])
async def test_the_batch_limit_is_found_at_the_first_refused_size(anvil, batch_limit, message, expected):
    """Batches of 1, 10, 100, 1000 until the first refusal: the limit named by the refusal, or bracketed
    between the largest size taken and the refused one; a provider refusing a batch of one takes none."""
    async with AnyPathProxy(anvil, batch_limit=batch_limit, batch_message=message) as proxy:
        client = ProbeClient(proxy.url(), Calls(0), timeout=10)
        try:
            found = await limits.batches(client, 1000)
        finally:
            await client.close()
    assert {key: found[key] for key in expected} == expected, found
    assert found["tried"][-1]["result"] == "refused" and found["tried"][-1]["detail"] == message
    assert proxy.batch_items == sum(t["size"] for t in found["tried"]) and not proxy.lone


# ---------------------------------------------------------------------------------------------- config heads


async def test_its_head_is_compared_with_the_configured_providers_and_their_urls_never_shown(anvil):
    """--config/--chain: one eth_blockNumber to each configured provider at once. The same node: same head;
    a shorter chain: the difference; a dead one: its error. Providers appear by id only."""
    await anvil.rpc("anvil_mine", ["0x30"])
    async with Anvil(block_time=None) as short, AnyPathProxy(anvil) as proxy:
        await short.rpc("anvil_mine", ["0x10"])
        providers = (provider_yaml("same", f"{anvil.url}/?apikey={FAKE_KEY}0")
                     + provider_yaml("short", f"{short.url}/?apikey={FAKE_KEY}1")
                     + provider_yaml("dead", f"http://127.0.0.1:{closed_port()}/{FAKE_KEY}2"))
        chain = parse_config(config_text(chain_yaml("dev", 31337, providers))).chains["dev"]
        report = await probe(ProbeOptions(url=proxy.url(), chain_id=31337, chain=chain, max_batch=0))
    assert_no_secret(to_json(report))
    heads = report["heads"]
    assert heads["chain"] == "dev" and heads["probed_head"] == 48 and heads["best_configured_head"] == 48
    assert heads["behind_best"] == 0 and heads["ahead_of_best"] == 0
    rows = {row["id"]: row for row in heads["providers"]}
    assert rows["same"]["head"] == 48 and rows["same"]["probed_minus_it"] == 0
    assert rows["short"]["head"] == 16 and rows["short"]["probed_minus_it"] == 32
    assert rows["dead"]["head"] is None and rows["dead"]["error"] == "connect"
    assert report["calls"]["other_providers"] == 3 and report["calls"]["by_check"]["heads"] == 1
    assert report["batch"]["tried"] == [] and report["calls"]["batch_items"] == 0


# ---------------------------------------------------------------------------------------------- the command


async def test_the_command_exits_with_its_documented_codes_and_never_prints_the_urls_secrets(anvil, tmp_path):
    """`python -m livechain probe` as a user runs it: 4 for a wrong --chain-id (JSON report: the chain it
    serves), 4 for a config chain of another chain id, 0 with a table for the right one, 3 for a WebSocket
    URL that does not connect and for an unreachable provider, 2 for a usage error. The secret path segment of the URLs never reaches stdout
    or stderr."""
    await anvil.rpc("anvil_mine", ["0x8"])
    async with AnyPathProxy(anvil) as proxy:
        url, ws = proxy.url(), proxy.ws_url()
        code, out, err = await run_cli(url, "--ws", ws, "--chain-id", "1", "--json")
        assert_no_secret(out, err)
        report = orjson.loads(out)
        assert code == EXIT_WRONG_CHAIN == report["exit_code"] and report["verdict"] == "wrong_chain_id"
        assert report["chain_id"] == 31337 and report["expected_chain_id"] == 1 and report["chain_id_ok"] is False
        assert "latency" not in report and report["calls"]["total"] == 2 and "ws" not in report

        other = tmp_path / "other.yaml"
        other.write_text(config_text(chain_yaml("mainnet", 1, provider_yaml("p0", f"{anvil.url}/?key={FAKE_KEY}"))))
        code, out, err = await run_cli(url, "--config", str(other), "--chain", "mainnet", "--json", "--max-batch", "0")
        assert_no_secret(out, err)
        assert code == EXIT_WRONG_CHAIN and orjson.loads(out)["expected_chain_id"] == 1

        code, out, err = await run_cli(url, "--ws", ws, "--chain-id", "31337", "--ws-wait", "1", "--max-batch", "10")
        assert_no_secret(out, err)
        assert code == EXIT_OK, out + err
        for line in ("chain id         31337  (expected 31337: ok)", "archive          yes: state at block 1",
                     "websocket        connected, chain id 31337 (ok)", "verdict          ok (exit 0)",
                     f"livechain probe http://127.0.0.1:{proxy.port}/…  ws ws://127.0.0.1:{proxy.port}/…"):
            assert line in out, out

        code, out, err = await run_cli(url, "--ws", f"ws://127.0.0.1:{closed_port()}{SECRET_PATH}", "--json",
                                       "--max-batch", "0")
        assert_no_secret(out, err)
        report = orjson.loads(out)
        assert code == EXIT_UNREACHABLE == report["exit_code"] and report["ws"]["connected"] is False
        assert report["latency"] and "the WebSocket URL does not connect" in report["problems"]
    assert SECRET_PATH in proxy.paths

    dead = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}"
    code, out, err = await run_cli(dead, "--json")
    assert_no_secret(out, err)
    report = orjson.loads(out)
    assert code == EXIT_UNREACHABLE == report["exit_code"] and report["verdict"] == "unreachable"
    assert report["methods"]["eth_chainId"]["status"] == "connect" and report["calls"]["total"] == 1

    code, out, err = await run_cli(dead, "--chain", "dev")
    assert code == EXIT_USAGE and "--config and --chain go together" in err
    assert_no_secret(out, err)
