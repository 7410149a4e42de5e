"""Regenerate docs/dashboard.png: the chain view of a demo that has run long enough to have a history.

    .venv/bin/python -m tests.browser.make_screenshot [--minutes 5]

Runs `livechain demo` in-process with load on both chains; halfway through, `swift` on fastnet gets
+150 ms of latency (so the latency chart and the race win share move), and shortly before the picture
`distant` answers 429s (so the feed shows failovers and cooldowns). Not a test: the test suite writes its
screenshots to artifacts/ only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright

from livechain.demo.run import Demo
from livechain.faults import Fault
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT

MIX = {"eth_blockNumber": 4, "eth_getBalance": 2, "eth_call": 2, "eth_getLogs": 1}


async def main(minutes: float, out: Path) -> None:
    demo = Demo()
    with tempfile.TemporaryDirectory() as tmp:
        app = await demo.start("127.0.0.1", 0, sqlite_path=f"{tmp}/demo.sqlite")
        base = f"http://127.0.0.1:{app.port}"
        total = minutes * 60
        try:
            async with aiohttp.ClientSession() as http:
                for chain, rate in (("fastnet", 120), ("ethereum-local", 40)):
                    body = {"action": "start", "chain": chain, "rate": rate, "mix": MIX, "subscribers": 10,
                            "duration_s": min(600, total + 60)}
                    async with http.post(f"{base}/api/simulator", json=body) as resp:
                        resp.raise_for_status()
                swift = demo.proxies["fastnet/swift"]
                baseline = swift.fault
                await phase(total * 0.45, "normal")
                swift.set(Fault(latency_ms=150, jitter_ms=20))
                await phase(total * 0.3, "swift +150 ms")
                swift.set(baseline)
                await phase(total * 0.25 - 12, "recovered")
                async with http.put(f"{base}/api/faults/fastnet/distant",
                                    json={"mode": "http_status", "status": 429, "retry_after": 3, "latency_ms": 90}) as r:
                    r.raise_for_status()
                await asyncio.sleep(6)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                await page.goto(f"{base}/dashboard#chain/fastnet")
                await page.wait_for_selector("#chart-wins canvas", timeout=15_000)
                await page.wait_for_selector("#matrix tbody td.cell", timeout=15_000)
                await page.wait_for_timeout(4000)
                await page.evaluate("() => window.scrollTo(0, 0)")
                await page.screenshot(path=str(out), full_page=True)
                await browser.close()
            print(f"wrote {out}", file=sys.stderr)
        finally:
            await demo.stop()


async def phase(seconds: float, name: str) -> None:
    print(f"{name}: {seconds:.0f} s", file=sys.stderr, flush=True)
    await asyncio.sleep(max(0.0, seconds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    asyncio.run(main(args.minutes, args.out))
