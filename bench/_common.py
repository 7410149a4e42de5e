"""Shared pieces of the benchmark scripts: free ports, our own nginx processes, wrk, /proc CPU, Livechain.

Every process a benchmark needs is started here as a child of the benchmark and stopped by its pid; nothing
else on the machine is touched. Ports are found by binding port 0.

A benchmark that measured nothing (no sample, no delivered message, a target that never answered) must fail:
scripts check with `require(...)` / `measured(...)`, which raise `MeasuredNothing`, and run their `main` through
`run_main(main)`, which turns it into a message on stderr and exit status 1 — never a `nan` and exit 0.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

#: the fixed JSON-RPC reply of the fake provider (DESIGN §6 / the issue)
FAKE_REPLY = '{"jsonrpc":"2.0","id":1,"result":"0x1"}'
#: the chain id the fake provider's fixed reply "0x1" means to Livechain's eth_chainId health check: a chain
#: served by `fake_provider_nginx` must be configured with this chain_id (or use its per-path `results`)
FAKE_CHAIN_ID = 1
RPC_BODY = '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


# ---------------------------------------------------------------------------------------------- measured nothing


class MeasuredNothing(Exception):
    """The benchmark has no numbers to report: 0 samples, 0 messages delivered, a target that never answered."""


def require(condition: object, message: str) -> None:
    """Raise MeasuredNothing(message) unless `condition` holds."""
    if not condition:
        raise MeasuredNothing(message)


def measured(value: float | None, what: str) -> float:
    """`value` if it is a finite number; MeasuredNothing naming `what` if it is None, nan or infinite."""
    if value is None or not math.isfinite(value):
        raise MeasuredNothing(f"{what}: no value ({value}): nothing was measured")
    return value


def run_main(main: Callable[[], Any]) -> NoReturn:
    """Run a benchmark's main(); MeasuredNothing becomes a message on stderr and exit status 1."""
    name = os.path.basename(sys.argv[0]) or "benchmark"
    try:
        main()
    except MeasuredNothing as exc:
        sys.stdout.flush()
        print(f"{name}: FAILED, measured nothing: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(0)


def check_rpc(url: str, body: str = RPC_BODY, timeout: float = 10.0) -> bytes:
    """One POST of `body` to `url`; MeasuredNothing unless it answers 200 with a JSON-RPC `result`."""
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an http_proxy from the env
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    except OSError as exc:
        raise MeasuredNothing(f"{url} never answered: {exc}") from None
    require(status == 200 and b'"result"' in data, f"{url} answered {status} {data[:300]!r}, not a JSON-RPC result")
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


# ---------------------------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


# ---------------------------------------------------------------------------------------------- processes


class Child:
    """A child process we started; stopped by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, proc: subprocess.Popen, name: str) -> None:
        self.proc = proc
        self.name = name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


_NGINX_HEAD = """
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
"""


def start_nginx(workdir: str, name: str, http_body: str) -> Child:
    """nginx in the foreground, one process (`master_process off`), config and temp files in `workdir`."""
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(_NGINX_HEAD.format(dir=d) + http_body + "\n}\n")
    proc = subprocess.Popen(
        [NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return Child(proc, name)


def fake_provider_nginx(workdir: str, port: int, results: dict[str, str] | None = None) -> Child:
    """A provider that answers every request at once with a fixed JSON-RPC reply (keep-alive): eth_chainId
    and eth_blockNumber both get "0x1", so its chain is FAKE_CHAIN_ID (1) and its head block 1.
    `results`: path prefix → another fixed result (e.g. {"/c2/": "0x2"} for a provider of chain id 2)."""
    extra = "".join(
        f"    location {prefix} {{ default_type application/json; "
        f"return 200 '{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"{result}\"}}'; }}\n"
        for prefix, result in (results or {}).items()
    )
    body = f"""
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ default_type application/json; return 200 '{FAKE_REPLY}'; }}
{extra}  }}"""
    child = start_nginx(workdir, f"fake-{port}", body)
    wait_port(port, proc=child.proc)
    return child


def proxy_nginx(workdir: str, port: int, upstream_port: int) -> Child:
    """nginx `proxy_pass` with upstream keep-alive: the C limit of a reverse proxy."""
    body = f"""
  upstream provider {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://provider;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }}
  }}"""
    child = start_nginx(workdir, f"proxy-{port}", body)
    wait_port(port, proc=child.proc)
    return child


def livechain_config(chain_yaml: str, *, level: str = "info") -> str:
    return (
        "region: bench\n"
        "server: {host: 127.0.0.1, port: 0, max_connections_per_ip: 100000}\n"
        "persistence: {sqlite_path: null}\n"
        f"logging: {{level: {level}, format: json}}\n"
        "chains:\n" + chain_yaml
    )


def start_livechain(workdir: str, config_yaml: str, name: str = "livechain", env: dict | None = None) -> tuple[Child, int]:
    """`python -m livechain serve` as its own process; returns it and the port it logged."""
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "livechain.yaml")
    with open(conf, "w") as f:
        f.write(config_yaml)
    log_path = os.path.join(d, "livechain.log")
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        [PYTHON, "-m", "livechain", "serve", "--config", conf, "--port", "0"],
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, cwd=d,
        env={**os.environ, **(env or {})},
    )
    log_file.close()
    child = Child(proc, name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"livechain exited: {Path(log_path).read_text()[-2000:]}")
        with open(log_path, "rb") as f:
            for line in f:
                if b'"listening"' in line:
                    port = json.loads(line)["port"]
                    wait_port(port, proc=proc)
                    return child, port
        time.sleep(0.05)
    child.stop()
    raise TimeoutError("livechain did not log 'listening'")


def log_problems(workdir: str, name: str = "livechain", last: int = 5) -> str:
    """The last `last` warning/error lines of a Livechain started by start_livechain (for a failure message:
    the work directory is removed when the benchmark ends)."""
    path = os.path.join(workdir, name, "livechain.log")
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if '"warning"' in line or '"error"' in line or "Traceback" in line]
    except OSError:
        return f"(no log at {path})"
    return "\n    ".join(lines[-last:]) or "(no warnings or errors in its log)"


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[str]:
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- wrk

_WRK_LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"mean_us":%%f,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_script(workdir: str, body: str = RPC_BODY, *, name: str = "post.lua", extra: str = "") -> str:
    """A wrk script POSTing `body`; `extra`: more Lua (e.g. a `request` function that varies the body)."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(_WRK_LUA % body + extra)
    return path


def run_wrk(url: str, script: str, connections: int, seconds: float, threads: int = 1,
            watch: Sequence[int] = ()) -> dict:
    """Run wrk; returns its summary plus `cpu_s[pid]` (utime+stime deltas of the watched processes)."""
    before = {pid: cpu_seconds(pid) for pid in watch}
    out = subprocess.run(
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", script, url],
        capture_output=True, text=True,
    )
    after = {pid: cpu_seconds(pid) for pid in watch}
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result = json.loads(line[8:])
            break
    else:  # e.g. nothing listens there: wrk exits 1 without a summary
        raise MeasuredNothing(f"wrk against {url} exited with {out.returncode} and no summary: "
                              f"{(out.stderr or out.stdout).strip()[-300:]}")
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    require(result["requests"] > result["status"] and result["duration_us"] > 0,
            f"wrk -c{connections} got no successful reply from {url} in {seconds:g} s "
            f"({result['requests']} replies, {result['errors']} errors: {result})")
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["cpu_s"] = {pid: after[pid] - before[pid] for pid in watch}
    return result


# ---------------------------------------------------------------------------------------------- stats


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def write_result(name: str, data: dict) -> str:
    """Results as JSON under bench/results/ (run_all.py renders BENCHMARKS.md from them)."""
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return str(path)


def start_port_child(argv: list[str], name: str) -> tuple[Child, int]:
    """A helper process that binds port 0 and prints `PORT <n>` on its first line, ready to use."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"{name} did not start")
    port = int(line.split()[1])
    wait_port(port, proc=proc)
    return Child(proc, name), port


def start_minimal_proxy(upstream_url: str) -> tuple[Child, int]:
    """bench/minimal_proxy.py (Livechain's edge + pool, no features) as its own process."""
    return start_port_child([PYTHON, str(ROOT / "bench" / "minimal_proxy.py"), upstream_url], "minimal")
