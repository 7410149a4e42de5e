"""Issue 14, "must show": real clients polling stateful filters over HTTP receive every event of a stream of
transactions exactly once while the provider serving them is killed, then another, then all come back.

Clients (their own libraries, unchanged; tests/filters/clients.py drives them), per kind of event:
  logs     viem watchContractEvent (poll: true → eth_newFilter + eth_getFilterChanges), ethers contract.on("Ping")
           (eth_newFilter, eth_getFilterChanges at each block), web3.py w3.eth.filter({...}) + get_new_entries()
  blocks   viem watchBlocks (poll: true → eth_getBlockByNumber: viem has no block-filter watcher) and
           createBlockFilter + getFilterChanges (eth_newBlockFilter); ethers provider.on("block") (ethers v6
           polls eth_blockNumber for blocks: no filter); web3.py w3.eth.filter("latest")
  pending  viem watchPendingTransactions (poll: true), ethers provider.on("pending"), web3.py
           w3.eth.filter("pending") — all eth_newPendingTransactionFilter + eth_getFilterChanges
viem and ethers run as node scripts (js/*.mjs, HTTP transport / JsonRpcProvider), web3.py in-process
(AsyncHTTPProvider). Each client reports the methods it sent: the test checks that filters were used (viem
falls back to eth_getLogs silently when eth_newFilter fails) and created once (a filter lost on failover would
be recreated by viem, and would fail every later poll of ethers and web3.py). Retries are off in viem and
web3.py, so an error Livechain lets through during failover is seen and counted.

Truth is read from anvil directly: eth_getLogs of the contract, blocks by number, the transactions sent.
The three providers are one anvil: a counting RpcProxy under the fault proxies shows that no filter method
reaches a provider (a filter merely forwarded would survive failover here too).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from livechain.devnet import Anvil
from livechain.faults import Fault, FaultProxy
from tests.conftest import chain_yaml, config_text, provider_yaml
from tests.evm_helpers import receipt
from tests.filters.clients import (
    KINDS,
    PING_TOPIC,
    POLL_S,
    JsClient,
    Received,
    Web3Client,
    deploy_pinger,
    ping,
)
from tests.rpc_proxy import RpcProxy

#: client → kind → (its watchers, methods it must send, methods it must send exactly once: its filters)
EXPECT: dict[str, dict[str, tuple[list[str], set[str], set[str]]]] = {
    "viem_filters": {
        "logs": (["watchContractEvent"], {"eth_newFilter", "eth_getFilterChanges"}, {"eth_newFilter"}),
        "blocks": (
            ["watchBlocks", "createBlockFilter"],
            {"eth_getBlockByNumber", "eth_newBlockFilter", "eth_getFilterChanges"},
            {"eth_newBlockFilter"},
        ),
        "pending": (
            ["watchPendingTransactions"],
            {"eth_newPendingTransactionFilter", "eth_getFilterChanges"},
            {"eth_newPendingTransactionFilter"},
        ),
    },
    "ethers_filters": {
        "logs": (["contract.on"], {"eth_newFilter", "eth_getFilterChanges"}, {"eth_newFilter"}),
        "blocks": (["provider.on(block)"], {"eth_blockNumber"}, set()),
        "pending": (
            ["provider.on(pending)"],
            {"eth_newPendingTransactionFilter", "eth_getFilterChanges"},
            {"eth_newPendingTransactionFilter"},
        ),
    },
    "web3py": {
        "logs": (["w3.eth.filter(logs)"], {"eth_newFilter", "eth_getFilterChanges"}, {"eth_newFilter"}),
        "blocks": (
            ['w3.eth.filter("latest")'],
            {"eth_newBlockFilter", "eth_getFilterChanges"},
            {"eth_newBlockFilter"},
        ),
        "pending": (
            ['w3.eth.filter("pending")'],
            {"eth_newPendingTransactionFilter", "eth_getFilterChanges"},
            {"eth_newPendingTransactionFilter"},
        ),
    },
}
#: sent by viem when eth_newFilter failed (its silent fallback); none of these clients sends it otherwise
FALLBACK_METHODS = {"eth_getLogs"}
BLOCK_TIME_S = 0.5
FILTER_METHODS = (
    "eth_newFilter",
    "eth_newBlockFilter",
    "eth_newPendingTransactionFilter",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_uninstallFilter",
)


class Chain:
    """The truth, read from anvil directly; block hashes cached by number."""

    def __init__(self, node: Anvil, address: str) -> None:
        self.node = node
        self.address = address
        self.hash_of: dict[int, str] = {}
        self.number_of: dict[str, int] = {}

    async def head(self) -> int:
        return int(await self.node.rpc("eth_blockNumber"), 16)

    async def learn_blocks(self) -> int:
        """Fetch the hashes of every block up to the head not yet known; returns the head."""
        head = await self.head()
        missing = [n for n in range(head + 1) if n not in self.hash_of]
        blocks = await asyncio.gather(
            *(self.node.rpc("eth_getBlockByNumber", [hex(n), False]) for n in missing)
        )
        for n, block in zip(missing, blocks, strict=True):
            self.hash_of[n] = block["hash"].lower()
            self.number_of[block["hash"].lower()] = n
        return head

    async def logs(self) -> dict[tuple[str, int], dict]:
        found = await self.node.rpc(
            "eth_getLogs",
            [{"address": self.address, "topics": [PING_TOPIC], "fromBlock": "0x0", "toBlock": "latest"}],
        )
        return {(log["transactionHash"].lower(), int(log["logIndex"], 16)): log for log in found}

    def numbers(self, blocks: list[dict]) -> list[int | None]:
        return [b["number"] if "number" in b else self.number_of.get(b["hash"].lower()) for b in blocks]


def watchers(got: Received) -> tuple[list[str], list[str], list[str]]:
    """The client's log, block and pending-transaction watchers."""
    expect = EXPECT[got.name]
    return tuple(expect[kind][0] if kind in got.kinds else [] for kind in ("logs", "blocks", "pending"))


def caught_up(got: Received, chain: Chain, n_logs: int, end_block: int) -> bool:
    logs_w, blocks_w, txs_w = watchers(got)
    if any(len(got.logs.get(w, [])) < n_logs for w in logs_w):
        return False
    if any(len(got.txs.get(w, [])) < n_logs for w in txs_w):  # one log per transaction
        return False
    for w in blocks_w:
        numbers = [n for n in chain.numbers(got.blocks.get(w, [])) if n is not None]
        if not numbers or max(numbers) < end_block:
            return False
    return True


def problems(
    got: Received, chain: Chain, truth: dict[tuple[str, int], dict], first_block: int, end_block: int
) -> list[str]:
    """Everything wrong with what one client received, as readable lines (empty: all good)."""
    out = [f"error ×{n}: {e}" if n > 1 else f"error: {e}" for e, n in Counter(got.errors).most_common()]
    logs_w, blocks_w, txs_w = watchers(got)
    sent = {tx for tx, _ in truth}
    for w in txs_w:
        hashes = Counter(h.lower() for h in got.txs.get(w, []))
        if dups := {h: c for h, c in hashes.items() if c > 1}:
            out.append(f"{w}: {len(dups)} transactions delivered more than once: {sorted(dups.items())[:5]}")
        if missing := sent - set(hashes):
            out.append(f"{w}: {len(missing)} of {len(sent)} transactions missing: {sorted(missing)[:5]}")
        if extra := set(hashes) - sent:
            out.append(f"{w}: {len(extra)} transactions that were not sent: {sorted(extra)[:5]}")
    for w in logs_w:
        entries = got.logs.get(w, [])
        keys = Counter((e["tx"].lower(), e["index"]) for e in entries)
        if dups := {k: c for k, c in keys.items() if c > 1}:
            out.append(f"{w}: {len(dups)} logs delivered more than once: {sorted(dups.items())[:5]}")
        if missing := sorted(set(truth) - set(keys)):
            seqs = sorted(int(truth[k]["data"], 16) for k in missing)
            out.append(f"{w}: {len(missing)} of {len(truth)} logs missing (seq {seqs})")
        if extra := sorted(set(keys) - set(truth)):
            out.append(f"{w}: {len(extra)} logs not on the chain: {extra[:5]}")
        if removed := [e for e in entries if e["removed"]]:
            out.append(f"{w}: {len(removed)} logs with removed=true (there was no reorg)")
        wrong = [
            e
            for e in entries
            if (k := (e["tx"].lower(), e["index"])) in truth
            and e["blockHash"].lower() != truth[k]["blockHash"].lower()
        ]
        if wrong:
            out.append(f"{w}: {len(wrong)} logs with another blockHash than the chain's: {wrong[:2]}")
    for w in blocks_w:
        entries = got.blocks.get(w, [])
        numbers = chain.numbers(entries)
        if unknown := [e for e, n in zip(entries, numbers, strict=True) if n is None]:
            out.append(f"{w}: {len(unknown)} block hashes not on the chain: {unknown[:3]}")
            continue
        if not numbers:
            out.append(f"{w}: no blocks")
            continue
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            dups = sorted(n for n, c in Counter(numbers).items() if c > 1)
            gaps = sorted(set(range(numbers[0], max(numbers) + 1)) - set(numbers))
            out.append(
                f"{w}: blocks not each once in order: duplicates {dups}, missing {gaps}, "
                f"out of order at {[i for i in range(1, len(numbers)) if numbers[i] <= numbers[i - 1]][:5]}"
            )
        if numbers[0] > first_block or max(numbers) < end_block:
            out.append(
                f"{w}: blocks {numbers[0]}..{max(numbers)} do not cover the stream's {first_block}..{end_block}"
            )
        wrong = [
            e
            for e, n in zip(entries, numbers, strict=True)
            if "hash" in e and e["hash"].lower() != chain.hash_of[n]
        ]
        if wrong:
            out.append(f"{w}: {len(wrong)} blocks with another hash than the chain's: {wrong[:2]}")
    must = set().union(*(EXPECT[got.name][kind][1] for kind in got.kinds))
    once = set().union(*(EXPECT[got.name][kind][2] for kind in got.kinds))
    if absent := sorted(m for m in must if not got.methods.get(m)):
        out.append(f"methods never sent: {absent} (sent: {dict(got.methods)})")
    if present := sorted(m for m in FALLBACK_METHODS if got.methods.get(m)):
        out.append(f"methods sent that mean filters were not used: {present} (sent: {dict(got.methods)})")
    if again := sorted(f"{m}×{got.methods[m]}" for m in once if got.methods.get(m, 0) > 1):
        out.append(f"filters created more than once (lost and recreated?): {again}")
    return out


async def stream_to_clients(
    url: str,
    node: Anvil,
    address: str,
    n_pings: int,
    kinds: tuple[str, ...] = KINDS,
    on_ping: Callable[[int], Awaitable[None]] | None = None,
) -> dict[str, list[str]]:
    """Start the three clients on `url`, watching `kinds`, send `n_pings` transactions to anvil (calling
    `on_ping(seq)` after each), let the clients drain, stop them; returns each client's problems."""
    chain = Chain(node, address)
    clients = [
        JsClient("viem_filters.mjs", url, address, kinds),
        JsClient("ethers_filters.mjs", url, address, kinds),
        Web3Client(url, address, kinds),
    ]
    try:
        await asyncio.gather(*(c.start() for c in clients))
        try:
            async with asyncio.timeout(45):
                await asyncio.gather(*(c.received.ready.wait() for c in clients))
        except TimeoutError:
            await asyncio.gather(*(c.stop(5) for c in clients))
            pytest.fail(
                "clients not ready:\n"
                + "\n".join(
                    f"{c.received.name}: ready={c.received.ready.is_set()} sent={dict(c.received.methods)} "
                    f"errors={Counter(e[:300] for e in c.received.errors).most_common(4)}"
                    for c in clients
                )
            )
        txs = []
        for seq in range(n_pings):
            txs.append(await ping(node, address, seq))
            if on_ping is not None:
                await on_ping(seq)
            await asyncio.sleep(POLL_S)  # pacing of the stream, not a condition
        first_block = int((await receipt(node, txs[0]))["blockNumber"], 16)
        end_block = int((await receipt(node, txs[-1], timeout=30))["blockNumber"], 16) + 2
        truth = await chain.logs()
        assert len(truth) == n_pings, f"anvil has {len(truth)} Ping logs for {n_pings} transactions"
        # drain: every client has as many logs as the chain and has seen two blocks after the last log's
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            await chain.learn_blocks()
            if all(caught_up(c.received, chain, len(truth), end_block) for c in clients):
                break
            await asyncio.sleep(0.2)
    finally:
        await asyncio.gather(*(c.stop() for c in clients))
    await chain.learn_blocks()
    for c in clients:  # shown with -s: what each watcher got
        got = c.received
        print(
            f"{got.name}: logs { ({w: len(v) for w, v in got.logs.items()}) } blocks "
            f"{ ({w: f'{len(v)} ({chain.numbers(v)[0]}..{chain.numbers(v)[-1]})' for w, v in got.blocks.items() if v}) } "
            f"txs { ({w: len(v) for w, v in got.txs.items()}) } errors {len(got.errors)} sent {dict(got.methods)}"
        )
    return {c.received.name: problems(c.received, chain, truth, first_block, end_block) for c in clients}


def report(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in found.items() if lines)


async def test_clients_direct_to_anvil_baseline():
    """The harness and the clients against anvil itself (which serves filters), no faults: what 'exactly
    once' looks like when nothing breaks. If this fails, the harness or a client is wrong, not Livechain."""
    async with Anvil(block_time=BLOCK_TIME_S) as node:
        address = await deploy_pinger(node)
        found = await stream_to_clients(node.url, node, address, n_pings=10)
    assert not any(found.values()), report(found)


@pytest.fixture
async def filter_env(start_livechain):
    """anvil (0.5 s blocks) with the Ping contract; in front of it a counting `RpcProxy` (what the providers
    were asked), in front of that three fault proxies — the providers p0..p2, p0 first by priority, HTTP and
    WS of each through its proxy — and Livechain in front of them.

    The three providers are one node, so a filter merely forwarded to a provider would survive failover here
    too: the counts show that Livechain serves the filters itself."""
    async with Anvil(block_time=BLOCK_TIME_S) as node, RpcProxy(node) as counter:
        proxies = [FaultProxy("127.0.0.1", counter.port, name=f"p{i}") for i in range(3)]
        for proxy in proxies:
            await proxy.start()
        try:
            providers = "".join(
                provider_yaml(f"p{i}", f"{p.url}/", ws_url=f"{p.ws_url}/", priority=i)
                for i, p in enumerate(proxies)
            )
            lc = await start_livechain(
                config_text(chain_yaml("dev", 31337, providers, health_interval="500ms"))
            )
            address = await deploy_pinger(node)
            yield node, {f"p{i}": p for i, p in enumerate(proxies)}, lc, address, counter
        finally:
            for proxy in proxies:
                await proxy.stop()


async def kill_serving_twice_then_restore(filter_env, kinds: tuple[str, ...]) -> None:
    """48 transactions, one every ~0.3 s; after the 12th the provider serving Livechain's requests (its
    X-Livechain-Provider on eth_blockNumber) is killed — its proxy refuses connections and resets the live
    ones, HTTP and WebSocket —, after the 24th the one serving then, after the 36th all come back. Every client
    gets every event of `kinds` exactly once, and no filter method reaches a provider."""
    node, proxies, lc, address, counter = filter_env
    killed: list[str] = []
    timeline: list[str] = []

    async def serving() -> str:
        reply = await lc.rpc("eth_blockNumber")
        assert "result" in reply, reply
        return reply["_provider"]

    async def chaos(seq: int) -> None:
        if seq in (11, 23):
            pid = await serving()
            assert pid in proxies and pid not in killed, (pid, killed)
            proxies[pid].set(Fault(mode="refuse"))
            killed.append(pid)
            timeline.append(f"after ping {seq}: killed {pid}")
        elif seq == 35:
            timeline.append(f"after ping {seq}: serving {await serving()} (killed {killed}); all restored")
            for proxy in proxies.values():
                proxy.clear()

    url = f"http://127.0.0.1:{lc.app.port}/rpc/dev"
    found = await stream_to_clients(url, node, address, n_pings=48, kinds=kinds, on_ping=chaos)
    print("\n".join(timeline), "\nproviders were asked:", dict(counter.counts))
    assert len(killed) == 2, timeline
    assert not any(found.values()), report(found) + "\n" + "\n".join(timeline)
    forwarded = {m: counter.counts[m] for m in FILTER_METHODS if counter.counts[m]}
    assert not forwarded, f"filter methods reached the providers (not served by Livechain): {forwarded}"


async def test_log_and_block_filters_get_every_event_once_while_providers_are_killed(filter_env):
    """viem watchContractEvent / watchBlocks / createBlockFilter, ethers contract.on / provider.on("block"),
    web3.py log and block filters."""
    await kill_serving_twice_then_restore(filter_env, ("logs", "blocks"))


async def test_pending_transaction_filters_get_every_transaction_once_while_providers_are_killed(filter_env):
    """viem watchPendingTransactions, ethers provider.on("pending"), web3.py w3.eth.filter("pending")."""
    await kill_serving_twice_then_restore(filter_env, ("pending",))
