"""Graceful shutdown, crash isolation between chains, expensive queries, and connection-level limits."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time

import aiohttp
import orjson

from livechain.devnet import Anvil
from livechain.faults import Fault
from tests.conftest import chain_yaml, config_text, dev_chain, provider_yaml, wait_for
from tests.integration.test_persistence import start_process

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'


async def test_sigterm_finishes_in_flight_requests_closes_websockets_and_writes_the_final_snapshot(proxies, tmp_path):
    for proxy in proxies:
        proxy.set(Fault(latency_ms=800))
    db = tmp_path / "lc.sqlite"
    providers = "".join(
        provider_yaml(f"p{i}", f"{p.url}/", ws_url=f"{p.ws_url}/") for i, p in enumerate(proxies)
    )
    cfg = tmp_path / "lc.yaml"
    cfg.write_text(
        f"persistence: {{sqlite_path: '{db}', snapshot_interval: 1h}}\nlogging: {{level: info, format: json}}\n"
        "chains:\n" + chain_yaml("dev", 31337, providers, attempt_timeout="3s", health_interval="10s")
    )
    proc, port = await start_process(str(cfg))
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws/rpc/dev")
        in_flight = asyncio.ensure_future(session.post(f"http://127.0.0.1:{port}/rpc/dev", data=BODY))
        await asyncio.sleep(0.3)  # the request is now waiting on an 800 ms provider
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        response = await in_flight
        assert response.status == 200 and (await response.json())["result"] == "0x7a69"
        message = await ws.receive(timeout=10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1001
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert time.monotonic() - started < 10
        try:
            await session.post(f"http://127.0.0.1:{port}/rpc/dev", data=BODY)
            raise AssertionError("a stopped server accepted a connection")
        except aiohttp.ClientConnectionError:
            pass
        await ws.close()
    rows = sqlite3.connect(db).execute("SELECT chain FROM snapshots").fetchall()
    assert rows == [("dev",)]


async def test_a_crash_in_one_chains_task_restarts_that_part_and_leaves_other_chains_alone(start_livechain, proxies, anvil):
    other = await Anvil(block_time=None, chain_id=31338).start()
    providers_a = provider_yaml("p0", proxies[0].url + "/")
    providers_b = provider_yaml("b0", other.url + "/")
    try:
        await _crash_scenario(start_livechain, anvil, providers_a, providers_b)
    finally:
        await other.stop()


async def _crash_scenario(start_livechain, anvil, providers_a, providers_b):
    lc = await start_livechain(config_text(
        chain_yaml("alpha", 31337, providers_a, health_interval="100ms")
        + chain_yaml("beta", 31338, providers_b, health_interval="100ms")
    ))
    provider = lc.chain("alpha").provider("p0")
    real = provider.attempt
    crashes = {"left": 3}

    async def flaky_attempt(*args, **kwargs):
        if crashes["left"]:
            crashes["left"] -= 1
            raise RuntimeError("injected bug")
        return await real(*args, **kwargs)

    provider.attempt = flaky_attempt
    restarts = lc.app.restarts
    before = restarts.get("alpha/health/p0", 0)
    beta_ok = 0
    for i in range(30):
        reply = await lc.rpc("web3_clientVersion", path="/rpc/beta", rid=i)
        beta_ok += "result" in reply
        await asyncio.sleep(0.03)
    for _ in range(100):
        if restarts.get("alpha/health/p0", 0) - before >= 3:
            break
        await asyncio.sleep(0.05)
    assert restarts["alpha/health/p0"] - before == 3
    assert beta_ok == 30
    assert sum(1 for e in lc.app.events.recent(500) if e["kind"] == "restart" and e["chain"] == "alpha") == 3
    assert '"task": "alpha/health/p0"' in lc.logs.getvalue() or '"task":"alpha/health/p0"' in lc.logs.getvalue()
    head_before = provider.head
    await anvil.rpc("evm_mine", [])
    for _ in range(100):  # the restarted health loop keeps tracking the head
        if provider.head is not None and (head_before is None or provider.head > head_before):
            break
        await asyncio.sleep(0.05)
    assert provider.head is not None and (head_before is None or provider.head > head_before)


async def test_expensive_queries_that_time_out_do_not_trip_breakers(start_livechain, proxies):
    """eth_getLogs timing out is the client's cost: no breaker failure, counted as client_timeout."""
    lc = await start_livechain(config_text(dev_chain(
        proxies, attempt_timeout="200ms", deadline="2s", health_interval="10s",
        breaker="{failure_threshold: 2, recovery_timeout: 5s}",
    )))
    for proxy in proxies:
        proxy.set(Fault(latency_ms=400))
    for i in range(4):
        reply = await lc.rpc("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x0"}], rid=i)
        assert reply["error"]["code"] == -32002
    chain = lc.chain()
    assert all(p.breaker.state.value == "closed" for p in chain.pool.providers)
    failures = chain.store.rpc()
    assert all(set(m["eth_getLogs"]["failures"]) == {"client_timeout"} for m in failures.values())
    for i in range(4):  # the same slowness on a cheap method is the provider's fault
        await lc.rpc("eth_chainId", rid=i)
    assert any(p.breaker.state.value == "open" for p in chain.pool.providers)


async def test_a_burst_bigger_than_the_providers_pool_fails_over_without_tripping_its_breaker(start_livechain, proxies):
    """p0 (first by priority) has 2 upstream connections and answers in 300 ms; 40 concurrent requests with a
    1 s attempt timeout: the ones that waited in Livechain's queue fail over to p1 as `saturated` — all 40 are
    answered, p0's breaker stays closed and none of its outcomes is a provider timeout."""
    chain_text = dev_chain(
        proxies, attempt_timeout="1s", deadline="5s", health_interval="10s",
        breaker="{failure_threshold: 2, recovery_timeout: 5s}",
    ).replace("priority: 0}", "priority: 0, max_connections: 2}")
    lc = await start_livechain(config_text(chain_text))
    chain = lc.chain()
    assert await wait_for(lambda: all(p.chain_id_ok and p.head is not None for p in chain.pool.providers))
    proxies[0].set(Fault(latency_ms=300))
    replies = await asyncio.gather(*(lc.rpc("eth_chainId", rid=i) for i in range(40)))
    assert [r.get("result") for r in replies] == ["0x7a69"] * 40
    providers = [r["_provider"] for r in replies]
    assert "p0" in providers and "p1" in providers
    outcomes = chain.store.rpc()["p0"]["eth_chainId"]
    assert chain.pool.providers[0].breaker.state.value == "closed", (outcomes, [e for e in chain.pool.providers[0].last_errors if e["kind"] != "saturated"])
    assert set(outcomes["failures"]) == {"saturated"}, outcomes
    assert [r.get("result") for r in await asyncio.gather(*(lc.rpc("eth_chainId", rid=i) for i in range(2)))] == ["0x7a69"] * 2

async def test_slowloris_idle_and_per_address_connection_limits(start_livechain, proxies):
    lc = await start_livechain(config_text(
        dev_chain(proxies),
        "server: {header_timeout: 300ms, idle_timeout: 500ms, max_connections_per_ip: 4}\n",
    ))
    port = lc.app.port
    # slowloris: headers dribbled in never finish; the server hangs up after header_timeout
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /rpc/dev HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert 0.25 <= time.monotonic() - started < 2
    writer.close()
    # idle keep-alive connection is closed after idle_timeout
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /rpc/dev HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
    await reader.readexactly(length)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert 0.4 <= time.monotonic() - started < 2
    writer.close()
    # connections per address: the 5th concurrent connection is refused with 429
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    refused = await asyncio.wait_for(reader.read(), 3)
    assert refused.startswith(b"HTTP/1.1 429") and orjson.loads(refused.split(b"\r\n\r\n", 1)[1])["error"]["code"] == -32005
    for _, w in held:
        w.close()
    writer.close()
    await asyncio.sleep(0.1)
    assert (await lc.post("/rpc/dev", BODY))[0] == 200


async def test_an_abusive_client_is_limited_while_others_are_served(start_livechain, proxies):
    lc = await start_livechain(config_text(
        dev_chain(proxies), "auth: {per_ip: {rate: 50, burst: 50}, trust_forwarded_for: true}\n"
    ))

    async def flood() -> list[int]:
        return [(await lc.post("/rpc/dev", BODY, {"X-Forwarded-For": "6.6.6.6"}))[0] for _ in range(200)]

    async def polite() -> list[int]:
        out = []
        for _ in range(20):
            out.append((await lc.post("/rpc/dev", BODY, {"X-Forwarded-For": "7.7.7.7"}))[0])
            await asyncio.sleep(0.02)
        return out

    flooded, served = await asyncio.gather(flood(), polite())
    assert flooded.count(429) >= 100
    assert served == [200] * 20



async def test_request_headers_over_64_kib_get_431_with_a_json_rpc_body_and_the_connection_closes(start_livechain, proxies):
    lc = await start_livechain(config_text(dev_chain(proxies)))
    reader, writer = await asyncio.open_connection("127.0.0.1", lc.app.port)
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(70))  # ~71 KiB of headers
    writer.write(b"POST /rpc/dev HTTP/1.1\r\nHost: x\r\n" + filler + b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
    answer = await asyncio.wait_for(reader.read(), 5)  # read() to EOF: the server closes after answering
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431")
    assert orjson.loads(body)["error"]["code"] == -32600
    writer.close()
    assert (await lc.post("/rpc/dev", BODY))[0] == 200  # the next client is unaffected


async def test_a_websocket_with_256_requests_in_flight_gets_32005_for_more_and_stays_usable(start_livechain, proxies):
    chain = dev_chain(proxies, attempt_timeout="5s", deadline="10s")
    # enough upstream connections that all 256 are in flight at the provider at once (the default pool is 32)
    lc = await start_livechain(config_text(chain.replace(", priority:", ", max_connections: 300, priority:")))
    for proxy in proxies:
        proxy.set(Fault(latency_ms=1500))  # every answer takes 1.5 s: requests pile up in flight
    sent = 300
    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws://127.0.0.1:{lc.app.port}/ws/rpc/dev") as ws:
        for i in range(sent):
            await ws.send_str(f'{{"jsonrpc":"2.0","id":{i},"method":"eth_chainId"}}')
        async def receive() -> dict | list:
            return orjson.loads((await ws.receive(timeout=20)).data)

        refused = [await receive() for _ in range(sent - 256)]  # at once, while the first 256 are in flight
        assert [r["id"] for r in refused] == list(range(256, sent))
        assert all(r["error"]["code"] == -32005 and "in flight" in r["error"]["message"] for r in refused)
        # a batch while they still fly: one error per item with an id, none for the notification
        await ws.send_str('[{"jsonrpc":"2.0","id":"b1","method":"eth_chainId"},{"jsonrpc":"2.0","method":"eth_chainId"}]')
        batch = await receive()
        assert [(r["id"], r["error"]["code"]) for r in batch] == [("b1", -32005)]
        answered = [await receive() for _ in range(256)]
        assert sorted(r["id"] for r in answered) == list(range(256))
        assert all(r.get("result") == "0x7a69" for r in answered), [r for r in answered if "error" in r][:3]
        for proxy in proxies:
            proxy.set(Fault())
        await ws.send_str('{"jsonrpc":"2.0","id":"after","method":"eth_chainId"}')
        assert orjson.loads((await ws.receive(timeout=10)).data) == {"jsonrpc": "2.0", "id": "after", "result": "0x7a69"}
