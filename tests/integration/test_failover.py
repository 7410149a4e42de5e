"""Failover and breakers against anvil behind fault proxies: the client never sees a provider fault."""

from __future__ import annotations

import asyncio
import time

import pytest

from livechain.faults import Fault
from tests.conftest import FAKE_KEY, config_text, dev_chain, wait_for

FAST = dict(
    attempt_timeout="400ms",
    deadline="4s",
    breaker="{failure_threshold: 3, recovery_timeout: 1s, success_threshold: 2}",
)
METHODS = [
    ("eth_chainId", []),
    ("eth_blockNumber", []),
    ("eth_getBalance", ["0x" + "00" * 20, "latest"]),
    ("eth_getBlockByNumber", ["latest", False]),
]




async def ready(lc, chain="dev"):
    """Wait until every provider's chain id and head are known (health checks ran once)."""
    pool = lc.chain(chain).pool
    assert await wait_for(lambda: all(p.chain_id_ok and p.head is not None for p in pool.providers))


def transitions(lc, provider):
    return [(e["old"], e["new"]) for e in lc.app.events.recent(500) if e["kind"] == "breaker" and e["provider"] == provider]


def assert_no_secret(lc):
    """The planted key is in no response body or header and no log line (metrics are a response too)."""
    assert lc.logs.getvalue(), "logs were captured"
    assert lc.leaks(FAKE_KEY) == []


@pytest.mark.parametrize(
    "fault",
    [
        Fault(mode="refuse"),
        Fault(mode="reset"),
        Fault(mode="blackhole"),
        Fault(mode="http_status", status=502),
        Fault(mode="garbage"),
        Fault(mode="reset_mid_response"),
        Fault(mode="stall"),
    ],
    ids=lambda f: f.mode if f.mode != "http_status" else f"http_{f.status}",
)
async def test_faulted_first_choice_fails_over_and_its_breaker_opens_then_recovers(start_livechain, proxies, fault):
    """Every request succeeds while p0 is faulted; p0's breaker opens after the threshold, and after the
    fault is removed it goes half_open and closes again; p0 then serves again. No fake key leaks anywhere."""
    lc = await start_livechain(config_text(dev_chain(proxies, **FAST)))
    await ready(lc)
    assert (await lc.rpc("eth_chainId"))["_provider"] == "p0"
    proxies[0].set(fault)
    providers = set()
    for i in range(24):
        method, params = METHODS[i % len(METHODS)]
        reply = await lc.rpc(method, params, rid=i)
        assert "result" in reply, reply
        assert reply["id"] == i and reply["_status"] == 200
        providers.add(reply["_provider"])
    p0 = lc.chain().provider("p0")
    assert providers <= {"p0", "p1"} and "p1" in providers
    assert p0.breaker.state.value == "open", (transitions(lc, "p0"), p0.last_errors, lc.chain().store.rpc("p0"))
    proxies[0].clear()
    assert await wait_for(lambda: p0.breaker.state.value == "closed")
    assert transitions(lc, "p0")[:3] == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert (await lc.rpc("eth_chainId"))["_provider"] == "p0"
    _, _, metrics = await lc.get("/metrics")
    await lc.get("/api/chains/dev/providers")
    await lc.get("/api/health")
    assert_no_secret(lc)
    assert b'livechain_breaker_state{chain="dev",provider="p0",region="local",transport="http"} 0.0' in metrics


async def test_rate_limited_provider_cools_down_without_opening_its_breaker(start_livechain, proxies):
    """429 + Retry-After: requests fail over, p0 is set aside for Retry-After, its breaker stays closed."""
    lc = await start_livechain(config_text(dev_chain(proxies, **FAST)))
    await ready(lc)
    proxies[0].set(Fault(mode="http_status", status=429, retry_after=1.0))
    for i in range(20):
        reply = await lc.rpc("eth_blockNumber", rid=i)
        assert "result" in reply and reply["_provider"] == "p1"
    p0 = lc.chain().provider("p0")
    assert p0.breaker.state.value == "closed"
    assert p0.cooldown_until > 0
    failures = lc.chain().store.rpc("p0").get("p0", {})
    assert any("rate_limited" in m["failures"] for m in failures.values())
    proxies[0].clear()
    assert await wait_for(lambda: not p0.cooling_down(time.monotonic()))
    assert (await lc.rpc("eth_chainId"))["_provider"] == "p0"


async def test_all_providers_down_gives_a_fast_clear_error_and_recovers(start_livechain, proxies):
    """All refused: one error that counts attempts and names no URL; after the breakers open, errors are
    immediate; when providers return, service resumes within one breaker cycle."""
    lc = await start_livechain(config_text(dev_chain(proxies, **FAST)))
    for proxy in proxies:
        proxy.set(Fault(mode="refuse"))
    reply = await lc.rpc("eth_chainId")
    assert reply["error"]["code"] == -32002 and "3 attempt" in reply["error"]["message"]
    assert reply["_attempts"] == 3
    chain = lc.chain()
    assert await wait_for(lambda: all(p.breaker.state.value == "open" for p in chain.pool.providers))
    started = time.perf_counter()
    reply = await lc.rpc("eth_chainId")
    assert reply["error"]["code"] == -32002 and time.perf_counter() - started < 0.1
    for proxy in proxies:
        proxy.clear()
    assert await wait_for(lambda: all(p.breaker.state.value == "closed" for p in chain.pool.providers), timeout=5)
    assert "result" in await lc.rpc("eth_chainId")
    await lc.get("/metrics")
    assert_no_secret(lc)


async def test_priority_always_uses_the_first_healthy_provider(start_livechain, proxies):
    lc = await start_livechain(config_text(dev_chain(proxies, **FAST)))
    await ready(lc)
    assert {(await lc.rpc("eth_chainId"))["_provider"] for _ in range(20)} == {"p0"}
    proxies[0].set(Fault(mode="refuse"))
    assert {(await lc.rpc("eth_chainId"))["_provider"] for _ in range(20)} == {"p1"}


async def test_round_robin_spreads_3n_requests_within_one_per_provider(start_livechain, proxies):
    lc = await start_livechain(config_text(dev_chain(proxies, "round_robin", health_interval="10s")))
    await ready(lc)
    counts: dict[str, int] = {}
    for i in range(60):
        provider = (await lc.rpc("eth_chainId", rid=i))["_provider"]
        counts[provider] = counts.get(provider, 0) + 1
    assert set(counts) == {"p0", "p1", "p2"}
    assert max(counts.values()) - min(counts.values()) <= 1


async def test_fastest_converges_on_the_lowest_latency_provider(start_livechain, proxies):
    """p0 +60 ms, p1 +30 ms, p2 +0 ms: after a short warm-up, most requests go to p2."""
    for proxy, ms in zip(proxies, (60, 30, 0), strict=True):
        proxy.set(Fault(latency_ms=ms))
    lc = await start_livechain(config_text(dev_chain(proxies, "fastest", health_interval="10s")))
    for i in range(15):
        await lc.rpc("eth_getBalance", ["0x" + "00" * 20, "latest"], rid=i)
    picks = [(await lc.rpc("eth_getBalance", ["0x" + "00" * 20, "latest"], rid=i))["_provider"] for i in range(60)]
    assert picks.count("p2") >= 45, picks


async def test_provider_serving_another_chain_id_is_excluded(start_livechain, proxies):
    """A second anvil with --chain-id 999 configured as a provider of chain 31337 never serves it."""
    from livechain.devnet import Anvil
    from tests.conftest import chain_yaml, provider_yaml

    async with Anvil(block_time=None, chain_id=999) as wrong:
        providers = provider_yaml("wrong", wrong.url, priority=0) + provider_yaml("right", proxies[0].url, priority=1)
        lc = await start_livechain(config_text(chain_yaml("dev", 31337, providers, health_interval="200ms")))
        chain = lc.chain()
        assert await wait_for(lambda: chain.provider("wrong").chain_id_ok is False)
        assert {(await lc.rpc("eth_chainId"))["_provider"] for _ in range(10)} == {"right"}
        assert any(e["kind"] == "chain_id_mismatch" for e in lc.app.events.recent())
        assert '"got": 999' in lc.logs.getvalue() or '"got":999' in lc.logs.getvalue()


async def test_client_disconnect_cancels_the_attempt_without_blaming_the_provider(start_livechain, proxies):
    """A client that goes away mid-request: no breaker failure and no failover for that provider."""
    lc = await start_livechain(config_text(dev_chain(proxies, attempt_timeout="3s", deadline="5s", health_interval="10s")))
    await ready(lc)  # the first health checks are done; the next ones are 10 s away
    proxies[0].set(Fault(mode="stall"))
    _, writer = await asyncio.open_connection("127.0.0.1", lc.app.port)
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
    writer.write(b"POST /rpc/dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    p0 = lc.chain().provider("p0")
    assert await wait_for(lambda: p0.inflight == 1, timeout=2)
    writer.close()
    assert await wait_for(lambda: p0.inflight == 0, timeout=2)
    assert p0.breaker.consecutive_failures == 0
    assert not any(e["kind"] == "failover" for e in lc.app.events.recent())


async def test_hedging_answers_from_the_next_provider_while_the_first_choice_is_silent(start_livechain, proxies):
    """hedge_after 100ms, attempt_timeout 3s: with p0 blackholed, each request is answered by p1 after about
    the hedge delay instead of waiting out p0's attempt timeout; a healthy p0 answers alone (no hedge); the
    beaten attempts still end in failures on p0's record."""
    lc = await start_livechain(config_text(dev_chain(
        proxies, hedge_after="100ms", attempt_timeout="3s", deadline="5s", health_interval="10s",
        breaker="{failure_threshold: 50, recovery_timeout: 10s}",
    )))
    await ready(lc)
    reply = await lc.rpc("eth_chainId")
    assert reply["_provider"] == "p0" and reply["_attempts"] == 1
    proxies[0].set(Fault(mode="blackhole"))
    for i in range(5):
        started = time.perf_counter()
        reply = await lc.rpc("eth_getBalance", ["0x" + "00" * 20, "latest"], rid=i)
        elapsed = time.perf_counter() - started
        assert reply["result"] == "0x0" and reply["_provider"] == "p1" and reply["_attempts"] == 2
        assert elapsed < 1.5, elapsed  # far below p0's 3 s attempt timeout
    assert sum(1 for e in lc.app.events.recent() if e["kind"] == "hedge") == 5
    p0 = lc.chain().provider("p0")
    assert p0.inflight == 5  # the beaten attempts run on to their own timeout …
    await wait_for(lambda: p0.inflight == 0, timeout=6)
    assert p0.breaker.consecutive_failures == 5  # … and are recorded: a silent provider is still failing
