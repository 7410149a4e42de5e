"""Raced subscriptions against one real anvil behind three fault proxies with different latencies."""

from __future__ import annotations

import asyncio
import time

import pytest

from livechain.devnet import Anvil
from livechain.faults import Fault, FaultProxy
from tests.conftest import chain_yaml, config_text, provider_yaml
from tests.ws.client import WsClient

LATENCY_MS = {"p0": 80, "p1": 40, "p2": 0}  # p2 is the fastest, p0 the slowest (and first by priority)


@pytest.fixture
async def node():
    async with Anvil(block_time=0.25) as anvil:
        yield anvil


@pytest.fixture
async def racing(node):
    made = []
    for pid, ms in LATENCY_MS.items():
        proxy = FaultProxy(node.host, node.port, name=pid)
        await proxy.start()
        proxy.set(Fault(latency_ms=ms))
        made.append(proxy)
    yield made
    for proxy in made:
        await proxy.stop()


def ws_chain(proxies, **settings) -> str:
    providers = "".join(
        provider_yaml(f"p{i}", f"{p.url}/", ws_url=f"{p.ws_url}/", priority=i) for i, p in enumerate(proxies)
    )
    settings.setdefault("health_interval", "300ms")
    settings.setdefault("attempt_timeout", "600ms")
    settings.setdefault("ws_liveness", "1s")
    settings.setdefault("breaker", "{failure_threshold: 3, recovery_timeout: 1s}")
    return config_text(chain_yaml("dev", 31337, providers, **settings))


async def collect_heads(client: WsClient, sid: str, seconds: float) -> list[dict]:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(await client.next(sid, timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
    return out


def numbers(heads: list[dict]) -> list[int]:
    return [int(h["number"], 16) for h in heads]


async def assert_matches_node(node: Anvil, heads: list[dict]) -> None:
    """Consecutive, no duplicates, and each hash is the node's block at that height."""
    got = numbers(heads)
    assert got == list(range(got[0], got[0] + len(got))), got
    for head in heads:
        block = await node.rpc("eth_getBlockByNumber", [head["number"], False])
        assert block["hash"] == head["hash"]


async def test_each_head_arrives_once_and_the_fastest_provider_wins_by_the_injected_margins(start_livechain, racing, node):
    lc = await start_livechain(ws_chain(racing))
    client = await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")
    try:
        sid = await client.subscribe("newHeads")
        heads = await collect_heads(client, sid, 4.0)
        assert len(heads) >= 10
        await assert_matches_node(node, heads)
        await asyncio.sleep(0.3)
        races = lc.chain().store.races()
        wins = {p: races[p]["newHeads"]["wins"] for p in LATENCY_MS}
        total = sum(wins.values())
        assert wins["p2"] >= 0.8 * total, wins
        margin_p1 = races["p1"]["newHeads"]["avg_margin_ms"]
        margin_p0 = races["p0"]["newHeads"]["avg_margin_ms"]
        assert 25 <= margin_p1 <= 70, margin_p1  # injected difference: 40 ms
        assert 60 <= margin_p0 <= 120, margin_p0  # injected difference: 80 ms
        providers = await lc.api("/api/chains/dev/providers")
        p2 = next(p for p in providers["providers"] if p["id"] == "p2")
        assert p2["races"]["newHeads"]["wins"] >= 8 and p2["races"]["newHeads"]["missed"] == 0
        assert p2["ws"]["state"] == "ready"
    finally:
        await client.close()


async def test_no_gap_no_duplicate_while_the_winner_is_killed_reset_blackholed_stalled_and_all_but_one_fail(
    start_livechain, racing, node
):
    """The winning provider is faulted four ways in turn, then two of three fail, then all three go silent
    for a while: the client's block sequence stays consecutive, duplicate-free and equal to the node's."""
    lc = await start_livechain(ws_chain(racing))
    client = await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")
    p0, p1, p2 = racing
    try:
        sid = await client.subscribe("newHeads")
        heads = await collect_heads(client, sid, 1.0)
        for fault in (Fault(mode="refuse"), Fault(mode="reset"), Fault(mode="blackhole"), Fault(mode="stall")):
            p2.set(fault)
            heads += await collect_heads(client, sid, 1.5)
            p2.set(Fault(latency_ms=0))
            heads += await collect_heads(client, sid, 1.5)
        p2.set(Fault(mode="refuse"))
        p1.set(Fault(mode="blackhole"))
        heads += await collect_heads(client, sid, 2.0)
        p0.set(Fault(mode="blackhole"))  # now nobody delivers: blocks pile up on the node
        heads += await collect_heads(client, sid, 2.0)
        p0.set(Fault(latency_ms=80))
        p1.set(Fault(latency_ms=40))
        p2.set(Fault(latency_ms=0))
        heads += await collect_heads(client, sid, 4.0)
        assert len(heads) >= 40
        await assert_matches_node(node, heads)
        assert lc.chain().subscriptions.tracker.backfilled >= 1  # the silent period was filled over HTTP
        kinds = {e["kind"] for e in lc.app.events.recent(2000)}
        assert {"ws_disconnect", "ws_connect"} <= kinds
    finally:
        await client.close()


async def test_a_provider_later_than_the_race_window_counts_missed_events_and_is_never_delivered_twice(
    start_livechain, racing, node
):
    """p0 delivers every head 1.5 s late with a 1 s race window: each of its arrivals is recognised as late,
    it gets a missed event per head, and clients still see every head exactly once."""
    racing[0].set(Fault(latency_ms=1500))
    lc = await start_livechain(ws_chain(racing, race_window="1s", ws_liveness="3s"))
    client = await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev")
    try:
        sid = await client.subscribe("newHeads")
        heads = await collect_heads(client, sid, 7.0)  # p0 is subscribed only ~2 s in (its replies are late too)
        await assert_matches_node(node, heads)
        providers = await lc.api("/api/chains/dev/providers")
        by_id = {p["id"]: p for p in providers["providers"]}
        assert by_id["p0"]["races"]["newHeads"]["missed"] >= 5
        assert by_id["p2"]["races"]["newHeads"]["missed"] == 0
        assert lc.chain().subscriptions.heads.aggregator.late >= 5
    finally:
        await client.close()


async def test_identical_subscriptions_share_one_provider_subscription_until_the_last_leaves(start_livechain, racing):
    lc = await start_livechain(ws_chain(racing))
    clients = [await WsClient().connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev") for _ in range(3)]
    manager = lc.chain().subscriptions
    flt = {"address": "0x" + "22" * 20}
    try:
        sids = [await c.subscribe("logs", flt) for c in clients]
        assert len(set(sids)) == 3
        await asyncio.sleep(1.0)
        logs_feeds = [f for f in manager.feeds.values() if f.kind == "logs"]
        assert len(logs_feeds) == 1 and len(logs_feeds[0].clients) == 3
        assert sorted(logs_feeds[0].upstream) == ["p0", "p1", "p2"]
        for client, sid in zip(clients, sids, strict=True):
            assert (await client.call("eth_unsubscribe", [sid]))["result"] is True
        assert not [f for f in manager.feeds.values() if f.kind == "logs"]
        assert (await clients[0].call("eth_unsubscribe", [sids[0]]))["result"] is False
    finally:
        for client in clients:
            await client.close()
