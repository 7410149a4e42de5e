"""The chaos matrix: one faulted provider of three, every fault × {HTTP, WS}, under steady load.

Each row runs a fresh anvil (0.25 s blocks) behind three fault proxies p0..p2 and a fresh Livechain (strategy
priority, p0 first; p0 is also the fastest provider, so it wins the WebSocket races). After a short warm-up the
row's fault is applied to p0 for FAULT_S seconds, then cleared, while clients keep sending requests:

- HTTP rows: HTTP_WORKERS sequential JSON-RPC clients on POST /rpc/dev.
- WS rows: one WebSocket client with a newHeads subscription and WS_WORKERS concurrent request loops over it.

Invariants asserted per row (while two providers stay healthy): every request gets a result (and a correct
one: chain id 31337, blocks that are the node's own, eth_blockNumber never going backwards for a client);
over WS the newHeads stream is consecutive, duplicate-free, equal to the node's blocks (number → hash) and
fresh at the end. The planted FAKE_KEY is in no response, no API page and no log line.

Two "all providers down" rows check the other side: a fast, clear JSON-RPC error -32002 once the breakers
are open, and recovery within one breaker cycle (recovery_timeout + health_interval, plus scheduling slack)
after the providers return; over WS the head stream then resumes without a gap.

Every row's figures go to tests/chaos/conftest.py ROWS; the table is printed at the end of the session and
written to artifacts/chaos_matrix.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import aiohttp
import orjson
import pytest

from livechain import log as logsetup
from livechain.app import App
from livechain.config import ConfigStore, parse_config
from livechain.devnet import Anvil
from livechain.faults import Fault, FaultProxy
from livechain.routing.selection import eligible
from tests.chaos.conftest import ROWS, Row, write_artifact
from tests.conftest import FAKE_KEY, Livechain, chain_yaml, config_text, provider_yaml, wait_for
from tests.evm_helpers import DEV_ADDRESS
from tests.ws.client import WsClient

BLOCK_TIME = 0.25
WARM_S = 0.5
FAULT_S = 3.0
TAIL_S = 1.0
HTTP_WORKERS = 4
WS_WORKERS = 3
#: added provider→client latency per provider: p0 (the faulted one) is the fastest and first by priority
LATENCY_MS = (0, 15, 30)
RECOVERY_TIMEOUT = 1.0
HEALTH_INTERVAL = 0.2
MAX_LAG = 2
#: scheduling slack on a loaded 2-core box for the "one breaker cycle" recovery bound
RECOVERY_SLACK = 0.6
#: an error answered while every breaker is open must come back at least this fast
FAST_ERROR_S = 0.1
SETTINGS = dict(
    strategy="priority",
    attempt_timeout="500ms",
    deadline="3s",
    max_lag_blocks=MAX_LAG,
    health_interval=f"{int(HEALTH_INTERVAL * 1000)}ms",
    ws_liveness="1s",
    breaker=f"{{failure_threshold: 3, recovery_timeout: {RECOVERY_TIMEOUT:g}s}}",
)
METHODS: list[tuple[str, list]] = [
    ("eth_blockNumber", []),
    ("eth_chainId", []),
    ("eth_getBalance", [DEV_ADDRESS, "latest"]),
    ("eth_getBlockByNumber", ["latest", False]),
]
CHAIN_ID_HEX = "0x7a69"  # 31337
#: two anvils started together mine identical empty blocks (the chain id is not in the header): the wrong-chain
#: node gets another genesis timestamp so that its blocks really differ from the main node's
OTHER_GENESIS = ("--timestamp", "1600000000")


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault | None = None
    #: what p0 fronts: "main" (the row's node), "wrong_chain" (an anvil with chain id 999) or "stalled"
    #: (a fork of the main node that never mines)
    target: str = "main"
    #: abort p0's live connections right after setting the fault, so the provider WebSocket meets it too
    #: (the HTTP-answering modes leave live WebSockets alone; blackhole then catches the reconnects)
    drop_first: bool = False
    #: abort p0's live connections every N seconds while faulted
    drop_every: float = 0.0
    #: p0's ws_url goes to an anvil with chain id 999 (its http_url stays on the right chain)
    ws_wrong_chain: bool = False


SCENARIOS = [
    Scenario("refuse", Fault(mode="refuse")),
    Scenario("reset mid-response", Fault(mode="reset_mid_response")),
    Scenario("blackhole", Fault(mode="blackhole"), drop_first=True),
    Scenario("latency 2 s", Fault(latency_ms=2000)),
    Scenario("HTTP 503", Fault(mode="http_status", status=503), drop_first=True),
    Scenario("HTTP 429 + Retry-After 1 s", Fault(mode="http_status", status=429, retry_after=1.0), drop_first=True),
    Scenario("malformed body", Fault(mode="garbage"), drop_first=True),
    Scenario("wrong chain id", target="wrong_chain"),
    Scenario("stalled head", target="stalled"),
    Scenario("WS drop every 300 ms", drop_every=0.3),
    Scenario("WS silent", Fault(mode="silent")),
]


# ---------------------------------------------------------------------------------------------- harness




@dataclass
class Rig:
    node: Anvil
    proxies: list[FaultProxy]
    lc: Livechain
    p0_target: Anvil

    @property
    def chain(self):
        return self.lc.chain()

    def p(self, pid: str):
        return self.chain.provider(pid)


@pytest.fixture(scope="module", autouse=True)
def chaos_table() -> Any:
    """Writes artifacts/chaos_matrix.md once the module's rows are measured (printing is conftest's)."""
    yield
    if ROWS:
        write_artifact(ROWS, complete=len(ROWS) >= 2 * len(SCENARIOS) + 4)


@pytest.fixture
async def rig() -> AsyncIterator[Callable[[Scenario], Any]]:
    """`await rig(scenario)` → a Rig; everything is stopped in reverse order at teardown."""
    logs = io.StringIO()
    logsetup.setup("debug", "json", stream=logs)
    stack = contextlib.AsyncExitStack()

    async def anvil(**kwargs: Any) -> Anvil:
        node = await Anvil(**kwargs).start()
        stack.push_async_callback(node.stop)
        return node

    async def build(scenario: Scenario) -> Rig:
        node = await anvil(block_time=BLOCK_TIME)
        target = node
        if scenario.target == "wrong_chain":
            target = await anvil(block_time=BLOCK_TIME, chain_id=999, extra_args=OTHER_GENESIS)
        elif scenario.target == "stalled":
            while int(await node.rpc("eth_blockNumber"), 16) < 3:  # type: ignore[arg-type]
                await asyncio.sleep(0.05)  # a few blocks in, so the fork has some history
            target = await anvil(block_time=None, fork_url=node.url)
        proxies = []
        for i, ms in enumerate(LATENCY_MS):
            upstream = target if i == 0 else node
            proxy = FaultProxy(upstream.host, upstream.port, name=f"p{i}")
            await proxy.start()
            stack.push_async_callback(proxy.stop)
            if ms:
                proxy.set(Fault(latency_ms=ms))
            proxies.append(proxy)
        ws_urls = [p.ws_url for p in proxies]
        if scenario.ws_wrong_chain:
            other = await anvil(block_time=BLOCK_TIME, chain_id=999, extra_args=OTHER_GENESIS)
            ws_proxy = FaultProxy(other.host, other.port, name="p0-ws")
            await ws_proxy.start()
            stack.push_async_callback(ws_proxy.stop)
            ws_urls[0] = ws_proxy.ws_url
        providers = "".join(
            provider_yaml(
                f"p{i}", f"{p.url}/?apikey={FAKE_KEY}{i}", ws_url=f"{ws_urls[i]}/?apikey={FAKE_KEY}{i}", priority=i
            )
            for i, p in enumerate(proxies)
        )
        text = config_text(chain_yaml("dev", 31337, providers, **SETTINGS))
        app = App(ConfigStore(None, parse_config(text)))
        await app.start("127.0.0.1", 0)
        stack.push_async_callback(app.stop)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        stack.push_async_callback(session.close)
        built = Rig(node, proxies, Livechain(app, session, logs), target)
        await ready(built)
        return built

    try:
        yield build
    finally:
        await stack.aclose()
        logging.getLogger("livechain").handlers.clear()


async def ready(rig: Rig) -> None:
    """Every provider's chain id is known (heads too, for the right ones), every provider WebSocket is up
    and carries the head feed, and the canonical head stream has started."""
    chain = rig.chain
    subs = chain.subscriptions

    def ok() -> bool:
        for p in chain.pool.providers:
            if p.chain_id_ok is None or (p.chain_id_ok and p.head is None):
                return False
        # a provider on another chain (over HTTP, or only on its WebSocket) is never subscribed
        foreign_ws = {e["provider"] for e in rig.lc.app.events.recent(2000)
                      if e["kind"] == "chain_id_mismatch" and e.get("transport") == "ws"}
        expected = {p.id for p in chain.pool.providers if p.chain_id_ok} - foreign_ws
        return (
            all(ws.connected for ws in subs.upstreams.values())
            and set(subs.heads.live) >= expected
            and subs.tracker.last_number is not None
        )

    assert await wait_for(ok, 15), chain.snapshot()


# ---------------------------------------------------------------------------------------------- load


@dataclass
class Tally:
    """What the clients saw."""

    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    #: (end time, ok, latency s, error code or None) per request, in completion order
    timeline: list[tuple[float, bool, float, int | None]] = field(default_factory=list)
    #: worker → eth_blockNumber results in order
    block_numbers: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    #: (number, hash) of every block returned by eth_getBlockByNumber
    blocks: set[tuple[int, str]] = field(default_factory=set)
    #: (end time, provider) of HTTP answers
    providers: list[tuple[float, str]] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)

    def record(self, wid: int, method: str, rid: int, reply: Any, started: float, status: int = 200) -> None:
        end = time.perf_counter()
        latency = end - started
        self.requests += 1
        self.latencies.append(latency)
        problem = None
        code = None
        if status != 200:
            problem = f"HTTP {status}"
        if not isinstance(reply, dict):
            problem = f"not an object: {str(reply)[:120]}"
        else:
            error = reply.get("error")
            if isinstance(error, dict):
                code = error.get("code")
            if reply.get("jsonrpc") != "2.0" or reply.get("id") != rid:
                problem = problem or f"bad envelope: {str(reply)[:160]}"
            elif "result" not in reply or error is not None:
                problem = problem or f"{method}: error {str(error)[:160]}"
            else:
                result = reply["result"]
                if method == "eth_chainId" and result != CHAIN_ID_HEX:
                    problem = f"eth_chainId answered {result!r}"
                elif method == "eth_blockNumber":
                    self.block_numbers[wid].append(int(result, 16))
                elif method == "eth_getBlockByNumber":
                    if not isinstance(result, dict):
                        problem = f"eth_getBlockByNumber answered {str(result)[:80]}"
                    else:
                        self.blocks.add((int(result["number"], 16), result["hash"]))
        if problem is not None:
            self.errors.append(f"{method}: {problem}")
        self.timeline.append((end, problem is None, latency, code))

    def fail(self, method: str, started: float, exc: BaseException) -> None:
        end = time.perf_counter()
        self.requests += 1
        self.latencies.append(end - started)
        self.errors.append(f"{method}: {type(exc).__name__} {str(exc)[:120]}")
        self.timeline.append((end, False, end - started, None))

    def p99_ms(self, since: float = 0.0) -> float:
        values = sorted(lat for end, _, lat, _ in self.timeline if end >= since)
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(0.99 * len(values)))] * 1000

    def backwards(self) -> list[tuple[int, int]]:
        """eth_blockNumber steps that went backwards, per client."""
        return [(a, b) for seq in self.block_numbers.values() for a, b in pairwise(seq) if b < a]


def request_body(method: str, params: list, rid: int) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})


async def http_worker(lc: Livechain, tally: Tally, stop: asyncio.Event, wid: int) -> None:
    i = 0
    while not stop.is_set():
        method, params = METHODS[(i + wid) % len(METHODS)]
        rid = wid * 1_000_000 + i
        i += 1
        started = time.perf_counter()
        try:
            status, headers, body = await lc.post("/rpc/dev", request_body(method, params, rid))
            reply = orjson.loads(body)
        except Exception as exc:
            tally.fail(method, started, exc)
            await asyncio.sleep(0.01)
            continue
        tally.record(wid, method, rid, reply, started, status)
        provider = headers.get("X-Livechain-Provider")
        if provider:
            tally.providers.append((time.perf_counter(), provider))


async def ws_worker(client: WsClient, tally: Tally, stop: asyncio.Event, wid: int) -> None:
    i = 0
    while not stop.is_set():
        method, params = METHODS[(i + wid) % len(METHODS)]
        i += 1
        started = time.perf_counter()
        try:
            reply = await client.call(method, params, timeout=8)
        except Exception as exc:
            tally.fail(method, started, exc)
            await asyncio.sleep(0.05)
            continue
        tally.replies.append(orjson.dumps(reply))
        tally.record(wid, method, reply.get("id"), reply, started)


class Heads:
    """Collects one client's newHeads notifications with their arrival time."""

    def __init__(self, client: WsClient, sid: str) -> None:
        self.client, self.sid = client, sid
        self.items: list[tuple[float, dict]] = []
        self.task = asyncio.get_running_loop().create_task(self._run(), name="chaos/heads")

    async def _run(self) -> None:
        while True:
            head = await self.client.next(self.sid, timeout=3600)
            self.items.append((time.perf_counter(), head))

    async def stop(self) -> list[dict]:
        await asyncio.sleep(0.1)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return [h for _, h in self.items]


class Load:
    """Steady client load over one transport until stopped."""

    def __init__(self, rig: Rig, transport: str) -> None:
        self.rig = rig
        self.transport = transport
        self.tally = Tally()
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.client: WsClient | None = None
        self.heads: Heads | None = None

    async def start(self) -> Load:
        loop = asyncio.get_running_loop()
        if self.transport == "http":
            for wid in range(HTTP_WORKERS):
                self.tasks.append(
                    loop.create_task(http_worker(self.rig.lc, self.tally, self.stop_event, wid), name=f"chaos/http/{wid}")
                )
        else:
            self.client = await WsClient().connect(f"ws://127.0.0.1:{self.rig.lc.app.port}/ws/rpc/dev")
            sid = await self.client.subscribe("newHeads")
            self.heads = Heads(self.client, sid)
            for wid in range(WS_WORKERS):
                self.tasks.append(
                    loop.create_task(ws_worker(self.client, self.tally, self.stop_event, wid), name=f"chaos/ws/{wid}")
                )
        return self

    async def stop(self) -> list[dict]:
        self.stop_event.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 15)
        heads: list[dict] = []
        if self.heads is not None:
            heads = await self.heads.stop()
        if self.client is not None:
            await self.client.close()
        self.rig.lc.transcript.extend(self.tally.replies)
        self.rig.lc.transcript.extend(orjson.dumps(h) for h in heads)
        return heads


# ---------------------------------------------------------------------------------------------- checks


@dataclass
class HeadCheck:
    heads: int
    gaps: int
    duplicates: int
    out_of_order: int
    foreign: int
    numbers: list[int]


async def check_heads(node: Anvil, heads: list[dict]) -> HeadCheck:
    """Compare the heads a client received with the node's own chain, number → hash."""
    numbers = [int(h["number"], 16) for h in heads]
    unique = set(numbers)
    gaps = (max(numbers) - min(numbers) + 1 - len(unique)) if numbers else 0
    foreign = 0
    for head in heads:
        block = await node.rpc("eth_getBlockByNumber", [head["number"], False])
        if not isinstance(block, dict) or block["hash"] != head["hash"]:
            foreign += 1
    return HeadCheck(
        heads=len(heads),
        gaps=gaps,
        duplicates=len(numbers) - len(unique),
        out_of_order=sum(1 for a, b in pairwise(numbers) if b <= a),
        foreign=foreign,
        numbers=numbers,
    )


async def foreign_blocks(node: Anvil, blocks: set[tuple[int, str]]) -> list[tuple[int, str]]:
    """eth_getBlockByNumber answers that are not the node's block at that height."""
    bad = []
    for number, block_hash in sorted(blocks):
        block = await node.rpc("eth_getBlockByNumber", [hex(number), False])
        if not isinstance(block, dict) or block["hash"] != block_hash:
            bad.append((number, block_hash))
    return bad


async def assert_no_leak(lc: Livechain) -> None:
    """The planted key is in no response (including the API pages and /metrics) and no log line."""
    for path in ("/metrics", "/api/health", "/api/chains/dev/providers", "/api/events?since=0"):
        status, _, _ = await lc.get(path)
        assert status == 200, path
    assert lc.logs.getvalue(), "logs were captured"
    assert lc.leaks(FAKE_KEY) == []


def failovers(lc: Livechain) -> int:
    return lc.app.events.counts.get("failover", 0)


# ---------------------------------------------------------------------------------------------- the rows


@pytest.mark.parametrize("transport", ["http", "ws"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name.replace(" ", "_") for s in SCENARIOS])
async def test_a_faulted_preferred_provider_is_invisible_to_clients(rig, scenario: Scenario, transport: str) -> None:
    """With p0 (first by priority, fastest for races) faulted and p1, p2 healthy: zero client-visible
    errors, every answer correct for chain 31337, eth_blockNumber never backwards per client; over WS the
    newHeads stream has no gap, no duplicate, only the node's blocks, and is fresh at the end."""
    r: Rig = await rig(scenario)
    lc, node, p0 = r.lc, r.node, r.proxies[0]
    load = await Load(r, transport).start()
    await asyncio.sleep(WARM_S)

    failovers_before = failovers(lc)
    fault_started = time.perf_counter()
    if scenario.fault is not None:
        p0.set(scenario.fault)
    if scenario.drop_first:
        p0.drop_connections()
    drops = 0
    while time.perf_counter() - fault_started < FAULT_S:
        if scenario.drop_every:
            await asyncio.sleep(scenario.drop_every)
            drops += p0.drop_connections() > 0
        else:
            await asyncio.sleep(0.1)
    provider0 = r.p("p0")
    p0_state = {
        "breaker": provider0.breaker.state.value,
        "transitions": provider0.breaker.transitions,
        "eligible": provider0 in eligible(r.chain.pool, "eth_blockNumber", r.chain.clock),
        "lag": (r.chain.pool.best_head or 0) - (provider0.head or 0),
        "chain_id_ok": provider0.chain_id_ok,
        "cooldowns": lc.app.events.counts.get("cooldown", 0),
    }
    if scenario.fault is not None:
        p0.set(Fault())
    await asyncio.sleep(TAIL_S)
    heads = await load.stop()
    failover_count = failovers(lc) - failovers_before

    tally = load.tally
    row = Row(scenario.name, transport.upper(), tally.requests, len(tally.errors), failover_count, tally.p99_ms())
    check: HeadCheck | None = None
    if transport == "ws":
        check = await check_heads(node, heads)
        row.heads, row.gaps, row.duplicates = check.heads, check.gaps, check.duplicates
    foreign = await foreign_blocks(node, tally.blocks)
    backwards = tally.backwards()
    if drops:
        row.notes.append(f"{drops} drops")
    if scenario.target == "wrong_chain":
        row.notes.append(f"p0 chain_id_ok={p0_state['chain_id_ok']}")
    elif scenario.target == "stalled":
        row.notes.append(f"p0 lag {p0_state['lag']}, eligible={p0_state['eligible']}")
    elif scenario.fault is not None and scenario.fault.mode == "http_status" and scenario.fault.status == 429:
        row.notes.append(f"p0 breaker {p0_state['breaker']}, {p0_state['cooldowns']} cooldowns")
    else:
        row.notes.append(f"p0 breaker {p0_state['breaker']} ({p0_state['transitions']} transitions)")
    ROWS.append(row)

    assert tally.requests >= 20, "the load generator stalled"
    assert tally.errors == [], tally.errors[:10]
    assert foreign == [], f"blocks that are not the node's: {foreign[:5]}"
    assert backwards == [], f"eth_blockNumber went backwards: {backwards[:5]}"
    if check is not None:
        assert check.gaps == 0 and check.duplicates == 0 and check.out_of_order == 0, check.numbers
        assert check.foreign == 0, f"{check.foreign} heads are not the node's blocks"
        expected = (WARM_S + FAULT_S + TAIL_S) / BLOCK_TIME
        assert check.heads >= 0.6 * expected, f"only {check.heads} heads in {expected:.0f} block times"
        node_head = int(await node.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]
        assert check.numbers[-1] >= node_head - 4, f"stream is stale: last {check.numbers[-1]}, node {node_head}"
    if scenario.target == "wrong_chain":
        assert p0_state["chain_id_ok"] is False
        assert all(pid != "p0" for _, pid in tally.providers)
    if scenario.target == "stalled":
        assert p0_state["lag"] > MAX_LAG and not p0_state["eligible"], p0_state
        if transport == "http":
            late = [pid for t, pid in tally.providers if t > fault_started + 1.5]
            assert late and "p0" not in late, "the stalled provider still answered once it lagged"
    if scenario.fault is not None and scenario.fault.status == 429 and scenario.fault.mode == "http_status":
        assert p0_state["breaker"] == "closed", "a rate-limited provider must not trip its breaker"
    await assert_no_leak(lc)


@pytest.mark.parametrize("transport", ["http", "ws"])
async def test_all_providers_down_gives_fast_clear_errors_then_recovers_within_one_breaker_cycle(
    rig, transport: str
) -> None:
    """Every provider refused: each request still gets one JSON-RPC reply, error -32002; once every breaker
    is open those errors come back in under FAST_ERROR_S. When the providers return, requests succeed again
    within recovery_timeout + health_interval (+ slack), and over WS the head stream resumes gap-free."""
    r: Rig = await rig(Scenario("all down"))
    lc, node = r.lc, r.node
    load = await Load(r, transport).start()
    await asyncio.sleep(WARM_S)
    failovers_before = failovers(lc)
    t_down = time.perf_counter()
    for proxy in r.proxies:
        proxy.set(Fault(mode="refuse"))
    providers = r.chain.pool.providers
    assert await wait_for(lambda: all(p.breaker.state.value == "open" for p in providers), 8)
    t_open = time.perf_counter()
    await asyncio.sleep(1.0)
    t_up = time.perf_counter()
    for proxy, ms in zip(r.proxies, LATENCY_MS, strict=True):
        proxy.set(Fault(latency_ms=ms))
    await asyncio.sleep(2.5)
    heads_items = list(load.heads.items) if load.heads is not None else []
    heads = await load.stop()
    tally = load.tally

    down = [(end, ok, lat, code) for end, ok, lat, code in tally.timeline if t_down + 0.05 < end < t_up]
    open_errors = sorted(lat for end, ok, lat, code in down if end > t_open + 0.05 and not ok)
    fast_p99 = open_errors[min(len(open_errors) - 1, int(0.99 * len(open_errors)))] if open_errors else 0.0
    codes = {code for _, ok, _, code in down if not ok}
    after = [(end, ok) for end, ok, _, _ in tally.timeline if end > t_up]
    last_error = max((end for end, ok in after if not ok), default=t_up)
    recovered = min((end for end, ok in after if ok and end >= last_error), default=None)
    recovery_s = (recovered - t_up) if recovered is not None else float("inf")
    head_resume_s = min((t for t, _ in heads_items if t > t_up), default=float("inf")) - t_up

    row = Row("all providers down", transport.upper(), tally.requests, len(tally.errors),
              failovers(lc) - failovers_before, tally.p99_ms())
    row.notes.append(f"breakers open after {t_open - t_down:.2f} s")
    row.notes.append(f"-32002 while open: p99 {fast_p99 * 1000:.1f} ms over {len(open_errors)}")
    row.notes.append(f"recovered {recovery_s:.2f} s after providers returned")
    check: HeadCheck | None = None
    if transport == "ws":
        check = await check_heads(node, heads)
        row.heads, row.gaps, row.duplicates = check.heads, check.gaps, check.duplicates
        row.notes.append(f"heads resumed after {head_resume_s:.2f} s")
    ROWS.append(row)

    assert down and all(not ok for _, ok, _, _ in down), "requests succeeded with every provider refusing"
    assert codes == {-32002}, codes
    assert open_errors, "no request was answered while every breaker was open"
    assert fast_p99 < FAST_ERROR_S, f"errors with open breakers took {fast_p99 * 1000:.0f} ms (p99)"
    assert recovery_s <= RECOVERY_TIMEOUT + HEALTH_INTERVAL + RECOVERY_SLACK, f"recovered after {recovery_s:.2f} s"
    if check is not None:
        assert check.gaps == 0 and check.duplicates == 0 and check.out_of_order == 0, check.numbers
        assert check.foreign == 0
        node_head = int(await node.rpc("eth_blockNumber"), 16)  # type: ignore[arg-type]
        assert check.numbers[-1] >= node_head - 4, f"stream is stale: last {check.numbers[-1]}, node {node_head}"
    await assert_no_leak(lc)


# ---------------------------------------------------------------------------------------------- beyond the matrix


async def test_a_provider_whose_websocket_serves_another_chain_never_reaches_newheads_clients(rig) -> None:
    """p0's http_url is on chain 31337 (so its eth_chainId check passes) but its ws_url reaches a chain-999
    node — a classic copy-paste misconfiguration. Its heads must never reach clients and the stream must keep
    flowing from p1/p2: consecutive, duplicate-free, the node's own blocks, fresh at the end.

    Guards: each provider WebSocket must answer the chain's eth_chainId before anything is subscribed on it
    (subscriptions/manager.py _connected), and a head that cannot be placed is skipped rather than retried
    forever (subscriptions/heads.py _work)."""
    r: Rig = await rig(Scenario("wrong chain id on the WebSocket only", ws_wrong_chain=True))
    load = await Load(r, "ws").start()
    await asyncio.sleep(4.0)
    heads = await load.stop()
    check = await check_heads(r.node, heads)
    row = Row("wrong chain id on p0's WS only", "WS", load.tally.requests, len(load.tally.errors), 0,
              load.tally.p99_ms(), check.heads, check.gaps, check.duplicates)
    row.notes.append(f"{check.foreign} foreign heads delivered")
    if check.heads < 0.6 * 4.0 / BLOCK_TIME:
        row.notes.append(f"stream stalled: {check.heads} heads in 4 s")
    ROWS.append(row)
    assert check.foreign == 0, f"{check.foreign} heads from chain 999 reached the client: {check.numbers}"
    assert check.gaps == 0 and check.duplicates == 0 and check.out_of_order == 0, check.numbers
    assert check.heads >= 0.6 * 4.0 / BLOCK_TIME, f"the head stream stalled after {check.heads} heads"
    await assert_no_leak(r.lc)


FLAP_CYCLES = 7
RECONNECT_BOUND_S = 3.0


async def test_provider_websockets_reset_right_after_each_reconnect_come_back_promptly_once_healthy(rig) -> None:
    """Every provider's WebSocket is reset FLAP_CYCLES times, each time 0.3 s after it came back (every
    reconnect succeeds at once: the providers are healthy, only their connections get cut, as behind a
    flapping load balancer). Once the resets stop, each provider must be connected again within
    RECONNECT_BOUND_S and the newHeads stream must be flowing — with no gap over the whole run.

    Guard: UpstreamWs resets its backoff as soon as a connection is ready (connected, chain id checked,
    subscribed), so short-lived but successful connections cannot push a healthy provider's next reconnect
    out by tens of seconds (full jitter, base 0.2 s, cap 10 s in the subscription manager)."""
    r: Rig = await rig(Scenario("flapping WebSockets"))
    load = await Load(r, "ws").start()
    upstreams = r.chain.subscriptions.upstreams

    async def flap(i: int) -> None:
        ws = upstreams[f"p{i}"]
        last = None
        for _ in range(FLAP_CYCLES):
            # every cycle cuts a new connection (connects counts the opened sockets)
            assert await wait_for(lambda last=last: ws.connected and ws.stats["connects"] != last, 60, 0.01)
            last = ws.stats["connects"]
            await asyncio.sleep(0.3)
            r.proxies[i].drop_connections()
            assert await wait_for(lambda: not ws.connected, 5, 0.01)  # the loss is noticed asynchronously

    await asyncio.gather(*(flap(i) for i in range(3)))
    stopped = time.perf_counter()
    back: dict[str, float] = {}

    def all_back() -> bool:
        for pid, ws in upstreams.items():
            if ws.connected and pid not in back:
                back[pid] = time.perf_counter() - stopped
        return len(back) == len(upstreams)

    await wait_for(all_back, RECONNECT_BOUND_S, 0.01)
    await asyncio.sleep(1.0)
    heads_items = list(load.heads.items) if load.heads is not None else []
    heads = await load.stop()
    check = await check_heads(r.node, heads)
    resumed = min((t for t, _ in heads_items if t > stopped), default=float("inf")) - stopped
    delays = {pid: round(s.get("reconnect_delay_s") or 0, 2) for pid, s in ((p, u.stats) for p, u in upstreams.items())}
    row = Row("WS reset after each reconnect x7", "WS", load.tally.requests, len(load.tally.errors), 0,
              load.tally.p99_ms(), check.heads, check.gaps, check.duplicates)
    row.notes.append(
        f"reconnected within {RECONNECT_BOUND_S:g} s: {sorted(back) or 'none'} (last reconnect delays drawn: {delays} s); "
        f"heads resumed after {resumed:.2f} s"
    )
    ROWS.append(row)
    assert check.gaps == 0 and check.duplicates == 0 and check.foreign == 0, check.numbers
    assert len(back) == 3, (
        f"only {sorted(back)} reconnected within {RECONNECT_BOUND_S} s of the last reset; "
        f"last reconnect delays drawn: {delays}"
    )
    assert resumed <= RECONNECT_BOUND_S, f"no head for {resumed:.1f} s after the resets stopped"
    await assert_no_leak(r.lc)
