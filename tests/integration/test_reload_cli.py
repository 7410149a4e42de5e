"""Config reload under load, the admin endpoint, and the command line as users run it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import orjson
import pytest

from tests.conftest import chain_yaml, config_text, provider_yaml

TOKEN = "test-admin-token-0123456789"


def chain_with(proxies, ids) -> str:
    providers = "".join(provider_yaml(f"p{i}", proxies[i].url + "/", priority=i) for i in ids)
    return config_text(chain_yaml("dev", 31337, providers, health_interval="200ms", strategy="round_robin"))


async def test_reload_under_load_swaps_providers_with_zero_failed_requests(start_livechain, proxies, tmp_path):
    """While 8 clients hammer the chain, POST /admin/reload replaces p0 with p2: no request fails, and
    afterwards only p1 and p2 answer."""
    path = tmp_path / "livechain.yaml"
    path.write_text(chain_with(proxies, [0, 1]))
    lc = await start_livechain(path.read_text(), config_path=str(path), admin_token=TOKEN)
    failures: list[dict] = []
    served: list[str] = []
    stop = asyncio.Event()

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            reply = await lc.rpc("eth_blockNumber", rid=n * 1_000_000 + i)
            i += 1
            (served if "result" in reply else failures).append(reply.get("_provider") or reply)

    clients = [asyncio.create_task(client(n)) for n in range(8)]
    await asyncio.sleep(0.5)
    path.write_text(chain_with(proxies, [1, 2]))
    status, _, body = await lc.post("/admin/reload", b"", {"Authorization": f"Bearer {TOKEN}"})
    result = orjson.loads(body)
    assert status == 200 and result["ok"], result
    assert result["changed"]["providers_added"] == {"dev": ["p2"]}
    assert result["changed"]["providers_removed"] == {"dev": ["p0"]}
    mark = len(served)
    await asyncio.sleep(0.7)
    stop.set()
    await asyncio.gather(*clients)
    assert failures == []
    assert len(served) > 200
    after = set(served[mark + 50 :])  # requests started after the swap
    assert after == {"p1", "p2"}


async def test_invalid_reload_keeps_the_last_good_config_and_says_why(start_livechain, proxies, tmp_path):
    path = tmp_path / "livechain.yaml"
    path.write_text(chain_with(proxies, [0]))
    lc = await start_livechain(path.read_text(), config_path=str(path), admin_token=TOKEN)
    path.write_text(chain_with(proxies, [0]).replace("chain_id: 31337", "chain_id: 31337\n    bogus: 1"))
    status, _, body = await lc.post("/admin/reload", b"", {"X-Admin-Token": TOKEN})
    result = orjson.loads(body)
    assert status == 400 and not result["ok"]
    assert result["problems"] == ["chains.dev.bogus: unknown key"]
    assert "result" in await lc.rpc("eth_chainId")


async def test_admin_reload_requires_the_token(start_livechain, proxies, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(chain_with(proxies, [0]))
    lc = await start_livechain(path.read_text(), config_path=str(path), admin_token=TOKEN)
    assert (await lc.post("/admin/reload", b""))[0] == 401
    assert (await lc.post("/admin/reload", b"", {"Authorization": "Bearer wrong"}))[0] == 401
    lc2 = await start_livechain(path.read_text(), config_path=str(path), admin_token="")
    status, _, body = await lc2.post("/admin/reload", b"", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 403 and b"LIVECHAIN_ADMIN_TOKEN" in body


# ----------------------------------------------------------------------------- the command line


async def run_cli(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livechain", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_config_check_reports_every_problem_with_dotted_paths_and_fails(tmp_path, monkeypatch):
    monkeypatch.delenv("ALCHEMY_KEY", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(
        "chains:\n  ethereum:\n    chain_id: 1\n    providers:\n"
        "      - {id: a, http_url: 'https://x.example/v2/${ALCHEMY_KEY}'}\n"
        "      - {id: b, http_url: 'https://y.example', colour: blue}\n"
    )
    code, _, err = await run_cli("config", "check", str(path))
    assert code != 0
    assert "chains.ethereum.providers[0].http_url: environment variable ALCHEMY_KEY is not set" in err
    assert "chains.ethereum.providers[1].colour: unknown key" in err


async def test_config_check_accepts_the_shipped_configs():
    for name in ("config/example.yaml", "config/public.yaml"):
        code, out, err = await run_cli("config", "check", name)
        assert code == 0, err
        assert "OK" in out


async def test_serve_answers_reloads_on_sighup_and_stops_on_sigterm(proxies, tmp_path):
    """The real process: `livechain serve --port 0`; SIGHUP reloads; SIGTERM exits cleanly."""
    path = tmp_path / "c.yaml"
    path.write_text(chain_with(proxies, [0]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livechain", "serve", "--config", str(path), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        port = None
        lines = []
        while port is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, b"".join(lines)
            lines.append(line)
            record = orjson.loads(line)
            if record["msg"] == "listening":
                port = record["port"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
        writer.write(b"POST /rpc/dev HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
        path.write_text(chain_with(proxies, [0, 1]))
        proc.send_signal(signal.SIGHUP)
        while True:
            record = orjson.loads(await asyncio.wait_for(proc.stderr.readline(), 30))
            if record["msg"] == "config reloaded":
                break
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("args", [["serve"], ["bogus"]])
async def test_cli_usage_errors_exit_non_zero(args):
    code, _, err = await run_cli(*args)
    assert code == 2 and "usage" in err
