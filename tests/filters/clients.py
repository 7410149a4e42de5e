"""The filter-polling clients under test, driven the same way: viem and ethers as node subprocesses printing
JSON lines (js/*.mjs), web3.py in-process. Each records what it received per watcher, the errors it saw and
the JSON-RPC methods it sent, so a test can compare with the chain and check that filters were really used.

Also the contract the streams come from: `Ping(uint256 seq)` with a real event signature, so that viem's
`watchContractEvent` and ethers' `contract.on` can decode it (tests/evm_helpers.py's emitter logs a made-up
topic).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import AsyncHTTPProvider, AsyncWeb3

from tests.evm_helpers import DEV_ADDRESS, receipt

JS = Path(__file__).parent / "js"
ROOT = JS.parents[2]  # node runs here, as in tests/ws: node_modules resolves from the repository root

#: keccak256("Ping(uint256)")
PING_TOPIC = "0x48257dc961b6f792c2b78a080dacfed693b660960a702de21cee364e20270e2f"
#: every poll loop of every client, in seconds (anvil mines every 0.5 s)
POLL_S = 0.3
KINDS = ("logs", "blocks", "pending")


def pinger_init_code() -> str:
    """Every call emits `Ping(seq)` (LOG1, topic PING_TOPIC) with its first calldata word as `seq`."""
    runtime = "600035600052" + "7f" + PING_TOPIC[2:] + "60206000a1" + "00"
    size = len(runtime) // 2
    return "0x" + f"60{size:02x}600c60003960{size:02x}6000f3" + runtime


async def deploy_pinger(node) -> str:
    tx_hash = await node.rpc(
        "eth_sendTransaction", [{"from": DEV_ADDRESS, "data": pinger_init_code(), "gas": "0x30000"}]
    )
    return (await receipt(node, tx_hash))["contractAddress"]


async def ping(node, address: str, seq: int) -> str:
    """Send one transaction that emits `Ping(seq)` (directly to the node); returns its hash."""
    data = "0x" + f"{seq:064x}"
    return await node.rpc(
        "eth_sendTransaction", [{"from": DEV_ADDRESS, "to": address, "data": data, "gas": "0x30000"}]
    )


@dataclass
class Received:
    """What one client got, per watcher."""

    name: str
    #: what the client watches: some of "logs", "blocks", "pending"
    kinds: tuple[str, ...]
    logs: dict[str, list[dict]] = field(default_factory=dict)
    blocks: dict[str, list[dict]] = field(default_factory=dict)
    #: pending transaction hashes, per watcher
    txs: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    methods: Counter[str] = field(default_factory=Counter)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, msg: dict) -> None:
        kind = msg.get("event")
        if kind == "log":
            self.logs.setdefault(msg["watcher"], []).append(msg)
        elif kind == "block":
            self.blocks.setdefault(msg["watcher"], []).append(msg)
        elif kind == "tx":
            self.txs.setdefault(msg["watcher"], []).append(msg["hash"])
        elif kind == "error":
            self.errors.append(f"{msg.get('watcher')}: {msg.get('message')} {msg.get('details', '')}".strip())
        elif kind == "methods":
            self.methods = Counter(msg["methods"])
        elif kind == "ready":
            self.ready.set()


class JsClient:
    """A node script from js/ as a subprocess: `start()`, wait `received.ready`, `stop()`."""

    def __init__(self, script: str, url: str, address: str, kinds: tuple[str, ...] = KINDS) -> None:
        self.script = script
        self.url = url
        self.address = address
        self.received = Received(script.removesuffix(".mjs"), kinds)
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._done = asyncio.Event()
        self.stderr = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            str(JS / self.script),
            self.url,
            self.address,
            ",".join(self.received.kinds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
        )
        self._reader = asyncio.create_task(self._read(), name=f"js/{self.script}")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:  # ethers reports failed filter polls with console.log("@TODO", error)
                self.received.errors.append(f"stdout: {line.decode(errors='replace').strip()[:500]}")
                continue
            if msg.get("event") == "done":
                self._done.set()
            else:
                self.received.add(msg)

    async def stop(self, timeout: float = 30.0) -> None:
        """Ask the script to unwatch and report; kill it if it does not finish within `timeout`."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            with contextlib.suppress(ConnectionError):
                self.proc.stdin.write(b"stop\n")
                await self.proc.stdin.drain()
            async with asyncio.timeout(timeout):
                await self._done.wait()
                await self.proc.wait()
        except TimeoutError:
            self.received.errors.append(f"{self.script} did not stop within {timeout} s")
        finally:
            await self.close()
        if self.proc.returncode != 0:
            self.received.errors.append(f"{self.script} exited with {self.proc.returncode}")

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        if self.proc.stderr is not None and not self.stderr:
            self.stderr = (await self.proc.stderr.read()).decode(errors="replace")
            if self.stderr.strip():
                self.received.errors.append(f"stderr: {self.stderr.strip()[:1000]}")


class RecordingHTTPProvider(AsyncHTTPProvider):
    """web3.py's AsyncHTTPProvider, counting the methods it sends; no retries, so no error is hidden."""

    def __init__(self, url: str, methods: Counter[str]) -> None:
        super().__init__(url, exception_retry_configuration=None)
        self.methods = methods

    async def make_request(self, method: Any, params: Any) -> Any:
        self.methods[str(method)] += 1
        return await super().make_request(method, params)


def _hex(value: Any) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


#: web3.py's watcher of each kind
WEB3_WATCHERS = {
    "logs": "w3.eth.filter(logs)",
    "blocks": 'w3.eth.filter("latest")',
    "pending": 'w3.eth.filter("pending")',
}


class Web3Client:
    """web3.py, for the kinds asked: `w3.eth.filter({...})` (eth_newFilter), `w3.eth.filter("latest")`
    (eth_newBlockFilter), `w3.eth.filter("pending")` (eth_newPendingTransactionFilter), each polled with
    `get_new_entries()` (eth_getFilterChanges) every POLL_S until `stop()`."""

    def __init__(self, url: str, address: str, kinds: tuple[str, ...] = KINDS) -> None:
        self.received = Received("web3py", kinds)
        self.w3 = AsyncWeb3(RecordingHTTPProvider(url, self.received.methods))
        self.address = address
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="web3py-filters")

    def _record(self, kind: str, entry: Any) -> None:
        out, watcher = self.received, WEB3_WATCHERS[kind]
        if kind == "logs":
            out.logs.setdefault(watcher, []).append(
                {
                    "tx": _hex(entry["transactionHash"]),
                    "index": int(entry["logIndex"]),
                    "block": int(entry["blockNumber"]),
                    "blockHash": _hex(entry["blockHash"]),
                    "removed": bool(entry.get("removed", False)),
                    "seq": int(_hex(entry["data"]), 16),
                }
            )
        elif kind == "blocks":
            out.blocks.setdefault(watcher, []).append({"hash": _hex(entry)})
        else:
            out.txs.setdefault(watcher, []).append(_hex(entry))

    async def _run(self) -> None:
        eth = self.w3.eth
        out = self.received
        params = {
            "logs": {"address": AsyncWeb3.to_checksum_address(self.address), "topics": [PING_TOPIC]},
            "blocks": "latest",
            "pending": "pending",
        }
        filters = {}
        for kind in out.kinds:
            try:
                filters[kind] = await eth.filter(params[kind])
            except Exception as exc:
                out.errors.append(f"{WEB3_WATCHERS[kind]}: {exc!r}"[:500])
        polls = 0
        while not self._stopping.is_set():
            for kind, flt in filters.items():
                try:
                    for entry in await flt.get_new_entries():
                        self._record(kind, entry)
                except Exception as exc:
                    out.errors.append(f"{WEB3_WATCHERS[kind]} get_new_entries: {exc!r}"[:500])
            polls += 1
            if polls == 1:
                out.ready.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), POLL_S)
        for flt in filters.values():
            try:
                await eth.uninstall_filter(flt.filter_id)
            except Exception as exc:
                out.errors.append(f"uninstall_filter: {exc!r}"[:500])

    async def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        try:
            if self._task is not None:
                await asyncio.wait_for(self._task, timeout)
        except TimeoutError:
            self.received.errors.append(f"web3.py did not stop within {timeout} s")
        finally:
            await self.close()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        with contextlib.suppress(Exception):
            await self.w3.provider.disconnect()
