"""Stall detection (`livechain.chains.stall`) with an injected clock: the block-time estimate, the thresholds,
the transitions (one log line, one event, one count each) and recovery — per chain and per provider — plus the
`stall_after` config field and what /api/health, the chain snapshot and /metrics make of it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from livechain.chains import views
from livechain.chains.chain import Chain
from livechain.chains.stall import FALLBACK_S, MIN_AUTO_S, Stall
from livechain.clock import ManualClock
from livechain.config import ConfigError, parse_config
from livechain.events import EventBus
from livechain.failsafe import Supervisor
from livechain.server.api import Api
from livechain.server.prometheus import MetricsEndpoint


@dataclass
class FakeProvider:
    id: str
    head: int | None = None
    head_at: float = 0.0


class Rig:
    """A Stall over fake providers; `polled` maps a provider id (None: the chain) to its poll interval."""

    def __init__(self, stall_after: float | None = None, providers: tuple[str, ...] = ("a", "b")) -> None:
        self.clock = ManualClock()
        self.events = EventBus()
        self.providers = [FakeProvider(pid) for pid in providers]
        self.polled: dict[str | None, float] = {}
        self.stall = Stall(
            "dev", stall_after, providers=lambda: self.providers, polled=self.polled.get, events=self.events,
            clock=self.clock.monotonic,
        )
        self.number = 100

    def blocks(self, count: int, every: float, *, providers: bool = True) -> None:
        """`count` new blocks, one every `every` seconds; the providers' heads follow unless told not to."""
        for _ in range(count):
            self.clock.advance(every)
            self.number += 1
            if providers:
                self.heads(self.number)
            self.stall.on_block(self.number, False)

    def heads(self, number: int, *pids: str) -> None:
        for p in self.providers:
            if not pids or p.id in pids:
                p.head, p.head_at = number, self.clock.monotonic()

    def state(self):
        return self.stall.state(self.clock.monotonic())

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(e["kind"], e["provider"]) for e in self.events.recent() if e["kind"] in ("stalled", "recovered")]


# ---------------------------------------------------------------------------------------------- block time


def test_the_block_time_is_unknown_until_enough_intervals_and_auto_falls_back_to_a_minute_meanwhile():
    """One or two intervals are not an estimate: until MIN_SAMPLES, auto means FALLBACK_S (60 s)."""
    rig = Rig()
    rig.blocks(3, 2.0)  # the first block has no predecessor: two intervals
    assert rig.stall.block_time is None and rig.stall.threshold() == FALLBACK_S == 60.0
    rig.blocks(1, 2.0)
    assert rig.stall.block_time == pytest.approx(2.0)
    assert rig.stall.threshold() == pytest.approx(6.0)


def test_the_block_time_is_the_median_so_one_slow_block_does_not_move_it():
    """A single long interval (a missed slot) among regular ones leaves the median where it was."""
    rig = Rig()
    rig.blocks(8, 1.0)
    rig.blocks(1, 30.0)
    rig.blocks(2, 1.0)
    assert rig.stall.block_time == pytest.approx(1.0)


def test_a_head_that_skips_blocks_counts_per_block_and_backfilled_or_burst_heads_are_no_samples():
    """Interval / number delta: 3 s for 3 blocks is 1 s per block. Backfilled blocks (fetched, not arrived) and
    heads delivered together (a reorg's branch, a catch-up) say nothing about the chain's pace."""
    rig = Rig()
    for _ in range(4):
        rig.clock.advance(3.0)
        rig.number += 1
        rig.stall.on_block(rig.number, True)  # backfilled: no sample
        rig.stall.on_block(rig.number + 1, True)
        rig.number += 2
        rig.stall.on_block(rig.number, False)  # 3 blocks since the last live head, 3 s later
        rig.stall.on_block(rig.number + 1, False)  # the same instant: a burst, no sample
        rig.number += 1
    assert rig.stall.block_time == pytest.approx(1.0)


def test_auto_is_three_block_times_but_never_below_the_floor_and_a_configured_value_is_used_as_is():
    fast = Rig()
    fast.blocks(10, 0.25)
    assert fast.stall.block_time == pytest.approx(0.25)
    assert fast.stall.threshold() == MIN_AUTO_S == 3.0  # 0.75 s would flap on one slow block
    slow = Rig()
    slow.blocks(10, 12.0)
    assert slow.stall.threshold() == pytest.approx(36.0)
    configured = Rig(stall_after=5.0)
    assert configured.stall.threshold() == 5.0
    configured.blocks(10, 12.0)
    assert configured.stall.threshold() == 5.0
    configured.stall.configure(None)  # a reload back to auto
    assert configured.stall.threshold() == pytest.approx(36.0)


def test_polled_heads_raise_the_threshold_to_two_health_intervals():
    """Without a live WebSocket a head changes once per health check at most: at least 2 × health_interval,
    for the chain and for each polled provider, while pushed ones keep the plain threshold."""
    rig = Rig()
    rig.blocks(10, 1.0)
    rig.polled.update({None: 5.0, "a": 5.0})
    assert rig.stall.threshold() == 10.0 and rig.stall.threshold("a") == 10.0 and rig.stall.threshold("b") == 3.0
    rig.polled.clear()
    assert rig.stall.threshold() == 3.0


# ---------------------------------------------------------------------------------------------- the chain


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_no_head_for_stall_after_is_stalled_and_the_next_head_recovers_at_once():
    """ok → stalled after the threshold (one event, one log line, one count, however often it is checked);
    the next head ends it without waiting for a check."""
    rig = Rig()
    rig.blocks(10, 1.0)
    logger = logging.getLogger("livechain.chains")
    records, level = Records(), logger.level
    logger.addHandler(records)  # on the logger itself: `livechain` may not propagate after a log setup
    logger.setLevel(logging.INFO)
    try:
        rig.clock.advance(2.9)
        assert rig.stall.check().stalled is False and rig.kinds() == []
        rig.clock.advance(0.2)  # 3.1 s without a head: both providers' heads stopped too
        state = rig.stall.check()
        assert state.stalled and state.stalled_for_s == pytest.approx(0.1) and state.silent_s == pytest.approx(3.1)
        assert state.providers == {"a": True, "b": True}
        for _ in range(5):
            rig.clock.advance(0.5)
            rig.stall.check()
        assert rig.kinds() == [("stalled", None), ("stalled", "a"), ("stalled", "b")]
        assert rig.stall.chain_stalls == 1 and rig.stall.provider_stalls == {"a": 1, "b": 1}
        rig.blocks(1, 0.0)  # heads are back (the tracker backfilled any gap before this)
        assert rig.state().stalled is False
        assert rig.kinds()[3:] == [("recovered", None), ("recovered", "a"), ("recovered", "b")]
        rig.stall.check()
        assert len(rig.kinds()) == 6
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    chain_lines = [r for r in records.records if r.provider is None]  # type: ignore[attr-defined]
    assert [r.levelname for r in chain_lines] == ["WARNING", "INFO"]
    assert chain_lines[0].chain == "dev" and chain_lines[0].silent_s == pytest.approx(3.1)
    assert chain_lines[0].stall_after_s == 3.0 and chain_lines[0].block_time_s == 1.0
    recovered = next(e for e in rig.events.recent() if e["kind"] == "recovered" and e["provider"] is None)
    assert recovered["stalled_s"] == pytest.approx(2.6)  # stalled from 3.0 s of silence until the head at 5.6 s


def test_the_state_is_right_without_any_check_having_run():
    """`state(now)` is a pure read of the last head and the clock, not of what `check` reported."""
    rig = Rig()
    rig.blocks(10, 1.0)
    rig.clock.advance(10.0)
    state = rig.state()
    assert state.stalled and state.stalled_for_s == pytest.approx(7.0) and state.providers == {"a": True, "b": True}
    assert rig.kinds() == [] and state.summary() == {
        "stalled": True, "stalled_for_s": 7.0, "block_time_s": 1.0, "stall_after_s": 3.0,
    }
    rig.blocks(1, 0.0)
    assert not rig.state().stalled


def test_a_chain_that_never_had_a_head_is_stalled_after_the_fallback():
    rig = Rig()
    rig.clock.advance(FALLBACK_S - 1)
    assert not rig.state().stalled
    rig.clock.advance(2)
    assert rig.stall.check().stalled and rig.kinds()[0] == ("stalled", None)


# ---------------------------------------------------------------------------------------------- providers


def test_one_provider_whose_head_stops_is_stalled_alone_and_recovers_when_its_head_moves():
    rig = Rig()
    rig.blocks(10, 1.0)
    for _ in range(5):  # the chain goes on; b's head stays
        rig.clock.advance(1.0)
        rig.number += 1
        rig.heads(rig.number, "a")
        rig.stall.on_block(rig.number, False)
        rig.stall.check()
    state = rig.state()
    assert not state.stalled and state.providers == {"a": False, "b": True}
    assert rig.kinds() == [("stalled", "b")]
    rig.heads(rig.number, "b")  # it caught up (a health check or its WebSocket)
    assert rig.state().providers["b"] is False
    rig.stall.check()
    assert rig.kinds() == [("stalled", "b"), ("recovered", "b")]


def test_a_provider_without_a_head_counts_from_when_it_was_first_seen_and_a_removed_one_is_forgotten():
    """A provider known from the start with no head is stalled after the threshold; one added later (a reload)
    counts from the check that first saw it; a removed one leaves no transition behind."""
    rig = Rig(stall_after=10.0, providers=("a",))
    rig.clock.advance(6.0)
    rig.providers.append(FakeProvider("late"))
    assert rig.state().providers == {"a": False, "late": False}
    rig.stall.check()
    rig.clock.advance(5.0)
    assert rig.stall.check().providers == {"a": True, "late": False}
    rig.clock.advance(6.0)
    assert rig.stall.check().providers == {"a": True, "late": True}
    rig.providers[:] = [p for p in rig.providers if p.id != "late"]
    rig.stall.check()
    assert [k for k in rig.kinds() if k[1] == "late"] == [("stalled", "late")]  # no "recovered" for a removal
    rig.providers.append(FakeProvider("late"))  # back again: seen anew
    assert rig.stall.check().providers["late"] is False


def test_run_checks_every_quarter_threshold_within_bounds():
    rig = Rig()
    assert rig.stall.period() == 1.0  # fallback 60 s / 4, capped at 1 s
    assert Rig(stall_after=2.0).stall.period() == 0.5
    assert Rig(stall_after=0.01).stall.period() == 0.05


# ---------------------------------------------------------------------------------------------- config


def chain_config(line: str = "") -> str:
    return (
        "persistence: {sqlite_path: null}\nchains:\n  dev:\n    chain_id: 5\n" + line
        + "    providers:\n      - {id: a, http_url: 'http://a.example/'}\n      - {id: b, http_url: 'http://b.example/'}\n"
    )


@pytest.mark.parametrize(("raw", "value"), [(None, "auto"), ("auto", "auto"), ("30s", 30.0), ("250ms", 0.25), (7, 7.0)])
def test_stall_after_is_auto_by_default_or_a_duration(raw, value):
    line = "" if raw is None else f"    stall_after: {raw}\n"
    assert parse_config(chain_config(line), env={}).chains["dev"].stall_after == value


@pytest.mark.parametrize("raw", ["soon", "0", "-5s", "''", "true", "AUTO"])
def test_a_bad_stall_after_is_an_error_at_its_dotted_path(raw):
    with pytest.raises(ConfigError) as info:
        parse_config(chain_config(f"    stall_after: {raw}\n"), env={})
    [(path, message)] = info.value.problems
    assert path == "chains.dev.stall_after"
    assert message.startswith("must be auto or a duration")


# ---------------------------------------------------------------------------------------------- the views


def offline_chain(line: str = "") -> tuple[Chain, ManualClock, EventBus]:
    """A real Chain, never started: nothing connects; heads are fed by hand."""
    config = parse_config(chain_config(line), env={})
    clock, events = ManualClock(), EventBus()
    chain = Chain(config.chains["dev"], region="local", metrics=config.metrics, events=events,
                  supervisor=Supervisor(events), clock=clock)
    return chain, clock, events


def feed(chain: Chain, clock: ManualClock, first: int, count: int, every: float) -> None:
    for number in range(first, first + count):
        clock.advance(every)
        for provider in chain.pool.providers:
            provider.observe_head(number)  # the provider alone: the pool would poll the (fake) URLs for the head
        chain.on_block({"number": hex(number), "hash": f"0x{number:064x}"}, False)


def test_health_is_503_while_a_chain_is_stalled_and_the_snapshot_and_metrics_say_so():
    """/api/health: status "stalled" and HTTP 503 while the chain is, 200 and "ok" once heads are back; the
    chain snapshot and /metrics carry the same state."""
    chain, clock, events = offline_chain("    stall_after: 10s\n")
    api = Api([chain], None, events, {})  # type: ignore[arg-type]
    feed(chain, clock, 1, 5, 1.0)
    response = api.health()
    body = views.health([chain], {})  # type: ignore[arg-type]
    assert response.status == 200 and body["status"] == "ok" and body["chains"]["dev"]["status"] == "ok"
    clock.advance(10.5)
    response = api.health()
    body = views.health([chain], {})  # type: ignore[arg-type]
    dev = body["chains"]["dev"]
    assert response.status == 503 and body["status"] == "stalled" and b'"status":"stalled"' in response.body
    assert dev["status"] == "stalled" and dev["stalled"] is True and dev["stalled_for_s"] == pytest.approx(0.5)
    assert dev["stall_after_s"] == 10.0 and dev["block_time_s"] == 1.0
    assert {pid: p["stalled"] for pid, p in dev["providers"].items()} == {"a": True, "b": True}
    snapshot = chain.snapshot()
    assert snapshot["stalled"] is True and [p["stalled"] for p in snapshot["providers"]] == [True, True]
    overview = views.overview([chain], type("S", (), {"region": "local", "region_names": lambda self: []})())  # type: ignore[arg-type]
    assert overview["chains"][0]["stalled"] is True and overview["chains"][0]["providers_stalled"] == ["a", "b"]
    chain.stall.check()
    metrics = MetricsEndpoint([chain], events, "local", {}).render().decode()  # type: ignore[arg-type]
    assert 'livechain_chain_stalled{chain="dev",region="local"} 1.0' in metrics
    assert 'livechain_provider_stalled{chain="dev",provider="a",region="local"} 1.0' in metrics
    assert 'livechain_chain_block_time_seconds{chain="dev",region="local"} 1.0' in metrics
    assert 'livechain_chain_stall_after_seconds{chain="dev",region="local"} 10.0' in metrics
    assert 'livechain_chain_stalls_total{chain="dev",region="local"} 1.0' in metrics
    assert 'livechain_provider_stalls_total{chain="dev",provider="b",region="local"} 1.0' in metrics
    families = {f.name for f in text_string_to_metric_families(metrics)}  # it parses as exposition text
    assert {"livechain_chain_stalled", "livechain_provider_stalled", "livechain_chain_block_time_seconds",
            "livechain_chain_stall_after_seconds", "livechain_chain_stalls", "livechain_provider_stalls"} <= families
    feed(chain, clock, 6, 1, 0.0)
    assert api.health().status == 200 and views.health([chain], {})["status"] == "ok"  # type: ignore[arg-type]
    assert [e["kind"] for e in events.recent() if e["kind"] in ("stalled", "recovered")] == [
        "stalled", "stalled", "stalled", "recovered", "recovered", "recovered",
    ]
    metrics = MetricsEndpoint([chain], events, "local", {}).render().decode()  # type: ignore[arg-type]
    assert 'livechain_chain_stalled{chain="dev",region="local"} 0.0' in metrics


def test_a_chain_with_no_provider_up_stays_down_but_is_stalled_too():
    """"down" (no provider answers) is the stronger word; `stalled` and the 503 still say the heads stopped."""
    chain, clock, events = offline_chain("    stall_after: 10s\n")
    for provider in chain.pool.providers:
        chain.pool.set_chain_id_ok(provider, False)  # excluded: none is up
    feed(chain, clock, 1, 5, 1.0)
    clock.advance(11)
    body = views.health([chain], {})  # type: ignore[arg-type]
    assert body["status"] == "stalled" and body["chains"]["dev"]["status"] == "down"
    assert body["chains"]["dev"]["stalled"] is True
    assert Api([chain], None, events, {}).health().status == 503  # type: ignore[arg-type]
