"""Cost of `livechain.evm.integrity.check` on provider answers: µs per check.

Answers (built once, from a real mainnet header: tests/unit/fixtures/blocks/mainnet-22263623-cancun.json):

    block, 200 tx hashes        eth_getBlockByNumber [number, false]: the header hash (RLP + keccak) and the
                                asked-number rule
    block, 200 tx objects       eth_getBlockByNumber [number, true]: + each transaction's blockHash/blockNumber
    1,000 logs                  eth_getLogs over 20 blocks (50 logs each), numeric fromBlock/toBlock
    200 receipts, 1,000 logs    eth_getBlockReceipts [number]: 200 receipts of 5 logs each

`canonical` knows every block (so the canonical rule runs too). Baseline in the same run: `orjson.loads` of the
same answer (what parsing it already costs the pipeline). Every check must pass (return None): a check that
fails would time an early exit, so the benchmark stops with a message and exit status 1 instead.
Median of --rounds, µs per check.

    .venv/bin/python bench/integrity.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson
from _common import ROOT, require, run_main, write_result

from livechain.evm.integrity import check, header_hash

FIXTURE = ROOT / "tests" / "unit" / "fixtures" / "blocks" / "mainnet-22263623-cancun.json"


def _hash(i: int, salt: int) -> str:
    return "0x" + f"{salt:08x}{i:056x}"


def answers() -> dict[str, tuple[str, list, object]]:
    block = json.loads(FIXTURE.read_text())
    number, block_hash = block["number"], block["hash"]
    hashes = [_hash(i, 1) for i in range(200)]
    with_hashes = {**block, "transactions": hashes}
    objects = [
        {"blockHash": block_hash, "blockNumber": number, "hash": h, "transactionIndex": hex(i), "from": "0x" + "11" * 20,
         "to": "0x" + "22" * 20, "input": "0x", "value": "0x0", "gas": "0x5208", "nonce": hex(i), "type": "0x2"}
        for i, h in enumerate(hashes)
    ]
    with_objects = {**block, "transactions": objects}
    first = int(number, 16) - 20  # the 20 blocks before the fixture's
    logs = []
    for b in range(20):
        n = hex(first + b)
        bh = _hash(b, 2)
        for i in range(50):
            logs.append({"address": "0x" + "33" * 20, "topics": ["0x" + "44" * 32], "data": "0x" + "00" * 32,
                         "blockNumber": n, "blockHash": bh, "transactionHash": _hash(i // 5, 3 + b),
                         "transactionIndex": hex(i // 5), "logIndex": hex(i), "removed": False})
    receipts = []
    for t in range(200):
        tx_hash = hashes[t]
        receipts.append({
            "blockHash": block_hash, "blockNumber": number, "transactionHash": tx_hash, "transactionIndex": hex(t),
            "status": "0x1", "gasUsed": "0x5208", "cumulativeGasUsed": hex(21000 * (t + 1)),
            "logs": [{"address": "0x" + "33" * 20, "topics": ["0x" + "44" * 32], "data": "0x",
                      "blockNumber": number, "blockHash": block_hash, "transactionHash": tx_hash,
                      "transactionIndex": hex(t), "logIndex": hex(5 * t + k), "removed": False} for k in range(5)],
        })
    return {
        "block, 200 tx hashes": ("eth_getBlockByNumber", [number, False], with_hashes),
        "block, 200 tx objects": ("eth_getBlockByNumber", [number, True], with_objects),
        "1,000 logs (20 blocks)": ("eth_getLogs", [{"fromBlock": hex(first), "toBlock": hex(first + 19)}], logs),
        "200 receipts, 1,000 logs": ("eth_getBlockReceipts", [number], receipts),
    }


def time_calls(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="checks per timed run")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    require(args.calls >= 1 and args.rounds >= 1, "--calls and --rounds must be at least 1")
    cases = answers()
    known: dict[int, str] = {}
    for _method, _params, result in cases.values():  # canonical knows every block of the answers
        items = result if isinstance(result, list) else [result]
        for item in items:
            known[int(item["blockNumber" if "blockNumber" in item else "number"], 16)] = (
                item["blockHash"] if "blockHash" in item else item["hash"])
    canonical = known.get
    candidates = {}
    for name, (method, params, result) in cases.items():
        reason = check(method, params, result, canonical)
        require(reason is None, f"{name}: check says {reason!r}: it would time a failing check")
        raw = orjson.dumps(result)
        candidates[f"check: {name}"] = lambda m=method, p=params, r=result: check(m, p, r, canonical)
        candidates[f"  baseline orjson.loads ({len(raw) // 1024} KiB)"] = lambda raw=raw: orjson.loads(raw)
    block = cases["block, 200 tx hashes"][2]
    require(header_hash(block) == block["hash"], "header_hash of the fixture differs from its hash")
    candidates["header_hash alone"] = lambda: header_hash(block)
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():  # warm-up
        time_calls(fn, max(1, args.calls // 10))
    for _ in range(args.rounds):
        for name, fn in candidates.items():  # interleaved
            runs[name].append(time_calls(fn, args.calls))
    require(all(runs.values()), "no timing was taken")
    result = {name: {"median_us": statistics.median(v), "min_us": min(v)} for name, v in runs.items()}
    print(f"integrity.check, {args.rounds} rounds × {args.calls} calls (interleaved), µs per call")
    for name, r in result.items():
        print(f"  {name:42s} {r['median_us']:8.1f} µs (min {r['min_us']:.1f})")
    write_result("integrity", result)
    return result


if __name__ == "__main__":
    run_main(main)
