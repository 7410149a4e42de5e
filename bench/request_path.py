"""Python cost of one proxied request, without sockets: Livechain's real edge, routes, routing, provider and
upstream pool, driven through in-memory transports on a uvloop loop.

A client transport feeds `HttpConnection.data_received` a keep-alive POST /rpc/bench; the pool's connections
have a transport whose `write()` answers on the next loop step with an nginx-like reply (`call_soon`). The
next request starts when the response is written, so this is the c=1 request path minus the kernel. The
benchmark store is folded every `livechain.app.FOLD_INTERVAL` of loop time (0.25 s in a tree without it) as
the app's timer does. Reported: µs per request (process CPU time: one thread, no I/O wait), median and
minimum of --rounds (noise only adds time, so the minimum is the steadier figure); optionally a cProfile of
one round.

Use it to measure a change to the hot path precisely (the wrk benchmark has ±10 % noise on this machine):

    .venv/bin/python bench/request_path.py                       # this tree
    PYTHONPATH=/path/to/other/src .venv/bin/python bench/request_path.py   # another tree, same script
    .venv/bin/python bench/request_path.py --profile             # + cProfile, top functions by own time
    .venv/bin/python bench/request_path.py --before /tmp/before-src --rounds 9   # before/after, same run

With --before SRC the script measures nothing itself: it runs itself once per tree per round as a fresh
process, interleaved (after, before, after, before, …), with PYTHONPATH set to that tree's src/ (this
checkout's src/ for "after"), reads each run's `--emit-json` line, checks that the run imported livechain
from the intended tree, and prints per tree the median and min µs/request and the ratios after/before.

Everything the script knows about Livechain's internals is in `make_edge()` (just below): adapt that one
function to a refactored tree. It exits 1 with a message on stderr when a side measured nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, NamedTuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import MeasuredNothing, measured, require, run_main

HERE = os.path.dirname(os.path.abspath(__file__))
#: "after" in --before mode: the src/ of the checkout this script belongs to (never the venv's editable install)
THIS_SRC = os.path.join(os.path.dirname(HERE), "src")
EMIT = "REQUEST_PATH_JSON "

BODIES = {
    # the same request every time (with --cache on: a hit after the first; eth_blockNumber lives until the
    # next head, which never comes here)
    "blocknumber": lambda n: b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
    "balance": lambda n: b'{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":'
                         b'["0xabababababababababababababababababababab","0x1"]}',
    # a new address each time: with --cache on, every request a miss (looked up, sent, considered for keeping)
    "balance-distinct": lambda n: b'{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x%040x","0x1"]}' % n,
}


def http_request(body: bytes) -> bytes:
    return (b"POST /rpc/bench HTTP/1.1\r\nHost: 127.0.0.1:4000\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
REPLY_BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
REPLY = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 24 Nov 2025 02:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
    % (len(REPLY_BODY), REPLY_BODY)
)
CONFIG = """
region: bench
persistence: {sqlite_path: null}
chains:
  bench:
    chain_id: 1
    strategy: leaderboard
    # FEATURES
    providers:
      - {id: p1, http_url: 'http://127.0.0.1:9/p1'}
      - {id: p2, http_url: 'http://127.0.0.1:9/p2'}
      - {id: p3, http_url: 'http://127.0.0.1:9/p3'}
"""


# ---------------------------------------------------------------------------------------------- Livechain internals


class Edge(NamedTuple):
    """What the measurement loop drives: the edge protocol and the app's fold timer."""

    feed: Callable[[bytes], None]  # bytes from the client → the edge (HttpConnection.data_received)
    fold: Callable[[], Any]  # the chain's benchmark-store fold (the app's timer)
    fold_interval: float  # seconds of loop time between folds (livechain.app.FOLD_INTERVAL)
    close: Callable[[], None]  # the client goes away


def make_edge(app: Any, loop: asyncio.AbstractEventLoop, on_response: Callable[[bytes], None],
              minimal: bool = False) -> Edge:
    """THE one function that reaches into Livechain's internals: it fakes the upstream pool's connections,
    marks the chain's providers confirmed, builds the measured dispatcher from the App (`app.routes`, or the
    edge + pool floor of bench/minimal_proxy.py with `minimal`) and its edge protocol (`HttpConnection` with
    `app.limits` and `app.tracker`), connected to a client transport whose write() calls on_response(bytes).

    Name lookups try the NEW name first and fall back to the OLD one, so the same script measures a refactored
    tree and the tree before it (--before). Each `_first(...)` lists candidates newest first: when src/ is
    refactored, put the new name IN FRONT of the current one and keep the current one as the fallback. Keep
    every such lookup in this function; nothing else in this file touches Livechain's internals.
    """
    # -- the upstream pool: its connections get an in-memory transport that answers REPLY on the next loop
    #    step. Lookups (new name first, then old): the pool module, the pool class, its connection protocol.
    http_mod = _first_module("livechain.transport.http")
    pool_cls = _first(http_mod, "HttpPool")
    conn_cls = _first(http_mod, "_Conn")

    async def connect(self, loop_, deadline, limit):  # replaces HttpPool._connect(loop, deadline, limit)
        conn = conn_cls(self)
        conn.connection_made(_Transport(lambda data, c=conn: loop.call_soon(c.data_received, REPLY)))
        self._created += 1
        self._conns.add(conn)
        return conn

    pool_cls._connect = connect  # type: ignore[method-assign]

    # -- the chain: every provider's chain id confirmed and at head 1, as after the first health checks
    chain = _first(app, "registry").resolve("bench")
    pool = chain.pool
    for p in pool.providers:
        pool.set_chain_id_ok(p, True, 1)
        p.observe_head(1)
    pool.best_head = 1

    # -- the measured dispatcher and the edge protocol (lookups: new name first, then old)
    if minimal:  # the floor: edge + pool, no features (bench/minimal_proxy.py)
        from minimal_proxy import Forward

        dispatcher = Forward(pool_cls("http://127.0.0.1:9/", name="upstream"))
    holder = _web_edge(app)  # new: the app's WebEdge (built, not listening); old: the App itself
    if not minimal:
        dispatcher = _first(holder, "routes")
    edge_cls = _first(_first_module("livechain.server.http"), "HttpConnection")
    conn = edge_cls(dispatcher, _first(holder, "limits"), _first(holder, "tracker"))
    conn.connection_made(_Transport(on_response))
    fold_interval = getattr(_first_module("livechain.library", "livechain.app"), "FOLD_INTERVAL", 0.25)
    return Edge(conn.data_received, chain.store.fold, fold_interval, lambda: conn.connection_lost(None))


def _web_edge(app: Any) -> Any:
    """What holds routes, limits and tracker: the edge a serving app builds (new: livechain.server.edge.WebEdge,
    constructed here without listening), or the App itself (old)."""
    try:
        from livechain.server.edge import WebEdge
    except ImportError:
        return app
    return WebEdge(app.registry, lambda: app.config, app.events, app.snapshots, app.restarts)


def _first_module(*names: str) -> Any:
    """The first of the modules `names` that imports (list the new name first, the old one last)."""
    errors = []
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise LookupError(f"none of the modules {names} imports here ({'; '.join(errors)}): adapt make_edge()")


def _first(obj: Any, *names: str) -> Any:
    """The first of the attributes `names` of `obj` that exists (list the new name first, the old one last)."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    raise LookupError(f"{obj!r} has none of {names}: adapt make_edge()")


# ---------------------------------------------------------------------------------------------- measurement


class _Transport:
    """Enough of asyncio.Transport for both sides."""

    def __init__(self, on_write) -> None:
        self.on_write = on_write
        self.closing = False

    def write(self, data: bytes) -> None:
        self.on_write(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 50000) if name == "peername" else default

    def close(self) -> None:
        self.closing = True

    abort = close

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass


def make_app(cache: bool):
    """The real App (routes, registry, chains), not started: no server, no timers, no health checks. The chain's
    cache and coalescing on or off (block 1 final); a tree that does not know those keys is measured without."""
    from livechain import log as logsetup
    from livechain.app import App
    from livechain.config import ConfigError, ConfigStore, parse_config

    features = "{enabled: %s}\n    coalesce: %s\n    finality_depth: 0" % (("true", "true") if cache else ("false", "false"))
    text = CONFIG.replace("# FEATURES", "cache: " + features)
    try:
        config = parse_config(text)
    except ConfigError:  # a tree from before the cache (a --before side): the plain request path
        if cache:
            print("note: this tree has no response cache: measured without it", file=sys.stderr)
        text = CONFIG
        config = parse_config(text)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "livechain.yaml")
        with open(path, "w") as f:
            f.write(text)
        logsetup.setup("info", "json", stream=open(os.devnull, "w"))
        return App(ConfigStore(path, config))


async def run(requests: int, rounds: int, profile: bool, minimal: bool = False, cache: bool = False,
              kind: str = "blocknumber") -> list[float]:
    loop = asyncio.get_running_loop()
    app = make_app(cache)
    body = BODIES[kind]
    fixed = http_request(body(0)) if kind != "balance-distinct" else None
    state: dict[str, Any] = {"left": 0, "done": None, "next_fold": 0.0, "check": False, "n": 0}

    def next_request() -> bytes:
        if fixed is not None:
            return fixed
        state["n"] += 1
        return http_request(body(state["n"]))

    def on_response(data: bytes) -> None:
        done = state["done"]
        if done is None or done.done():
            return
        if not data.startswith(b"HTTP/1.1 200") or (state["check"] and b'"result"' not in data):
            done.set_exception(MeasuredNothing(f"the edge answered {data[:300]!r}, not a JSON-RPC result"))
            return
        state["check"] = False
        state["left"] -= 1
        if state["left"] <= 0:
            done.set_result(None)
            return
        now = loop.time()
        if now >= state["next_fold"]:
            state["next_fold"] = now + edge.fold_interval
            edge.fold()
        loop.call_soon(edge.feed, next_request())

    edge = make_edge(app, loop, on_response, minimal)

    async def batch(n: int) -> float:
        require(n > 0, f"--requests {n}: no request to measure")
        state["left"] = n
        state["done"] = loop.create_future()
        state["check"] = True  # the first reply of a batch must carry the provider's result
        t0 = time.process_time()
        edge.feed(next_request())
        try:
            await asyncio.wait_for(state["done"], 120 + n / 1000)
        except TimeoutError:
            raise MeasuredNothing(f"{n - state['left']} of {n} requests answered in {120 + n / 1000:g} s") from None
        edge.fold()
        return (time.process_time() - t0) / n * 1e6

    await batch(2000)  # warm-up
    results = [await batch(requests) for _ in range(rounds)]
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        await batch(requests)
        prof.disable()
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(int(os.environ.get("PROFILE_LINES", "35")))
    edge.close()
    return results


def measure(args: argparse.Namespace) -> None:
    """This process, this tree (PYTHONPATH): the single-tree mode, and one side of --before."""
    import uvloop

    import livechain

    logging.getLogger("asyncio").setLevel(logging.ERROR)
    results = uvloop.run(run(args.requests, args.rounds, args.profile, args.minimal, args.cache == "on", args.request))
    require(results, f"--rounds {args.rounds}: no round measured")
    for r in results:
        measured(r, "µs/request")
        require(r > 0, f"a round took {r} µs/request: nothing was measured")
    src = os.path.dirname(os.path.dirname(livechain.__file__))
    if args.json:
        from _common import write_result

        write_result(args.json, {"median_us": statistics.median(results), "min_us": min(results), "src": src})
    print(f"{src}: {statistics.median(results):.2f} µs/request (median of {len(results)}: "
          f"{', '.join(f'{r:.1f}' for r in results)}); min {min(results):.2f}")
    if args.emit_json:
        print(EMIT + json.dumps({"src": src, "us_per_request": results}), flush=True)


# ---------------------------------------------------------------------------------------------- --before


def one_run(side: str, tree: str, args: argparse.Namespace) -> float:
    """One round of this script in a fresh process with PYTHONPATH=tree; its µs/request."""
    argv = [sys.executable, os.path.abspath(__file__), "--requests", str(args.requests), "--rounds", "1",
            "--emit-json", "--request", args.request, "--cache", args.cache] + (["--minimal"] if args.minimal else [])
    out = subprocess.run(argv, env={**os.environ, "PYTHONPATH": tree}, capture_output=True, text=True)
    tail = (out.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    require(out.returncode == 0, f"{side} ({tree}) exited with {out.returncode}: {tail}")
    lines = [line for line in out.stdout.splitlines() if line.startswith(EMIT)]
    require(lines, f"{side} ({tree}) printed no {EMIT.strip()} line: {out.stdout[-300:]!r} {tail}")
    data = json.loads(lines[-1][len(EMIT):])
    require(os.path.realpath(data["src"]) == os.path.realpath(tree),
            f"{side} imported livechain from {data['src']}, not from {tree}: is {tree} a src/ directory?")
    values = data["us_per_request"]
    require(len(values) == 1, f"{side} ({tree}) measured {len(values)} rounds, not 1")
    return measured(values[0], f"{side} µs/request")


def compare(args: argparse.Namespace) -> None:
    trees = {"after": os.path.abspath(THIS_SRC), "before": os.path.abspath(args.before)}
    for side, tree in trees.items():
        require(os.path.isfile(os.path.join(tree, "livechain", "__init__.py")),
                f"{side}: {tree} is not a src/ directory with a livechain package")
    runs: dict[str, list[float]] = {side: [] for side in trees}
    print(f"after = {trees['after']}, before = {trees['before']}; {args.rounds} rounds × {args.requests} requests, "
          f"one fresh process per tree per round, interleaved", flush=True)
    for r in range(args.rounds):
        for side, tree in trees.items():
            runs[side].append(one_run(side, tree, args))
        after, before = runs["after"][-1], runs["before"][-1]
        print(f"  round {r + 1}: after {after:6.2f} µs  before {before:6.2f} µs  after/before {after / before:.3f}",
              flush=True)
    require(all(runs.values()), f"--rounds {args.rounds}: no round measured")
    summary: dict[str, Any] = {}
    for side, tree in trees.items():
        values = runs[side]
        summary[side] = {"src": tree, "median_us": statistics.median(values), "min_us": min(values), "runs": values}
        print(f"{side:6s} {tree}: {summary[side]['median_us']:.2f} µs/request (median of {len(values)}: "
              f"{', '.join(f'{v:.1f}' for v in values)}); min {summary[side]['min_us']:.2f}")
    a, b = summary["after"], summary["before"]
    summary["ratio_median"] = measured(a["median_us"] / b["median_us"], "after/before median")
    summary["ratio_min"] = measured(a["min_us"] / b["min_us"], "after/before min")
    print(f"after/before: median {summary['ratio_median']:.3f}  min {summary['ratio_min']:.3f}")
    if args.json:
        from _common import write_result

        write_result(args.json, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--minimal", action="store_true", help="the edge + pool floor (bench/minimal_proxy.py)")
    parser.add_argument("--json", help="also write bench/results/<name>.json")
    parser.add_argument("--cache", choices=("off", "on"), default="off",
                        help="the chain's response cache and coalescing (off: the request path without them)")
    parser.add_argument("--request", choices=list(BODIES), default="blocknumber",
                        help="what each request asks (balance-distinct: a new address each time)")
    parser.add_argument("--before", metavar="SRC",
                        help="another tree's src/ directory: measure both trees in this run, interleaved")
    parser.add_argument("--emit-json", action="store_true",
                        help=f"also print one machine-readable '{EMIT.strip()} {{...}}' line (per-round µs/request)")
    args = parser.parse_args()
    require(args.rounds >= 1 and args.requests >= 1, "--rounds and --requests must be at least 1")
    if args.before:
        if args.profile or args.emit_json:
            parser.error("--before runs the measurements in subprocesses: no --profile / --emit-json with it")
        compare(args)
    else:
        measure(args)


if __name__ == "__main__":
    run_main(main)
