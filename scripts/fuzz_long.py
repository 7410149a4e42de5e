#!/usr/bin/env python3
"""Long fuzzing run of Livechain's JSON-RPC edge: ≥ 100,000 generated inputs over HTTP and WebSocket.

    .venv/bin/python scripts/fuzz_long.py                 # 100,000 inputs, 30 % of them over WebSocket
    .venv/bin/python scripts/fuzz_long.py --inputs 20000 --seed 7

Livechain runs as a real subprocess (`python -m livechain serve`, uvloop, the interpreter's normal recursion
limit) in front of one anvil; the inputs and the oracle are those of tests/fuzz/strategies.py (invalid UTF-8,
deep nesting, huge numbers, wrong types, giant batches, duplicate ids, random JSON and bytes, valid-looking
requests with random methods and params). Each HTTP input is POSTed to /rpc/dev and followed by a normal
request; each WebSocket input is sent as a text or binary frame on one long-lived connection and followed by a
sentinel request (see WsJudge). Violations (HTTP 5xx, tracebacks or Python exception text, replies that are
not spec JSON-RPC, a missing or extra reply, a server that stops answering or dies, the planted key in a reply
or a log line) are counted per input kind and never stop the run; the first ones are printed.

Prints inputs/s and the violations found; exit status 1 when there was at least one. Also lists the server's
error log lines (an input answered "internal error" is spec-shaped, so not a violation, but it is logged
with a traceback: each distinct one is worth a look).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tests.fuzz.strategies import Payload, WsJudge, check_body, expect, fuzz_config, payloads  # noqa: E402

from livechain.devnet import Anvil  # noqa: E402

FAKE_KEY = "LCFAKEKEY0123456789abcdef"
PING = b'{"jsonrpc":"2.0","id":"ping","method":"eth_chainId","params":[]}'
_PORT = re.compile(rb'"port":\s*(\d+)')


class Server:
    """`livechain serve` in a subprocess on an ephemeral port; logs go to a file."""

    def __init__(self, config_path: str, log_path: str) -> None:
        self.config_path, self.log_path = config_path, log_path
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> None:
        log = open(self.log_path, "ab")
        offset = log.tell()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livechain", "serve", "--config", self.config_path, "--port", "0"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                for line in f:
                    if b'"listening"' in line and (m := _PORT.search(line)):
                        self.port = int(m.group(1))
                        return
            if self.proc.poll() is not None:
                raise RuntimeError(f"livechain exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError("livechain did not report its port")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Loop:
    """An asyncio loop in a thread: Hypothesis runs in the main thread and submits coroutines here."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Run:
    def __init__(self, server: Server, show: int) -> None:
        self.server = server
        self.show = show
        self.inputs: Counter[str] = Counter()
        self.violations: Counter[str] = Counter()
        self.examples: list[str] = []
        self.session: aiohttp.ClientSession | None = None
        self.judge: WsJudge | None = None
        self.leaks = 0

    def violation(self, transport: str, payload: Payload, problems: list[str]) -> None:
        key = f"{transport} {payload.kind}"
        self.violations[key] += 1
        if len(self.examples) < self.show:
            self.examples.append(f"[{key}] {problems[:3]} for {payload!r}")
            print(f"  violation: {self.examples[-1][:600]}", flush=True)

    def restart_if_dead(self, transport: str, payload: Payload) -> None:
        if not self.server.alive:
            self.violation(transport, payload, [f"the server died (exit {self.server.proc.returncode})"])
            self.server.start()

    # -------------------------------------------------------------------- HTTP

    async def http(self, payload: Payload) -> list[str]:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        base = f"http://127.0.0.1:{self.server.port}/rpc/dev"
        headers = {"content-type": "application/json"}
        problems: list[str] = []
        try:
            async with self.session.post(base, data=payload.data, headers=headers) as resp:
                status, body = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return [f"request failed: {type(exc).__name__} {exc}"]
        self.leaks += FAKE_KEY.encode() in body
        want = expect(payload.data)
        if status >= 500:
            problems.append(f"HTTP {status}")
        elif status != want.status and not (want.kind == "none" and status == 204):
            problems.append(f"HTTP {status}, expected {want.status}")
        problems += check_body(body, want, payload.data)
        try:
            async with self.session.post(base, data=PING, headers=headers) as resp:
                if resp.status != 200 or b'"result":"0x7a69"' not in await resp.read():
                    problems.append(f"the follow-up request failed: HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            problems.append(f"the follow-up request failed: {type(exc).__name__}")
        return problems

    # -------------------------------------------------------------------- WebSocket

    async def ws(self, payload: Payload, binary: bool) -> list[str]:
        if self.judge is None or self.judge.url.split(":")[2].split("/")[0] != str(self.server.port):
            if self.judge is not None:
                await self.judge.close()
            self.judge = await WsJudge(f"ws://127.0.0.1:{self.server.port}/ws/rpc/dev", timeout=3.0).open()
        try:
            problems = await self.judge.judge(payload, binary)
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            problems = [f"WebSocket failed: {type(exc).__name__} {exc}"]
        received, self.judge.received = self.judge.received, []
        self.leaks += sum(FAKE_KEY.encode() in r for r in received)
        if problems and (self.judge.ws is None or self.judge.ws.closed):
            await self.judge.close()
            self.judge = None
        elif self.judge.n % 2000 == 0:  # a fresh connection now and then: subscriptions do not pile up
            await self.judge.close()
            self.judge = None
        return problems

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.judge is not None:
            await self.judge.close()


def fuzz(run: Run, loop: Loop, transport: str, count: int, seed_value: int) -> float:
    """Run `count` generated inputs over one transport; returns the elapsed seconds."""
    common = settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    progress = {"n": 0, "t": time.monotonic()}

    def tick() -> None:
        progress["n"] += 1
        if progress["n"] % 5000 == 0:
            rate = progress["n"] / (time.monotonic() - progress["t"])
            print(f"  {transport}: {progress['n']} inputs, {rate:.0f}/s, "
                  f"{sum(run.violations.values())} violations so far", flush=True)

    if transport == "http":

        @seed(seed_value)
        @common
        @given(payload=payloads)
        def http_inputs(payload: Payload) -> None:
            run.inputs[f"http {payload.kind.split('/')[0]}"] += 1
            problems = loop.run(run.http(payload))
            run.restart_if_dead("http", payload)
            if problems:
                run.violation("http", payload, problems)
            tick()

        started = time.monotonic()
        http_inputs()
    else:

        @seed(seed_value)
        @common
        @given(payload=payloads, binary=st.booleans())
        def ws_inputs(payload: Payload, binary: bool) -> None:
            run.inputs[f"ws {payload.kind.split('/')[0]}"] += 1
            problems = loop.run(run.ws(payload, binary))
            run.restart_if_dead("ws", payload)
            if problems:
                run.violation("ws", payload, problems)
            tick()

        started = time.monotonic()
        ws_inputs()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="total generated inputs (HTTP + WS)")
    parser.add_argument("--ws-share", type=float, default=0.3, help="fraction of the inputs sent over WebSocket")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--show", type=int, default=10, help="violations printed in full")
    args = parser.parse_args()

    loop = Loop()
    workdir = tempfile.mkdtemp(prefix="livechain-fuzz-")
    node = loop.run(Anvil(block_time=1.0).start())
    config_path = os.path.join(workdir, "fuzz.yaml")
    log_path = os.path.join(workdir, "livechain.log")
    Path(config_path).write_text(fuzz_config(node, FAKE_KEY))
    server = Server(config_path, log_path)
    server.start()
    run = Run(server, args.show)
    ws_count = int(args.inputs * args.ws_share)
    http_count = args.inputs - ws_count
    print(f"fuzz_long: {http_count} HTTP + {ws_count} WebSocket inputs, seed {args.seed}, server pid {server.proc.pid}",
          flush=True)
    try:
        http_s = fuzz(run, loop, "http", http_count, args.seed)
        ws_s = fuzz(run, loop, "ws", ws_count, args.seed + 1)
    finally:
        with contextlib.suppress(Exception):
            loop.run(run.close())
        server.stop()
        loop.run(node.stop())
        loop.close()
    log_text = Path(log_path).read_text(errors="replace")
    leaks = run.leaks + log_text.count(FAKE_KEY)
    logged: Counter[str] = Counter()  # error log lines by message and final exception line
    for line in log_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") == "error":
            last = str(entry.get("exc") or "").strip().splitlines()[-1:] or ["-"]
            logged[f"{entry.get('msg')}: {last[0][:120]}"] += 1

    http_n = sum(v for k, v in run.inputs.items() if k.startswith("http"))
    ws_n = sum(v for k, v in run.inputs.items() if k.startswith("ws"))
    total_violations = sum(run.violations.values()) + leaks
    print()
    print(f"inputs                {http_n + ws_n} (HTTP {http_n} in {http_s:.0f} s = {http_n / max(http_s, 1e-9):.0f}/s; "
          f"WebSocket {ws_n} in {ws_s:.0f} s = {ws_n / max(ws_s, 1e-9):.0f}/s)")
    print(f"inputs by kind        {dict(sorted(run.inputs.items()))}")
    print(f"violations            {total_violations}")
    for key, n in sorted(run.violations.items(), key=lambda kv: -kv[1]):
        print(f"  {n:7d}  {key}")
    if leaks:
        print(f"  {leaks:7d}  planted key in a reply or a log line")
    print(f"server restarts       {server.starts - 1}")
    print(f"server log            {sum(logged.values())} error lines ({log_path})")
    for key, n in logged.most_common(10):
        print(f"  {n:7d}  {key}")
    return 1 if total_violations else 0


if __name__ == "__main__":
    sys.exit(main())
