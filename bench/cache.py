"""The response cache: what a hit costs against nginx `proxy_pass` and a Livechain miss (wrk, same run), and
that the store stays within its bytes under a long random workload.

HTTP (the provider is an nginx answering every POST at once with a fixed reply; Livechain with cache on,
`finality_depth: 0` so block 1 is final):

    direct   wrk → fake provider
    nginx    wrk → nginx proxy_pass (upstream keep-alive) → fake provider                       (the C limit)
    hit      wrk → Livechain, eth_getBalance(A, "0x1") every time: answered from the cache
    miss     wrk → the same Livechain, a new address every request: a cache miss, then the provider

    added p50 = target p50 − direct p50 (same round); ratios: hit / nginx, hit / miss (medians of per-round ratios)

Memory (in-process, no sockets): a chain's cache view over a MemoryStore of --max-mib, --operations random
puts and lookups (keys reused Zipf-like, payloads 20 B – 200 KB like results, blocks, logs): `bytes` never
exceeds the bound, and what tracemalloc sees the store hold is compared with it.

    .venv/bin/python bench/cache.py                     # 5 rounds × 5 s, c=1 and c=50; memory with 200,000 operations
    .venv/bin/python bench/cache.py --rounds 3 --seconds 3 --operations 50000

A benchmark, not a test. Exits 1 when a side measured nothing or the store went over its bound.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
import tracemalloc
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    check_rpc,
    fake_provider_nginx,
    free_port,
    livechain_config,
    measured,
    median,
    proxy_nginx,
    require,
    run_main,
    run_wrk,
    start_livechain,
    workdir,
    write_result,
    wrk_script,
)

ADDRESS = "0x" + "ab" * 20
HIT_BODY = f'{{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["{ADDRESS}","0x1"]}}'
# every wrk run of the miss side gets its own RUN number in the addresses: a counter alone restarts at 1 in each
# run, and the second run would be answered from what the first one left in the cache
MISS_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format(
    '{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x%08x%032x","0x1"]}', RUN, counter))
end
"""


def chain_yaml(fake_port: int) -> str:
    lines = ["  bench:\n    chain_id: 1\n    finality_depth: 0\n    providers:\n"]
    for i in range(3):
        lines.append(f"      - {{id: p{i + 1}, http_url: 'http://127.0.0.1:{fake_port}/p{i + 1}'}}\n")
    return "".join(lines)


def http(args: argparse.Namespace) -> dict:
    with workdir("lcbench-cache-") as d:
        fake_port, proxy_port = free_port(), free_port()
        children = [fake_provider_nginx(d, fake_port)]
        try:
            proxy = proxy_nginx(d, proxy_port, fake_port)
            children.append(proxy)
            lc, lc_port = start_livechain(d, livechain_config(chain_yaml(fake_port)))
            children.append(lc)
            hit_script = wrk_script(d, HIT_BODY, name="hit.lua")
            runs_made = [0]

            def miss_script() -> str:  # a new script, with new addresses, for every run
                runs_made[0] += 1
                return wrk_script(d, HIT_BODY, name="miss.lua", extra=MISS_LUA.replace("RUN", str(runs_made[0])))
            rpc = f"http://127.0.0.1:{lc_port}/rpc/bench"
            targets = {
                "direct": (f"http://127.0.0.1:{fake_port}/", hit_script, None),
                "nginx": (f"http://127.0.0.1:{proxy_port}/", hit_script, proxy.pid),
                "hit": (rpc, hit_script, lc.pid),
                "miss": (rpc, miss_script, lc.pid),
            }
            check_rpc(rpc, HIT_BODY)
            check_rpc(f"http://127.0.0.1:{proxy_port}/", HIT_BODY)
            for url, script, _ in targets.values():
                run_wrk(url, script() if callable(script) else script, 50, 2)
            runs: dict[tuple[str, int], list[dict]] = {}
            counted = cache_counts(lc_port)
            for r in range(args.rounds):
                for c in (1, 50):
                    for name, (url, script, pid) in targets.items():
                        res = run_wrk(url, script() if callable(script) else script, c, args.seconds,
                                      watch=[pid] if pid else [])
                        res["cpu_us"] = res["cpu_s"][pid] / res["requests"] * 1e6 if pid else None
                        del res["cpu_s"]
                        require(res["errors"] == 0, f"{name} c={c}: {res['errors']} errors")
                        runs.setdefault((name, c), []).append(res)
                        cpu = f"{res['cpu_us']:6.1f} µs CPU/req" if pid else ""
                        print(f"  round {r + 1} c={c:<3} {name:7} p50 {res['p50_us']:5d} µs  p99 {res['p99_us']:6d} µs  "
                              f"{res['rps']:8.0f} req/s  {cpu}", flush=True)
            did_what_it_says(lc_port, counted, runs)
        finally:
            for child in reversed(children):
                child.stop()
    out: dict = {}
    for c in (1, 50):
        d = runs[("direct", c)]
        n = len(d)

        def added(name: str, i: int, c: int = c, d: list = d) -> int:
            return max(1, runs[(name, c)][i]["p50_us"] - d[i]["p50_us"])

        row = {name: {"added_p50_us": median([added(name, i) for i in range(n)]),
                      "p99_us": median([x["p99_us"] for x in runs[(name, c)]]),
                      "rps": median([x["rps"] for x in runs[(name, c)]]),
                      "cpu_us": median([x["cpu_us"] for x in runs[(name, c)]]) if name != "direct" else None}
               for name in ("nginx", "hit", "miss")}
        row["ratios"] = {
            "hit_vs_nginx_added_p50": median([added("hit", i) / added("nginx", i) for i in range(n)]),
            "hit_vs_miss_added_p50": median([added("hit", i) / added("miss", i) for i in range(n)]),
            "hit_vs_miss_cpu": median([runs[("hit", c)][i]["cpu_us"] / runs[("miss", c)][i]["cpu_us"] for i in range(n)]),
        }
        for value in row["ratios"].values():
            measured(value, f"c={c} ratio")
        out[str(c)] = row
        print(f"c={c}: added p50 nginx {row['nginx']['added_p50_us']:.0f} µs, hit {row['hit']['added_p50_us']:.0f} µs, "
              f"miss {row['miss']['added_p50_us']:.0f} µs; hit/nginx {row['ratios']['hit_vs_nginx_added_p50']:.2f}×, "
              f"hit/miss {row['ratios']['hit_vs_miss_added_p50']:.2f}× (CPU {row['ratios']['hit_vs_miss_cpu']:.2f}×)")
    return out


def cache_counts(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/chains", timeout=10) as r:
        return json.load(r)["chains"][0]["cache"]


def did_what_it_says(port: int, before: dict, runs: dict[tuple[str, int], list[dict]]) -> None:
    """Livechain's own counts over the measured rounds: the hit side was answered from the cache and the miss
    side was not."""
    after = cache_counts(port)
    cache = {k: after[k] - before[k] for k in ("hits", "misses")}
    sent = {side: sum(x["requests"] for (name, _), xs in runs.items() if name == side for x in xs) for side in ("hit", "miss")}
    require(cache["hits"] >= sent["hit"], f"{cache['hits']} hits for {sent['hit']} requests of the hit side")
    require(cache["misses"] >= sent["miss"], f"{cache['misses']} misses for {sent['miss']} requests of the miss side")
    in_flight = 50 * sum(len(xs) for xs in runs.values())  # what wrk had in flight when a run ended is not counted
    require(cache["hits"] <= sent["hit"] + in_flight, f"{cache['hits']} hits: the miss side was answered from the cache")
    print(f"livechain counted {cache['hits']} hits, {cache['misses']} misses (the measured sides sent {sent['hit']} "
          f"and {sent['miss']})", flush=True)


class _State:
    """A chain at head 10,000, finalized 9,936, every block's hash known."""

    def best_head(self) -> int:
        return 10_000

    def finalized(self) -> int:
        return 9_936

    def canonical_hash(self, number: int) -> str:
        return f"0x{number:064x}"

    def canonical_number(self, block_hash: str) -> int:
        return int(block_hash, 16)

    def provider_head(self, provider: str) -> int:
        return 10_000


def memory(args: argparse.Namespace) -> dict:
    from livechain.cache.chain import ChainCache
    from livechain.cache.store import MemoryStore
    from livechain.evm.requests import describe

    rng = random.Random(11)
    sizes = [20] * 50 + [66] * 20 + [2_000] * 15 + [30_000] * 10 + [200_000] * 5  # results, tx, blocks, logs
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = MemoryStore(args.max_mib * 1024 * 1024, 1024 * 1024)
    cache = ChainCache("bench", store, _State())
    payloads = {size: "x" * size for size in set(sizes)}
    peak_bytes = hits = 0
    started = time.perf_counter()
    for i in range(args.operations):
        # half the lookups from a hot set (Zipf-like), half from a million keys: the store must evict
        key = int(rng.paretovariate(1.0)) % 5_000 if rng.random() < 0.5 else rng.randrange(1_000_000)
        described = describe("eth_getBalance", ["0x" + f"{key:040x}", hex(9_000 + key % 900)])
        if cache.lookup(described.key) is not None:
            hits += 1
            continue
        cache.admit(described.key, described.ref, payloads[rng.choice(sizes)], "p", cache.epoch())
        peak_bytes = max(peak_bytes, store.bytes)
        require(store.bytes <= store.max_bytes, f"operation {i}: {store.bytes} bytes > {store.max_bytes}")
    elapsed = time.perf_counter() - started
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base - sum(len(p) for p in payloads.values())
    tracemalloc.stop()
    result = {"max_bytes": store.max_bytes, "accounted_peak": peak_bytes, "entries": len(store),
              "evictions": store.evictions, "hits": hits, "operations": args.operations,
              "traced_bytes": held, "traced_vs_max": held / store.max_bytes,
              "us_per_operation": elapsed / args.operations * 1e6}
    measured(result["traced_vs_max"], "traced memory")
    require(result["traced_vs_max"] <= 1.25, f"the store holds {result['traced_vs_max']:.2f}× its bound in memory")
    print(f"memory: {args.operations} operations, {len(store)} entries, {store.evictions} evictions, {hits} hits; "
          f"accounted peak {peak_bytes / 2**20:.2f} MiB of {args.max_mib} MiB; traced {held / 2**20:.2f} MiB "
          f"({result['traced_vs_max']:.2f}× the bound); {result['us_per_operation']:.2f} µs/operation")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--operations", type=int, default=200_000)
    parser.add_argument("--max-mib", type=int, default=16)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    result = {"memory": memory(args)}
    if not args.skip_http:
        result["http"] = http(args)
    write_result("cache", result)


if __name__ == "__main__":
    run_main(main)
