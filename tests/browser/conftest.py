"""Browser harness: a real `livechain demo` (anvil chains behind fault proxies) in-process on port 0, and
Debian chromium driven by Python Playwright (DESIGN §7 flags)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from livechain.demo.run import Demo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


@dataclass
class Tab:
    """A page with every console error and uncaught exception it produced."""

    page: object
    base: str
    errors: list[str] = field(default_factory=list)


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    """The demo: chains `ethereum-local` (1 s blocks) and `fastnet` (250 ms), providers behind fault proxies
    (`demo.proxies`), Livechain serving the dashboard (`demo.app`)."""
    d = Demo()
    try:
        await d.start("127.0.0.1", 0)
        yield d
    finally:
        await d.stop()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not HAVE_CHROMIUM:
        pytest.skip("Debian chromium is not installed (make install adds it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def open_dashboard(demo: Demo, browser) -> AsyncIterator[Callable[..., Awaitable[Tab]]]:
    """`await open_dashboard("#chain/fastnet", width=390, height=844)` → a Tab on the demo's dashboard."""
    contexts = []
    ARTIFACTS.mkdir(exist_ok=True)

    async def open_(fragment: str = "#overview", *, width: int = 1280, height: int = 800,
                    scheme: str = "light") -> Tab:
        context = await browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
        contexts.append(context)
        page = await context.new_page()
        tab = Tab(page, f"http://127.0.0.1:{demo.app.port}")
        page.on("console", lambda msg: tab.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
        await page.goto(f"{tab.base}/dashboard{fragment}")
        return tab

    try:
        yield open_
    finally:
        for context in contexts:
            await context.close()
