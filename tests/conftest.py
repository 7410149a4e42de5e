"""Shared test harness: real anvil nodes, fault proxies in front of them, a real Livechain on port 0."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
import uvloop

from livechain import log as logsetup
from livechain.app import App
from livechain.config import ConfigStore, parse_config
from livechain.demo.controls import Controls
from livechain.devnet import Anvil
from livechain.faults import FaultProxy
from tests.rpc_proxy import RpcProxy


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll a condition on real systems until it holds or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def on_both_loops(scenario: Callable[[], Awaitable[None]]) -> Callable[[str], None]:
    """A test that runs an async scenario (no fixtures) on the stdlib loop and on uvloop, which production
    runs, within 10 s each."""

    @pytest.mark.parametrize("loop", list(LOOPS))
    def test(loop: str) -> None:
        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            runner.run(asyncio.wait_for(scenario(), 10))

    test.__name__ = test.__qualname__ = scenario.__name__
    test.__doc__ = scenario.__doc__
    return test


#: planted in provider URLs; must never leave Livechain (responses, headers, logs, /metrics)
FAKE_KEY = "LCFAKEKEY0123456789abcdef"


class Livechain:
    """A running App on an ephemeral port, with a small JSON-RPC client."""

    def __init__(self, app: App, session: aiohttp.ClientSession, logs: io.StringIO) -> None:
        self.app = app
        self.session = session
        self.logs = logs
        #: every response's status line, headers and body, for secret-leak checks
        self.transcript: list[bytes] = []
        self.base = f"http://127.0.0.1:{app.port}"

    @property
    def registry(self):
        return self.app.registry

    @property
    def controls(self) -> Controls:
        """The plugged-in simulator and fault controls."""
        return next(p for p in self.app.edge.plugins if isinstance(p, Controls))

    def chain(self, name: str = "dev"):
        return self.app.registry.resolve(name)

    async def post(self, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, bytes]:
        hdrs = {"content-type": "application/json", **(headers or {})}
        async with self.session.post(self.base + path, data=body, headers=hdrs) as resp:
            return self._record(resp.status, resp.headers.copy(), await resp.read())

    async def get(self, path: str) -> tuple[int, dict, bytes]:
        async with self.session.get(self.base + path) as resp:
            return self._record(resp.status, resp.headers.copy(), await resp.read())

    def _record(self, status: int, headers: Any, body: bytes) -> tuple[int, Any, bytes]:
        self.transcript.append(f"{status} {list(headers.items())}".encode() + body)
        return status, headers, body

    def leaks(self, secret: str) -> list[str]:
        """Where `secret` appeared: responses (bodies, headers) and log lines."""
        found = [f"response: {t[:200]!r}" for t in self.transcript if secret.encode() in t]
        found += [f"log: {line[:200]}" for line in self.logs.getvalue().splitlines() if secret in line]
        return found

    async def rpc(self, method: str, params: list | None = None, *, path: str = "/rpc/dev", rid: Any = 1) -> dict:
        status, headers, body = await self.post(
            path, orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []})
        )
        reply = orjson.loads(body)
        reply["_status"] = status
        reply["_provider"] = headers.get("X-Livechain-Provider")
        reply["_attempts"] = int(headers.get("X-Livechain-Attempts", "0"))
        return reply

    async def api(self, path: str) -> Any:
        status, _, body = await self.get(path)
        assert status == 200, body
        return orjson.loads(body)


def provider_yaml(pid: str, url: str, ws_url: str | None = None, priority: int | None = None) -> str:
    line = f"      - {{id: {pid}, http_url: '{url}'"
    if ws_url:
        line += f", ws_url: '{ws_url}'"
    if priority is not None:
        line += f", priority: {priority}"
    return line + "}\n"


def chain_yaml(name: str, chain_id: int, providers: str, **settings: Any) -> str:
    """A chain's YAML. The response cache and coalescing are off unless a test turns them on
    (`cache="{enabled: true}"`, `coalesce="true"`): most tests are about which provider answers each request."""
    settings.setdefault("cache", "{enabled: false}")
    settings.setdefault("coalesce", "false")
    text = f"  {name}:\n    chain_id: {chain_id}\n"
    for key, value in settings.items():
        text += f"    {key}: {value}\n"
    return text + "    providers:\n" + providers


def config_text(chains: str, extra: str = "") -> str:
    return "persistence: {sqlite_path: null}\nlogging: {level: info, format: json}\n" + extra + "chains:\n" + chains


@pytest.fixture
async def anvil() -> AsyncIterator[Anvil]:
    node = Anvil(block_time=None)  # blocks on demand (evm_mine) unless a test asks for a block time
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def proxies(anvil: Anvil) -> AsyncIterator[list[FaultProxy]]:
    """Three fault proxies in front of the one anvil: three providers of one chain."""
    made = [FaultProxy(anvil.host, anvil.port, name=f"p{i}") for i in range(3)]
    for proxy in made:
        await proxy.start()
    try:
        yield made
    finally:
        for proxy in made:
            await proxy.stop()


@pytest.fixture
async def rpc_proxy(anvil: Anvil) -> AsyncIterator[RpcProxy]:
    """A counting `RpcProxy` (tests/rpc_proxy.py, no range limit) in front of the one anvil."""
    async with RpcProxy(anvil) as proxy:
        yield proxy


@pytest.fixture
async def twins() -> AsyncIterator[Any]:
    """A started `Twins` (tests/twins.py): two anvil nodes serving one chain, mining on demand; both
    stopped at teardown."""
    from tests.twins import Twins  # eth_account takes half a second to import: only where it is used

    async with Twins(2) as started:
        yield started


@pytest.fixture
async def start_livechain() -> AsyncIterator:
    """`await start_livechain(config_text)` → a running Livechain; everything is stopped at teardown."""
    started: list[tuple[App, aiohttp.ClientSession]] = []
    logs = io.StringIO()
    logsetup.setup("debug", "json", stream=logs)

    async def start(
        text: str, config_path: str | None = None, *, faults: dict | None = None, demo: bool = False, **app_kwargs: Any
    ) -> Livechain:
        """`faults` ("chain/provider" → proxy) and `demo` plug in the demo's controls, as `livechain demo` does;
        without them the simulator controls are plugged in as `livechain serve` does."""
        store = ConfigStore(config_path, parse_config(text))
        app = App(store, plugins=[Controls.factory(faults, demo=demo)], **app_kwargs)
        await app.start("127.0.0.1", 0)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        started.append((app, session))
        return Livechain(app, session, logs)

    try:
        yield start
    finally:
        for app, session in started:
            await session.close()
            await app.stop()
        logging.getLogger("livechain").handlers.clear()


def dev_chain(proxies: list[FaultProxy], strategy: str = "priority", **settings: Any) -> str:
    """One chain 'dev' (anvil's 31337) whose providers p0..pN are the fault proxies, p0 first by priority;
    every provider URL carries the planted fake key. The response cache is off (see `chain_yaml`)."""
    providers = ""
    for i, proxy in enumerate(proxies):
        url = f"{proxy.url}/?apikey={FAKE_KEY}{i}"
        providers += provider_yaml(f"p{i}", url, priority=i)
    settings.setdefault("health_interval", "200ms")
    settings.setdefault("strategy", strategy)
    return chain_yaml("dev", 31337, providers, **settings)
