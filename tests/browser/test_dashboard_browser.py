"""The dashboard in a real browser (Debian chromium) against a real demo: anvil chains behind fault proxies."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

HEAD = "[data-testid=head-fastnet]"
ROWS = "#leaderboard tbody tr[data-provider]"


async def number(page, selector: str) -> float:
    text = (await page.text_content(selector)) or ""
    digits = "".join(ch for ch in text if ch.isdigit() or ch == ".")
    return float(digits) if digits else float("nan")


async def snapshot(page, name: str) -> None:
    """A full-page screenshot in artifacts/ (scrolled to the top so the sticky header stays on top)."""
    await page.evaluate("() => window.scrollTo(0, 0)")
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def leaderboard_ready(page) -> None:
    await page.wait_for_selector(ROWS, timeout=10_000)


async def test_the_overview_loads_without_console_errors_and_its_head_block_advances_by_itself(open_dashboard):
    """Every chain gets a card; the fastnet head number changes with no user action (SSE push); no console
    errors or uncaught exceptions on the way."""
    tab = await open_dashboard("#overview")
    page = tab.page
    await page.wait_for_function(f"() => document.querySelector('{HEAD}')?.textContent.startsWith('#')", timeout=10_000)
    cards = await page.eval_on_selector_all(".chain-card", "els => els.map(e => e.dataset.chain)")
    assert sorted(cards) == ["ethereum-local", "fastnet"]
    first = await page.text_content(HEAD)
    await page.wait_for_function(f"() => document.querySelector('{HEAD}').textContent !== {first!r}", timeout=5_000)
    age = await page.text_content("[data-age=fastnet]")
    assert age and age.endswith("ago"), age
    await page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"))
    assert tab.errors == []


async def test_the_chain_view_ranks_every_provider_on_the_live_leaderboard(open_dashboard):
    """The fastnet chain view lists swift, steady and distant on the racing leaderboard, with race counts
    that grow while the page is open; the matrix and both charts render."""
    tab = await open_dashboard("#chain/fastnet")
    page = tab.page
    await leaderboard_ready(page)
    providers = await page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.provider)")
    assert sorted(providers) == ["distant", "steady", "swift"]
    races = "document.querySelector('#leaderboard tbody tr td:nth-child(6)').textContent"
    before = await page.evaluate(f"() => {races}")
    await page.wait_for_function(f"() => {races} !== {before!r}", timeout=5_000)
    await page.wait_for_selector("#matrix tbody td.cell", timeout=10_000)
    await page.wait_for_selector("#chart-wins canvas", timeout=10_000)
    await snapshot(page, "dashboard-chain.png")
    assert tab.errors == []


async def test_starting_the_load_simulator_from_the_page_raises_requests_per_second_on_screen(open_dashboard):
    """Clicking Start sends real JSON-RPC through Livechain: the chain's requests/s on screen climbs well
    above what it showed before, and the simulator panel reports achieved load."""
    tab = await open_dashboard("#chain/fastnet")
    page = tab.page
    await page.wait_for_function("() => document.querySelector('[data-testid=kpi-rps]')?.textContent.length > 0")
    before = await number(page, "[data-testid=kpi-rps]")
    await page.fill("#sim-rate", "200")
    await page.fill("#sim-duration", "30")
    await page.click("#sim-start")
    await page.wait_for_function(
        f"() => parseFloat(document.querySelector('[data-testid=kpi-rps]').textContent.replace(/,/g, '')) > {before + 40}",
        timeout=10_000,
    )
    assert await number(page, "[data-testid=sim-rate-achieved]") > 0
    await page.click("#sim-stop")
    await page.wait_for_function("() => document.querySelector('#sim-state').textContent === 'stopped'", timeout=5_000)
    assert tab.errors == []


async def test_faulting_the_leading_provider_from_the_page_changes_the_leaderboard_or_its_breaker(open_dashboard, demo):
    """With load flowing, answering the rank-1 provider's requests with HTTP 502 (the fault controls on the
    page) shows on screen within seconds: its breaker opens, or it loses first place."""
    tab = await open_dashboard("#chain/fastnet")
    page = tab.page
    await leaderboard_ready(page)
    await page.fill("#sim-rate", "100")
    await page.click("#sim-start")
    await page.wait_for_selector("#sim-stop:not([hidden])", timeout=5_000)
    leader = await page.eval_on_selector(ROWS, "row => row.dataset.provider")
    await page.click(f"#faults .fault-row[data-provider={leader}] button[data-action='502']")
    await page.wait_for_function(
        f"""() => {{
            const first = document.querySelector('{ROWS}');
            const pill = document.querySelector('#leaderboard tr[data-provider={leader}] [data-breaker]');
            return first.dataset.provider !== '{leader}' || (pill && pill.dataset.breaker !== 'closed');
        }}""",
        timeout=10_000,
    )
    badge = await page.text_content(f"#faults .fault-row[data-provider={leader}] [data-fault]")
    assert "502" in badge
    assert demo.proxies[f"fastnet/{leader}"].fault.mode == "http_status"
    await snapshot(page, "dashboard-chain-faulted.png")
    await page.click(f"#faults .fault-row[data-provider={leader}] button[data-action='Clear']")
    await page.wait_for_function(
        f"() => document.querySelector('#faults .fault-row[data-provider={leader}] [data-fault]').dataset.fault === 'none'",
        timeout=5_000,
    )
    assert tab.errors == []


async def test_a_chain_whose_blocks_stop_shows_stalled_badges_until_they_resume(open_dashboard, demo):
    """fastnet's node stops mining: the chain's status pill and every provider row of the leaderboard get a
    `stalled` badge and the feed a `stalled` line; mining resumes and the badges go by themselves."""
    tab = await open_dashboard("#chain/fastnet")
    page = tab.page
    await leaderboard_ready(page)
    status = "[data-testid=kpi-status]"
    await page.wait_for_function(
        "() => /s · stall after/.test(document.querySelector('[data-testid=kpi-block-time]').textContent)"
        " && !document.querySelector('[data-testid=kpi-block-time]').textContent.startsWith('—')",
        timeout=15_000,
    )  # the block time is known, so the threshold is 3 block times (the 3 s floor here), not the fallback
    node = demo.nodes["fastnet"]
    await node.rpc("evm_setIntervalMining", [0])
    try:
        await page.wait_for_selector(f"{status}[data-stalled=true]", timeout=20_000)
        assert "stalled" in ((await page.text_content(status)) or "")
        await page.wait_for_function(
            f"() => document.querySelectorAll('{ROWS} [data-stalled]').length === 3", timeout=20_000
        )
        await page.wait_for_selector("#feed-chain [data-kind=stalled]", timeout=10_000)
        await snapshot(page, "dashboard-chain-stalled.png")
    finally:
        await node.rpc("evm_mine")  # interval mining resumes from a fresh block
        await node.rpc("evm_setIntervalMining", [1])
    await page.wait_for_selector(f"{status}[data-stalled=false]", timeout=20_000)
    await page.wait_for_function(f"() => document.querySelectorAll('{ROWS} [data-stalled]').length === 0",
                                 timeout=20_000)
    assert tab.errors == []


async def test_a_narrow_phone_screen_renders_both_views_without_horizontal_scroll(open_dashboard):
    """At 390×844 neither the overview nor the chain view is wider than the screen (wide tables scroll inside
    their own panel)."""
    tab = await open_dashboard("#chain/fastnet", width=390, height=844)
    page = tab.page
    await leaderboard_ready(page)
    await page.wait_for_selector("#matrix tbody td.cell", timeout=10_000)
    width = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    scroll, client = await page.evaluate(width)
    assert scroll <= client, f"chain view is {scroll}px wide on a {client}px screen"
    await snapshot(page, "dashboard-narrow-chain.png")
    await page.evaluate("() => { location.hash = '#overview'; }")
    await page.wait_for_selector(".chain-card", timeout=5_000)
    scroll, client = await page.evaluate(width)
    assert scroll <= client, f"overview is {scroll}px wide on a {client}px screen"
    await snapshot(page, "dashboard-narrow-overview.png")
    assert tab.errors == []


async def test_outside_demo_mode_the_controls_stay_read_only_until_the_admin_token_is_pasted(
    browser, start_livechain, proxies
):
    """Without the token every control is disabled and the lock says read-only; after pasting the admin
    token (kept in localStorage) the fault buttons work and change the provider's fault proxy."""
    from livechain.faults import Fault
    from tests.conftest import config_text, dev_chain

    faults = {f"dev/p{i}": proxy for i, proxy in enumerate(proxies)}
    lc = await start_livechain(config_text(dev_chain(proxies)), admin_token="paste-me", faults=faults)
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{lc.base}/dashboard#chain/dev")
        blackhole = "#faults .fault-row[data-provider=p2] button[data-action='Blackhole']"
        await page.wait_for_selector(blackhole, timeout=10_000)
        assert await page.is_disabled(blackhole)
        assert await page.is_disabled("#sim-start")
        assert (await page.text_content("#lock-text")) == "Read-only"
        await page.click("#lock")
        await page.fill("#token", "paste-me")
        await page.click("#token-form button[type=submit]")
        await page.wait_for_function("() => document.querySelector('#lock-text').textContent === 'Admin'")
        assert await page.evaluate("() => localStorage.getItem('livechain.adminToken')") == "paste-me"
        await page.click(blackhole)
        await page.wait_for_function(
            "() => document.querySelector('#faults .fault-row[data-provider=p2] [data-fault]').dataset.fault === 'blackhole'",
            timeout=5_000,
        )
        assert proxies[2].fault == Fault(mode="blackhole")
        assert errors == []
    finally:
        await context.close()
