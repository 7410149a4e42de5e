"""`livechain demo`: local anvil chains behind simulated providers, the proxy and the dashboard — no internet.

Two chains: `ethereum-local` (1 s blocks) and `fastnet` (250 ms blocks). Each chain's node sits behind
fault proxies with distinct profiles, which are the chain's providers:

    swift    ~5 ms            the one that should win most races
    steady   ~35 ms ± 10 ms
    distant  ~110 ms ± 40 ms
    flaky    ~20 ms, 5 % of requests answered 502     (ethereum-local only)

The proxies' faults can be changed live from the dashboard (demo mode) or from the fault control port.
Ctrl-C stops every process the demo started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass

from livechain import log as logsetup
from livechain.app import App, run
from livechain.config import ConfigStore, parse_config
from livechain.demo.controls import Controls
from livechain.devnet import Anvil
from livechain.faults import Fault, FaultControlServer, FaultProxy

log = logging.getLogger("livechain.demo")


@dataclass(frozen=True)
class Profile:
    id: str
    fault: Fault


CHAINS: dict[str, tuple[int, float, tuple[Profile, ...]]] = {
    "ethereum-local": (
        31337,
        1.0,
        (
            Profile("swift", Fault(latency_ms=5, jitter_ms=2)),
            Profile("steady", Fault(latency_ms=35, jitter_ms=10)),
            Profile("distant", Fault(latency_ms=110, jitter_ms=40)),
            Profile("flaky", Fault(mode="http_status", status=502, probability=0.05, latency_ms=20, jitter_ms=5)),
        ),
    ),
    "fastnet": (
        31338,
        0.25,
        (
            Profile("swift", Fault(latency_ms=4, jitter_ms=2)),
            Profile("steady", Fault(latency_ms=30, jitter_ms=8)),
            Profile("distant", Fault(latency_ms=90, jitter_ms=30)),
        ),
    ),
}


class Demo:
    """Everything the demo runs, owned in one place so one stop() ends it all."""

    def __init__(self) -> None:
        self.nodes: dict[str, Anvil] = {}
        self.proxies: dict[str, FaultProxy] = {}  # "chain/provider" → proxy
        self.control: FaultControlServer | None = None
        self.app: App | None = None

    async def start(self, host: str, port: int, sqlite_path: str | None = None) -> App:
        chains_yaml = ""
        for chain, (chain_id, block_time, profiles) in CHAINS.items():
            node = self.nodes[chain] = await Anvil(block_time=block_time, chain_id=chain_id).start()
            chains_yaml += (
                f"  {chain}:\n    chain_id: {chain_id}\n    strategy: leaderboard\n    health_interval: 2s\n"
                f"    attempt_timeout: 2s\n    deadline: 6s\n    hedge_after: 400ms\n    methods: {{allow: ['*'], deny: ['anvil_*', 'evm_*']}}\n"
                f"    breaker: {{failure_threshold: 4, recovery_timeout: 5s}}\n    providers:\n"
            )
            for profile in profiles:
                proxy = FaultProxy(node.host, node.port, name=f"{chain}/{profile.id}")
                await proxy.start()
                proxy.set(profile.fault)
                self.proxies[f"{chain}/{profile.id}"] = proxy
                chains_yaml += f"      - {{id: {profile.id}, http_url: '{proxy.url}/', ws_url: '{proxy.ws_url}/'}}\n"
        persistence = f"{{sqlite_path: '{sqlite_path}', snapshot_interval: 30s}}" if sqlite_path else "{sqlite_path: null}"
        text = (
            f"region: demo\nserver: {{host: '{host}', port: {port}}}\n"
            f"persistence: {persistence}\nlogging: {{level: info, format: text}}\n"
            f"metrics: {{window: 2m}}\nchains:\n{chains_yaml}"
        )
        self.control = FaultControlServer(self.proxies)
        await self.control.start()
        self.app = App(
            ConfigStore(None, parse_config(text)),
            admin_token=os.environ.get("LIVECHAIN_ADMIN_TOKEN"),
            plugins=[Controls.factory(self.proxies, demo=True)],
        )
        await self.app.start()
        return self.app

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
        if self.control is not None:
            await self.control.stop()
        for proxy in self.proxies.values():
            await proxy.stop()
        for node in self.nodes.values():
            await node.stop()


async def _main(host: str, port: int) -> None:
    demo = Demo()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sqlite_path = os.path.join(tempfile.gettempdir(), "livechain-demo.sqlite")
    try:
        app = await demo.start(host, port, sqlite_path)
        base = f"http://{app.host}:{app.port}"
        print(
            "\nLivechain demo is running (Ctrl-C stops everything it started)\n"
            f"  dashboard       {base}/dashboard\n"
            + "".join(f"  JSON-RPC        {base}/rpc/{name}   ws://{app.host}:{app.port}/ws/rpc/{name}\n" for name in CHAINS)
            + f"  health          {base}/api/health\n"
            f"  metrics         {base}/metrics\n"
            f"  fault control   {demo.control.url}/faults\n",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        await demo.stop()


def main(host: str = "127.0.0.1", port: int = 4000) -> int:
    logsetup.setup("info", "text")
    try:
        run(_main(host, port))
    except FileNotFoundError as exc:
        print(f"livechain demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"livechain demo: {exc} (is port {port} free? try --port 0)", file=sys.stderr)
        return 1
    return 0
