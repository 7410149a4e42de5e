"""Start and stop an anvil node (npm `@foundry-rs/anvil`) on an ephemeral port.

anvil prints "Listening on 127.0.0.1:PORT" when `--port 0` is given; we read that line, so several nodes
run side by side without port clashes.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import orjson

_LISTENING = re.compile(rb"Listening on ([0-9.]+):(\d+)")
_NPM_PATH = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


def find_anvil() -> str:
    """$LIVECHAIN_ANVIL, then node_modules next to the working directory or the source tree, then PATH."""
    env = os.environ.get("LIVECHAIN_ANVIL")
    if env:
        return env
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        candidate = base / _NPM_PATH
        if candidate.exists():
            return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise FileNotFoundError("anvil not found: run `make install` (npm install) or set LIVECHAIN_ANVIL")


class Anvil:
    def __init__(
        self,
        *,
        block_time: float | None = 1.0,
        chain_id: int = 31337,
        fork_url: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.block_time = block_time
        self.chain_id = chain_id
        self.fork_url = fork_url
        self.extra_args = extra_args
        self.process: asyncio.subprocess.Process | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self._drain: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self, timeout: float = 20.0) -> Anvil:
        args = [find_anvil(), "--port", "0", "--host", "127.0.0.1", "--chain-id", str(self.chain_id)]
        if self.block_time is not None:
            args += ["--block-time", f"{self.block_time:g}"]
        if self.fork_url:
            args += ["--fork-url", self.fork_url]
        args += list(self.extra_args)
        self.process = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        raise RuntimeError(f"anvil exited early with code {await self.process.wait()}")
                    match = _LISTENING.search(line)
                    if match:
                        self.host, self.port = match.group(1).decode(), int(match.group(2))
                        break
        except BaseException:
            await self.stop()
            raise
        # keep reading its output so the pipe never fills and blocks the node
        self._drain = asyncio.get_running_loop().create_task(self._discard_output(), name=f"anvil/{self.port}/stdout")
        return self

    async def _discard_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while await self.process.stdout.read(65536):
            pass

    async def rpc(self, method: str, params: list | None = None) -> object:
        """One direct JSON-RPC call to this node (test and demo helper; not the proxy's path)."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
            writer.write(
                b"POST / HTTP/1.1\r\nHost: anvil\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            raw = await reader.read()
        finally:
            writer.close()
        reply = orjson.loads(raw.split(b"\r\n\r\n", 1)[1])
        if "error" in reply:
            raise RuntimeError(f"anvil {method}: {reply['error']}")
        return reply["result"]

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None

    async def __aenter__(self) -> Anvil:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
