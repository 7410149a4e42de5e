"""The probe's HTTP checks of one provider: identity, latency of the core methods, the standard methods it
serves, and how far back it keeps state. (Limits — eth_getLogs range, batches — are in `limits.py`.)

Each check returns a plain dict for the report and spends calls from the probe's budget (`client.Calls`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from livechain.evm.events import hex_number
from livechain.probe.client import Answer, ProbeClient
from livechain.providers.health import PROBE_WINDOW, probe_state

ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = "0x" + "00" * 32
#: latency is measured on these, `samples` calls each, round-robin
CORE_METHODS = ("eth_blockNumber", "eth_getBlockByNumber", "eth_getBalance", "eth_call", "eth_getLogs")
#: the standard set, beyond the core methods and identity (eth_chainId, web3_clientVersion); each asked once,
#: cheaply (a block or transaction that may not exist still gets an answer from a provider serving the method)
STANDARD_METHODS = (
    "net_version", "eth_syncing", "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_feeHistory",
    "eth_getBlockByHash", "eth_getBlockReceipts", "eth_getTransactionByHash", "eth_getTransactionReceipt",
    "eth_getTransactionCount", "eth_getCode", "eth_getStorageAt", "eth_estimateGas", "eth_getProof",
    "debug_traceTransaction", "trace_transaction",
)
#: calls the checks may spend at most, for the budget's sake (the archive search is health.probe_state's)
ARCHIVE_CALLS = 2 + PROBE_WINDOW.bit_length()


# ---------------------------------------------------------------------------------------------- identity


async def identity(client: ProbeClient) -> tuple[Answer, Answer | None]:
    """eth_chainId, then (when that was answered at all) web3_clientVersion."""
    chain_id = await client.call("eth_chainId")
    if chain_id.failure is not None and not chain_id.answered and not chain_id.unsupported:
        return chain_id, None
    return chain_id, await client.call("web3_clientVersion")


# ---------------------------------------------------------------------------------------------- latency


def core_params(method: str, head: int | None) -> list:
    latest = "latest" if head is None else hex(head)
    if method == "eth_getBlockByNumber":
        return ["latest", False]
    if method == "eth_getBalance":
        return [ZERO_ADDRESS, "latest"]
    if method == "eth_call":
        return [{"to": ZERO_ADDRESS, "data": "0x"}, "latest"]
    if method == "eth_getLogs":  # the last 5 blocks, an address that never emits: a small, empty answer
        first = "latest" if head is None else hex(max(0, head - 4))
        return [{"fromBlock": first, "toBlock": latest, "address": ZERO_ADDRESS}]
    return []


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p90 of 3 samples is the slowest of them)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


async def latency(client: ProbeClient, samples: int) -> tuple[dict[str, Any], dict[str, Answer], int | None, dict]:
    """(latency per core method, the last answer of each, the head, the latest block) — `samples` rounds."""
    times: dict[str, list[float]] = {m: [] for m in CORE_METHODS}
    last: dict[str, Answer] = {}
    errors: dict[str, int] = dict.fromkeys(CORE_METHODS, 0)
    head: int | None = None
    block: dict = {}
    for _ in range(samples):
        for method in CORE_METHODS:
            answer = await client.call(method, core_params(method, head))
            last[method] = answer
            if answer.ok:
                times[method].append(answer.ms)
                if method == "eth_blockNumber" and hex_number(answer.result) is not None:
                    head = max(head or 0, hex_number(answer.result) or 0)
                elif method == "eth_getBlockByNumber" and isinstance(answer.result, dict):
                    block = answer.result
            else:
                errors[method] += 1
    report = {
        method: {"samples": samples, "ok": len(times[method]), "errors": errors[method],
                 "p50_ms": _round(percentile(times[method], 0.5)), "p90_ms": _round(percentile(times[method], 0.9)),
                 "last_error": None if last[method].ok else last[method].detail}
        for method in CORE_METHODS if method in last
    }
    return report, last, head, block


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# ---------------------------------------------------------------------------------------------- methods


def standard_params(method: str, block: dict) -> list:
    block_hash = block.get("hash") if isinstance(block.get("hash"), str) else ZERO_HASH
    txs = block.get("transactions")
    tx = txs[0] if isinstance(txs, list) and txs and isinstance(txs[0], str) else ZERO_HASH
    return {
        "eth_feeHistory": ["0x4", "latest", [25, 75]],
        "eth_getBlockByHash": [block_hash, False],
        "eth_getBlockReceipts": ["earliest"],  # the genesis block: the smallest answer on any chain
        "eth_getTransactionByHash": [tx],
        "eth_getTransactionReceipt": [tx],
        "eth_getTransactionCount": [ZERO_ADDRESS, "latest"],
        "eth_getCode": [ZERO_ADDRESS, "latest"],
        "eth_getStorageAt": [ZERO_ADDRESS, "0x0", "latest"],
        "eth_estimateGas": [{"from": ZERO_ADDRESS, "to": ZERO_ADDRESS, "value": "0x0"}],
        "eth_getProof": [ZERO_ADDRESS, [], "latest"],
        "debug_traceTransaction": [tx, {}],
        "trace_transaction": [tx],
    }.get(method, [])


def method_entry(answer: Answer) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": answer.status}
    if not answer.ok:
        entry["detail"] = answer.detail
    return entry


async def methods(client: ProbeClient, known: dict[str, Answer], block: dict) -> dict[str, dict[str, Any]]:
    """Which methods of the standard set it serves: `known` answers (identity, core) and one call each for
    the rest. A "method not found / not supported" answer is unsupported; any other answer — a result, an
    error about the params or the data — means it serves the method."""
    found = {method: method_entry(answer) for method, answer in known.items()}
    for method in STANDARD_METHODS:
        found[method] = method_entry(await client.call(method, standard_params(method, block)))
    return found


# ---------------------------------------------------------------------------------------------- archive


async def archive(client: ProbeClient, head: int | None) -> dict[str, Any]:
    """How far back it keeps state: Livechain's own start probe (`providers.health.probe_state`): state at
    block 1, then a binary search of the last PROBE_WINDOW blocks for the oldest state it serves."""
    if head is None or head < 2:
        return {"archive": None, "state_depth": None, "oldest_state_block": None,
                "note": "the chain is too young to tell (fewer than 2 blocks)" if head is not None else "no head"}
    provider = client.provider
    provider.observe_head(head)
    done = await probe_state(SimpleNamespace(best_head=head), provider, client.timeout)  # type: ignore[arg-type]
    caps = provider.capabilities
    if not done:
        last = provider.last_errors[-1]["message"] if provider.last_errors else None
        return {"archive": None, "state_depth": None, "oldest_state_block": None,
                "note": f"the state probe met another failure: {last}" if last else "the state probe failed"}
    depth = caps.state_depth if caps.archive is False else None
    return {
        "archive": caps.archive,
        "state_depth": depth,
        "oldest_state_block": 1 if caps.archive else (head - depth if depth is not None else None),
        "searched_back": None if caps.archive else min(PROBE_WINDOW, head - 1),
    }
