"""Failover cost: added latency when the first-choice provider refuses connections, and when it blackholes.

One Livechain, three chains, each with two providers in priority order (strategy `priority`, so the dead
provider stays the first choice until its breaker opens; `leaderboard` ranks the same way while providers
have fewer than 10 samples):
    healthy    p1 = nginx fake, p2 = nginx fake                                   (baseline, same run)
    refuse     p1 = a FaultProxy in front of the fake, switched to `refuse` (ECONNREFUSED; its pooled
               keep-alive connections are reset), p2 = nginx fake
    blackhole  p1 = a FaultProxy switched to `blackhole` (accepts, reads, never answers), p2 = nginx fake
               (attempt_timeout 1 s here; the default is 4 s)
The proxies start healthy, so p1 is a confirmed, warm first choice (a provider that never answered its
eth_chainId check is not a first choice at all); the fault is switched on after a warm-up.
Breaker: failure_threshold 5, recovery_timeout 10 s; health checks every hour (they don't probe meanwhile).

Requests are sequential POSTs on one keep-alive connection (http.client), alternating healthy / dead chain,
so both see the same machine state. Reported: per-request latency of the first requests (until the breaker
opens), the steady state (breaker open) as median and p99 minus the healthy chain's, and the cost of a
half-open probe after recovery_timeout. Exits 1 with a message on stderr when Livechain does not answer a
JSON-RPC result, or when there is no steady-state sample.

    .venv/bin/python bench/failover.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    PYTHON,
    RPC_BODY,
    Child,
    fake_provider_nginx,
    free_port,
    livechain_config,
    measured,
    percentile,
    require,
    run_main,
    start_livechain,
    workdir,
    write_result,
)


def chain(name: str, chain_id: int, p1: str, fake: str) -> str:
    return (
        f"  {name}:\n    chain_id: {chain_id}\n    strategy: priority\n    health_interval: 1h\n"
        f"    attempt_timeout: 1s\n    deadline: 5s\n"
        f"    breaker: {{failure_threshold: 5, recovery_timeout: 10s}}\n    providers:\n"
        f"      - {{id: p1, http_url: '{p1}'}}\n      - {{id: p2, http_url: '{fake}'}}\n"
    )


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.body = RPC_BODY.encode()

    def post(self, chain: str) -> tuple[float, str, str]:
        t0 = time.perf_counter()
        self.conn.request("POST", f"/rpc/{chain}", self.body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = (time.perf_counter() - t0) * 1e6
        require(resp.status == 200 and b'"result"' in data,
                f"Livechain answered {resp.status} {data[:300]!r} on chain {chain}, not a JSON-RPC result")
        return elapsed, resp.getheader("x-livechain-provider", ""), resp.getheader("x-livechain-attempts", "")


_FAULTS = r'''
import asyncio, sys, uvloop
from livechain.faults import FaultControlServer, FaultProxy

async def main():
    target = int(sys.argv[1])
    proxies = {name: FaultProxy("127.0.0.1", target, name=name) for name in ("refuse", "blackhole")}
    for proxy in proxies.values():
        await proxy.start()
    control = FaultControlServer(proxies)
    await control.start()
    print("PORTS", control.port, proxies["refuse"].port, proxies["blackhole"].port, flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
'''


def start_faults(d: str, target_port: int) -> tuple[Child, int, int, int]:
    path = os.path.join(d, "faults.py")
    with open(path, "w") as f:
        f.write(_FAULTS)
    proc = subprocess.Popen([PYTHON, path, str(target_port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORTS "):
        proc.kill()
        raise RuntimeError("fault proxies did not start")
    control, refuse, blackhole = (int(x) for x in line.split()[1:])
    return Child(proc, "faults"), control, refuse, blackhole


def set_fault(control: int, name: str, mode: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{control}/faults/{name}", method="PUT",
                                 data=json.dumps({"mode": mode}).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def scenario(client: Client, dead: str, steady: int) -> dict:
    first = []
    for _ in range(8):  # the breaker opens after 5 consecutive failures
        base, _, _ = client.post("healthy")
        took, provider, attempts = client.post(dead)
        first.append({"us": round(took), "added_us": round(took - base), "provider": provider, "attempts": attempts})
    added, base_lat, dead_lat = [], [], []
    for _ in range(steady):
        base, _, _ = client.post("healthy")
        took, _, _ = client.post(dead)
        added.append(took - base)
        base_lat.append(base)
        dead_lat.append(took)
    require(added, f"{dead}: no steady-state sample (--steady {steady})")
    return {
        "first": first,
        "steady_added_p50_us": statistics.median(added),
        "steady_added_p99_us": measured(percentile(added, 0.99), f"{dead} steady-state p99"),
        "healthy_p50_us": statistics.median(base_lat),
        "dead_p50_us": statistics.median(dead_lat),
    }


def probe(client: Client, dead: str, wait: float) -> dict:
    time.sleep(wait)  # recovery_timeout elapses: the next request is the half-open probe
    base, _, _ = client.post("healthy")
    took, provider, attempts = client.post(dead)
    return {"us": round(took), "added_us": round(took - base), "provider": provider, "attempts": attempts}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steady", type=int, default=2000, help="request pairs in the steady state")
    parser.add_argument("--no-probe", action="store_true", help="skip the 10 s wait for the half-open probe")
    args = parser.parse_args()
    with workdir("lcbench-failover-") as d:
        fake_port = free_port()
        fake = fake_provider_nginx(d, fake_port, {"/c2/": "0x2", "/c3/": "0x3"})  # eth_chainId per chain
        children = [fake]
        try:
            faults, control, refuse_port, hole_port = start_faults(d, fake_port)
            children.append(faults)
            f = f"http://127.0.0.1:{fake_port}"
            yaml = (chain("healthy", 1, f + "/", f + "/")
                    + chain("refuse", 2, f"http://127.0.0.1:{refuse_port}/c2/", f + "/c2/")
                    + chain("blackhole", 3, f"http://127.0.0.1:{hole_port}/c3/", f + "/c3/"))
            lc, port = start_livechain(d, livechain_config(yaml))
            children.append(lc)
            client = Client(port)
            time.sleep(1.0)  # the health checks at start confirm every provider's chain id
            for _ in range(300):  # warm every path: p1 is the healthy first choice everywhere
                for name in ("healthy", "refuse", "blackhole"):
                    _, provider, _ = client.post(name)
                    require(provider == "p1", f"warm-up: chain {name} was served by {provider!r}, not p1")
            result = {}
            for dead in ("refuse", "blackhole"):
                set_fault(control, dead, dead)
                res = scenario(client, dead, args.steady if dead == "refuse" else args.steady // 4)
                if not args.no_probe:
                    res["probe"] = probe(client, dead, 10.5)
                result[dead] = res
                firsts = ", ".join(f"{x['added_us'] / 1000:.2f} ({x['attempts']})" for x in res["first"])
                print(f"  {dead:9s} first 8 requests, added ms (attempts): {firsts}")
                print(f"  {dead:9s} steady state (breaker open): added p50 {res['steady_added_p50_us']:5.0f} µs"
                      f"  p99 {res['steady_added_p99_us']:6.0f} µs  (healthy p50 {res['healthy_p50_us']:.0f} µs)")
                if "probe" in res:
                    print(f"  {dead:9s} half-open probe after recovery_timeout: added {res['probe']['added_us'] / 1000:.2f} ms"
                          f" (attempts {res['probe']['attempts']})", flush=True)
        finally:
            for child in reversed(children):
                child.stop()
    write_result("failover", result)
    return result


if __name__ == "__main__":
    run_main(main)
