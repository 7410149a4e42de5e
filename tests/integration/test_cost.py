"""Cost-aware routing against real anvil providers behind counting proxies: `cheapest` by cost within the SLO,
budgets, reserve providers, spend that equals what the providers received (and survives kill -9), capabilities
learned from "method not found", head gaps that cost nothing without a subscriber and batches with one, and
routing that explains itself."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import orjson
import pytest

from livechain.devnet import Anvil
from livechain.faults import Fault, FaultProxy
from tests.conftest import config_text
from tests.rpc_proxy import RpcProxy

ADDRESS = "0x" + "11" * 20


async def wait_for(predicate, timeout: float = 30.0, step: float = 0.05) -> bool:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(step)
    return True


def provider(pid: str, url: str, extra: str = "") -> str:
    return f"      - {{id: {pid}, http_url: '{url}', archive: true{extra}}}\n"


def chain(providers: str, **settings: str) -> str:
    settings.setdefault("cache", "{enabled: false}")
    settings.setdefault("coalesce", "false")
    text = "  dev:\n    chain_id: 31337\n"
    for key, value in settings.items():
        text += f"    {key}: {value}\n"
    return text + "    providers:\n" + providers


async def balance(lc, strategy: str = "cheapest") -> dict:
    return await lc.rpc("eth_getBalance", [ADDRESS, "latest"], path=f"/rpc/{strategy}/dev")


@pytest.fixture
async def node():
    async with Anvil(block_time=None) as anvil:
        yield anvil


async def test_cheapest_follows_cost_slo_budget_and_reserve_and_spend_equals_what_providers_received(
    node, start_livechain
):
    """a: 3/request, b: 1/request, c: 2/request with a budget of 10 a day, r: a reserve at 0.5. Traffic goes to
    b; latency on b (out of the 150 ms SLO) moves it to c; c's budget spent → a; every non-reserve failing → r."""
    proxies = {pid: await RpcProxy(node).start() for pid in ("a", "b", "c", "r")}
    faults = {pid: FaultProxy("127.0.0.1", p.port, name=pid) for pid, p in proxies.items()}
    for fault in faults.values():
        await fault.start()
    costs = {"a": "cost: {per_request: 3}", "b": "cost: {per_request: 1}",
             "c": "cost: {per_request: 2}, budget: {day: 10}", "r": "cost: {per_request: 0.5}, tier: reserve"}
    providers = "".join(provider(pid, faults[pid].url + "/", ", " + costs[pid]) for pid in proxies)
    lc = await start_livechain(config_text(chain(
        providers, health_interval="10m", slo="{latency_p90_ms: 150}", max_attempts=4,
        breaker="{failure_threshold: 2, recovery_timeout: 10m}",
    )))
    dev = lc.chain()

    async def confirmed() -> bool:  # every provider's chain id and head known: all of them eligible
        providers = dev.snapshot()["providers"]
        return all(p["chain_id_ok"] and p["head"] is not None for p in providers)

    await wait_for(confirmed)
    try:
        for _ in range(12):
            assert (await balance(lc))["_provider"] == "b"
        assert proxies["b"].counts["eth_getBalance"] == 12
        assert sum(proxies[p].counts["eth_getBalance"] for p in "acr") == 0
        # latency on b: once measured over the SLO (the chain's timer judges it), traffic moves to c
        proxies["b"].delay_ms = 300

        async def moved() -> bool:
            return (await balance(lc))["_provider"] == "c"

        await wait_for(moved)
        route = dev.explain("eth_getBalance", "cheapest")
        assert [p["id"] for p in route["order"]][:2] == ["c", "a"] and route["order"][-1]["id"] == "b"
        assert route["order"][-1]["misses_slo"] is True
        # c's budget (10 a day at 2 each): 5 requests in all — its health checks count too — then it is left
        # out and a takes over
        async def spent() -> bool:
            return (await balance(lc))["_provider"] != "c"

        await wait_for(spent)
        assert 2 * proxies["c"].total == 10
        assert (await balance(lc))["_provider"] == "a"
        excluded = {e["id"]: e["reasons"] for e in dev.explain("eth_getBalance", "cheapest")["excluded"]}
        assert excluded["c"] == ["over budget (exclude)"]
        assert dev.spend()["providers"]["c"]["budget_left"]["day"] == 0
        # the reserve got nothing so far; every other one failing → it answers
        assert proxies["r"].counts["eth_getBalance"] == 0
        for pid in ("a", "b"):
            faults[pid].set(Fault(mode="refuse"))
        reply = await balance(lc)
        assert reply["_provider"] == "r" and reply["result"] == "0x0"
        # spend equals what each provider received (client and Livechain's own requests alike)
        await asyncio.sleep(0.2)
        figures = dev.spend()["providers"]
        for pid, proxy in proxies.items():
            total = figures[pid]["total"]
            assert total["client"]["requests"] + total["own"]["requests"] == proxy.total, pid
            assert total["client"]["requests"] == proxy.counts["eth_getBalance"], pid
        assert figures["b"]["total"]["client"]["money"] == proxies["b"].counts["eth_getBalance"] * 1
        assert figures["a"]["today"]["client"]["money"] == 3 * proxies["a"].counts["eth_getBalance"]
    finally:
        for fault in faults.values():
            await fault.stop()
        for proxy in proxies.values():
            await proxy.stop()


async def test_a_method_a_provider_does_not_serve_is_learned_and_never_sent_to_it_again(node, start_livechain):
    async with RpcProxy(node) as p0, RpcProxy(node) as p1:
        p0.unsupported.add("eth_getBlockReceipts")
        lc = await start_livechain(config_text(chain(
            provider("p0", p0.url) + provider("p1", p1.url), strategy="priority", health_interval="10m",
        )))

        async def confirmed() -> bool:
            return all(p["chain_id_ok"] and p["head"] is not None for p in lc.chain().snapshot()["providers"])

        await wait_for(confirmed)
        for _ in range(10):
            reply = await lc.rpc("eth_getBlockReceipts", ["0x0"])
            assert reply["result"] == [] and reply["_provider"] == "p1"
        assert p0.counts["eth_getBlockReceipts"] == 1  # once, to learn it
        assert p1.counts["eth_getBlockReceipts"] == 10
        async with aiohttp.ClientSession() as http:
            async with http.get(lc.base + "/api/chains/dev/providers") as resp:
                providers = {p["id"]: p for p in (await resp.json())["providers"]}
            async with http.get(lc.base + "/api/chains/dev/route?method=eth_getBlockReceipts") as resp:
                route = await resp.json()
        assert "eth_getBlockReceipts" in providers["p0"]["capabilities"]["unsupported"]
        assert route["excluded"][0]["id"] == "p0"
        assert route["excluded"][0]["reasons"][0].startswith("method unsupported")
        assert [p["id"] for p in route["order"]] == ["p1"]
        # other methods still go to p0
        assert (await lc.rpc("eth_blockNumber"))["_provider"] == "p0"


async def test_a_head_gap_costs_nothing_without_a_subscriber_and_batches_with_one(node, start_livechain):
    """An HTTP-only provider (heads polled) out of reach while 1,000 blocks are mined; back, it reports a
    1,000-block jump. Nobody needs the blocks in between: no request fetches them. With a newHeads subscriber,
    the next such jump is fetched in batches of 100 and the subscriber gets every block once, in order."""
    from tests.ws.client import WsClient

    async with RpcProxy(node) as p0:
        gate = FaultProxy("127.0.0.1", p0.port, name="p0")
        await gate.start()
        lc = await start_livechain(config_text(chain(
            provider("p0", gate.url + "/"), health_interval="200ms", breaker="{failure_threshold: 1000}",
        )))
        dev = lc.chain()

        async def at(number: int) -> bool:
            return dev.head() == number

        async def jump() -> None:
            gate.set(Fault(mode="refuse"))
            await node.rpc("anvil_mine", [hex(1000)])
            p0.reset_counts()
            gate.clear()

        try:
            await wait_for(lambda: at(0))
            await jump()
            await wait_for(lambda: at(1000))
            assert p0.counts["eth_getBlockByNumber"] == 1  # the new head itself, nothing in between
            client = await WsClient().connect(lc.base.replace("http", "ws") + "/ws/rpc/dev")
            try:
                sid = await client.subscribe("newHeads")
                await jump()
                await wait_for(lambda: at(2000))
                got = [int((await client.next(sid))["number"], 16) for _ in range(1000)]
                assert got == list(range(1001, 2001))
                assert p0.counts["eth_getBlockByNumber"] == 1000
                health = p0.counts["eth_blockNumber"] + p0.counts["eth_chainId"]  # one request each
                assert p0.http_requests - health == 11, p0.counts  # the head, then 10 batches of 100: not 1,000
                assert dev.spend()["providers"]["p0"]["total"]["own"]["requests"] >= 1001
            finally:
                await client.close()
        finally:
            await gate.stop()


async def test_explain_gives_the_reason_of_each_exclusion_and_the_client_header(node, start_livechain):
    async with Anvil(block_time=None, chain_id=1) as foreign, RpcProxy(node) as ok, RpcProxy(node) as unsupported:
        dead = FaultProxy(node.host, node.port, name="dead")
        limited = FaultProxy(node.host, node.port, name="limited")
        await dead.start()
        await limited.start()
        unsupported.unsupported.add("eth_getBalance")
        providers = (  # "ok" last in priority: a request goes through every other one first
            provider("foreign", foreign.url + "/")
            + provider("denied", ok.url, ", methods: {deny: [eth_getBalance]}")
            + provider("unsupported", unsupported.url)
            + provider("dead", dead.url + "/")
            + provider("spent", ok.url, ", cost: {per_request: 1}, budget: {day: 0}")
            + provider("limited", limited.url + "/")
            + provider("ok", ok.url)
        )
        lc = await start_livechain(config_text(chain(
            providers, strategy="priority", health_interval="300ms", max_attempts=7,
            breaker="{failure_threshold: 1, recovery_timeout: 10m}",
        )))
        dev = lc.chain()
        try:
            dead.set(Fault(mode="refuse"))
            limited.set(Fault(mode="http_status", status=429, retry_after=600))

            async def settled() -> bool:
                await lc.rpc("eth_getBalance", [ADDRESS, "latest"], path="/rpc/priority/dev")
                reasons = {e["id"]: e["reasons"] for e in dev.explain("eth_getBalance")["excluded"]}
                return {"foreign", "unsupported", "dead", "limited"} <= set(reasons)

            await wait_for(settled)
            reasons = {e["id"]: " | ".join(e["reasons"]) for e in dev.explain("eth_getBalance")["excluded"]}
            assert "wrong chain id" in reasons["foreign"]
            assert reasons["denied"] == "method denied by its policy"
            assert "method unsupported" in reasons["unsupported"]
            assert "breaker open" in reasons["dead"]
            assert reasons["spent"] == "over budget (exclude)"
            assert "cooling down after 429" in reasons["limited"]
            assert [p["id"] for p in dev.explain("eth_getBalance")["order"]] == ["ok"]
            _, headers, _ = await lc.post(
                "/rpc/dev", orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [ADDRESS, "latest"]}),
                {"x-livechain-explain": "1"},
            )
            explained = headers["x-livechain-explain"]
            assert "order=ok" in explained and "tried=ok:ok" in explained and "first=ok" in explained
            assert "foreign:wrong chain id" in explained
            _, headers, _ = await lc.post(
                "/rpc/dev", orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}),
            )
            assert "x-livechain-explain" not in headers  # only when asked
        finally:
            await dead.stop()
            await limited.stop()


async def test_spend_survives_kill_9_and_restart(node, tmp_path):
    async with RpcProxy(node) as p0:
        path = tmp_path / "c.yaml"
        path.write_text(
            f"persistence: {{sqlite_path: '{tmp_path / 'lc.sqlite'}', snapshot_interval: 1s}}\n"
            "logging: {level: info, format: json}\nchains:\n"
            + chain(provider("p0", p0.url, ", cost: {per_request: 0.25}"), health_interval="10m")
        )

        async def serve():
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "livechain", "serve", "--config", str(path), "--port", "0",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env={**os.environ},
            )
            while True:
                line = await asyncio.wait_for(proc.stderr.readline(), 30)
                assert line
                record = orjson.loads(line)
                if record["msg"] == "listening":
                    return proc, f"http://127.0.0.1:{record['port']}"

        proc, base = await serve()
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(20):
                    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [ADDRESS, "latest"]}
                    async with http.post(base + "/rpc/cheapest/dev", json=body) as resp:
                        assert "result" in await resp.json()
                await asyncio.sleep(2.5)  # more than one snapshot interval with no traffic
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                proc, base = await serve()
                async with http.get(base + "/api/chains/dev/spend") as resp:
                    figures = (await resp.json())["providers"]["p0"]
            assert figures["today"]["client"]["requests"] >= 20
            assert figures["total"]["client"]["requests"] == p0.counts["eth_getBalance"] == 20
            assert figures["total"]["client"]["money"] == pytest.approx(5.0)
        finally:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
