"""Persistence end to end: kill -9 under traffic keeps the leaderboard; the API's leaderboard, matrix,
history, events; regions; `livechain stats`."""

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
from tests.conftest import chain_yaml, provider_yaml


@pytest.fixture
async def racing_providers():
    async with Anvil(block_time=0.3) as node:
        proxies = []
        for i, ms in enumerate((30, 0, 60)):
            proxy = FaultProxy(node.host, node.port, name=f"p{i}")
            await proxy.start()
            proxy.set(Fault(latency_ms=ms))
            proxies.append(proxy)
        yield node, proxies
        for proxy in proxies:
            await proxy.stop()


def persisted_config(proxies, db: str, region: str = "local", interval: str = "1s") -> str:
    providers = "".join(provider_yaml(f"p{i}", f"{p.url}/", ws_url=f"{p.ws_url}/") for i, p in enumerate(proxies))
    return (
        f"region: {region}\npersistence: {{sqlite_path: '{db}', snapshot_interval: {interval}}}\n"
        "logging: {level: info, format: json}\nchains:\n"
        + chain_yaml("dev", 31337, providers, health_interval="500ms")
    )


async def start_process(path: str, env: dict | None = None) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livechain", "serve", "--config", path, "--port", "0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
    )
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, "livechain exited before listening"
        record = orjson.loads(line)
        if record["msg"] == "listening":
            break
    asyncio.get_running_loop().create_task(_drain(proc.stderr), name="test/drain-stderr")
    return proc, record["port"]


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def get_json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def traffic(session: aiohttp.ClientSession, port: int, n: int) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": ["0x" + "00" * 20, "latest"]}
    for _ in range(n):
        async with session.post(f"http://127.0.0.1:{port}/rpc/dev", json=body) as resp:
            assert resp.status == 200


async def test_kill_9_under_traffic_then_restart_brings_the_leaderboard_back(racing_providers, tmp_path):
    """With 1 s snapshots, a SIGKILLed Livechain restarted on the same database shows the same providers'
    race totals and samples, at most one snapshot interval short."""
    _, proxies = racing_providers
    db = str(tmp_path / "lc.sqlite")
    cfg = tmp_path / "lc.yaml"
    cfg.write_text(persisted_config(proxies, db))
    async with aiohttp.ClientSession() as session:
        proc, port = await start_process(str(cfg))
        try:
            await traffic(session, port, 150)
            await asyncio.sleep(3.5)  # heads race meanwhile; several snapshots are written
            await traffic(session, port, 50)
            before = await get_json(session, f"http://127.0.0.1:{port}/api/chains/dev/leaderboard")
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        proc, port = await start_process(str(cfg))
        try:
            after = await get_json(session, f"http://127.0.0.1:{port}/api/chains/dev/leaderboard")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    races_before = {r["provider"]: r["race"]["races"] for r in before["ranked"]}
    races_after = {r["provider"]: r["race"]["races"] for r in after["ranked"]}
    samples_before = sum(r["rpc"]["samples"] for r in before["ranked"])
    samples_after = sum(r["rpc"]["samples"] for r in after["ranked"])
    heads_per_interval = 1.0 / 0.3 + 1
    for provider, count in races_before.items():
        assert count >= 5
        assert count - heads_per_interval * 1.5 <= races_after[provider] <= count
    assert samples_after >= samples_before - 60  # ≤ one interval of traffic and health checks lost
    assert max(after["ranked"], key=lambda r: r["race"]["wins"])["provider"] == "p1"  # still the race leader


async def test_leaderboard_methods_history_events_and_overview_api(start_livechain, racing_providers, tmp_path):
    _, proxies = racing_providers
    lc = await start_livechain(persisted_config(proxies, str(tmp_path / "a.sqlite")))
    for i in range(30):
        await lc.rpc("eth_getBalance", ["0x" + "00" * 20, "latest"], rid=i)
        await lc.rpc("eth_blockNumber", rid=i)
    await asyncio.sleep(2.5)
    board = await lc.api("/api/chains/dev/leaderboard")
    assert [r["rank"] for r in board["ranked"]] == [1, 2, 3]
    scores = [r["score"] for r in board["ranked"]]
    assert scores == sorted(scores, reverse=True)
    fastest = max(board["ranked"], key=lambda r: r["race"]["wins"])
    assert fastest["provider"] == "p1" and fastest["race"]["races"] >= 5 and fastest["race"]["win_rate"] > 0.5
    assert set(fastest["rpc"]) == {"score", "success_rate", "p50_ms", "samples"}
    # head delay (wins count 0): the provider 60 ms late delivers heads later than the one 30 ms late
    delay = {r["provider"]: r["race"] for r in board["ranked"]}
    assert delay["p1"]["delay_p50_ms"] == 0.0 and delay["p2"]["delay_p50_ms"] > delay["p0"]["delay_p50_ms"] > 0
    assert delay["p2"]["delay_p90_ms"] >= delay["p2"]["delay_p50_ms"]
    _, _, metrics = await lc.get("/metrics")
    assert 'livechain_race_delay_ms{chain="dev",event="newHeads",provider="p2",quantile="0.5"' in metrics.decode()
    matrix = await lc.api("/api/chains/31337/methods")
    assert {"eth_getBalance", "eth_blockNumber"} <= set(matrix["methods"])
    cell = next(matrix["cells"][p]["eth_getBalance"] for p in matrix["providers"] if "eth_getBalance" in matrix["cells"][p])
    assert cell["count"] >= 1 and cell["p50_ms"] > 0
    history = await lc.api("/api/chains/dev/history?kind=rpc&method=eth_getBalance")
    assert history["points"] and sum(p["count"] for p in history["points"]) >= 30
    races = await lc.api("/api/chains/dev/history?kind=race&provider=p1")
    assert races["points"] and all(p["provider"] == "p1" for p in races["points"])
    overview = await lc.api("/api/chains")
    dev = overview["chains"][0]
    assert overview["region"] == "local" and dev["rps"] > 0 and dev["status"] == "ok" and dev["best_head"] > 0
    events = await lc.api("/api/events?since=0&limit=5")
    assert events["seq"] >= 1 and len(events["events"]) <= 5
    status, _, _ = await lc.get("/api/chains/dev/leaderboard?region=nowhere")
    assert status == 404


async def test_another_regions_snapshot_is_readable_for_comparison_and_stats_prints_it(
    start_livechain, racing_providers, tmp_path
):
    """A database written by region 'eu' is loaded read-only by region 'us' (persistence.compare) and shown
    with ?region=eu; `livechain stats --region eu` prints the same ranking as a table."""
    _, proxies = racing_providers
    eu_db = str(tmp_path / "eu.sqlite")
    eu = await start_livechain(persisted_config(proxies, eu_db, region="eu"))
    for i in range(20):
        await eu.rpc("eth_blockNumber", rid=i)
    await asyncio.sleep(2.0)
    await eu.app.stop()  # clean shutdown writes the final snapshot
    us_config = persisted_config(proxies, str(tmp_path / "us.sqlite"), region="us").replace(
        "snapshot_interval: 1s}", f"snapshot_interval: 1s, compare: ['{eu_db}']}}"
    )
    us = await start_livechain(us_config)
    overview = await us.api("/api/chains")
    assert overview["regions"] == ["eu", "us"]
    board = await us.api("/api/chains/dev/leaderboard?region=eu")
    assert board["region"] == "eu" and board["ranked"][0]["race"]["races"] >= 3
    cfg = tmp_path / "eu.yaml"
    cfg.write_text(persisted_config(proxies, eu_db, region="eu"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livechain", "stats", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    text = out.decode()
    assert "dev — region eu" in text and "win rate" in text
    first_row = text.splitlines()[4]
    assert first_row.split()[1] == board["ranked"][0]["provider"]
