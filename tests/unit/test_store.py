"""Benchmark store, scoring and persistence with an injected clock: 24 h pass in milliseconds of test time."""

from __future__ import annotations

import os
import sqlite3

import orjson

from livechain.clock import ManualClock
from livechain.metrics import leaderboard
from livechain.metrics.persistence import Database
from livechain.metrics.store import BenchmarkStore
from livechain.metrics.windows import OUTCOMES
from livechain.outcomes import Outcome


def test_window_is_the_last_five_minutes_and_totals_span_the_retention_period():
    clock = ManualClock()
    store = BenchmarkStore("c", clock=clock, window=300)
    store.record_rpc("p", "eth_call", 10.0, Outcome.OK)
    clock.advance(331)  # the window is 10 slots of 30 s: a record leaves it 300–330 s later
    store.record_rpc("p", "eth_call", 20.0, Outcome.OK)
    store.record_rpc("p", "eth_call", 900.0, Outcome.TIMEOUT)
    now = store.rpc()["p"]["eth_call"]
    total = store.rpc(window=False)["p"]["eth_call"]
    assert (now["count"], total["count"]) == (2, 3)
    assert now["failures"] == {"timeout": 1} and now["success_rate"] == 0.5
    assert 18 <= now["p50_ms"] <= 23  # the sketch is within ±7 %
    assert total["mean_ms"] == 15.0


def test_a_day_of_traffic_stays_within_the_cap_and_ages_out_after_retention():
    """One request/s for 25 h with a 24 h retention and a 50,000-row cap: the detail ring never exceeds
    the cap, retention slots stay ≤ 24 per key, and after expiry nothing older than 24 h remains."""
    clock = ManualClock()
    store = BenchmarkStore("c", clock=clock, max_entries=50_000, retention=86_400)
    for second in range(25 * 3600):
        store.record_rpc(f"p{second % 3}", "eth_call", 5.0 + second % 7, Outcome.OK)
        if second % 600 == 0:
            store.fold()
            store.expire()
        clock.advance(1)
    store.fold()
    store.expire()
    assert store.detail.size == 50_000
    oldest = min(ts for ts, *_ in store.detail.rows())
    assert oldest >= clock.wall() - 86_400
    for windowed in store.rpc_stats.values():
        assert len(windowed.total.slots) <= 25 and len(windowed.now.slots) <= 11
    assert sum(v["count"] for v in store.rpc(window=False)["p0"].values()) <= 86_400 / 3 + 3600
    clock.advance(2 * 86_400)
    store.expire()
    assert store.detail.size == 0 and store.rpc_stats == {}


def test_detail_ring_memory_is_fixed_by_its_capacity():
    store = BenchmarkStore("c", clock=ManualClock(), max_entries=86_400)
    assert store.detail.nbytes == 86_400 * 16


def test_a_method_name_flood_is_bounded():
    store = BenchmarkStore("c", clock=ManualClock())
    for i in range(1000):
        store.record_rpc("p", f"m{i}", 1.0, Outcome.OK)
    store.fold()
    assert len({m for (_, m) in store.rpc_stats}) <= 257  # 256 names + "other"


def test_every_outcome_is_counted_in_its_own_column_and_reported_by_its_handling():
    """Each Outcome lands in the column of its index; answered outcomes are successes with a latency, the
    others failures by name; unscored ones (the client's cost, the provider's policy) leave the success rate
    alone."""
    assert OUTCOMES == tuple(o.value for o in Outcome)
    store = BenchmarkStore("c", clock=ManualClock())
    for outcome in Outcome:
        store.record_rpc("p", "eth_call", 5.0, outcome)
    store.fold()
    stats = store.rpc()["p"]["eth_call"]
    assert stats["count"] == len(Outcome)
    assert stats["failures"] == {o.value: 1 for o in Outcome if not o.answered}
    scored = [o for o in Outcome if o.scored]
    assert stats["success_rate"] == round(sum(o.answered for o in scored) / len(scored), 4)
    assert {k[2] for k in store.rpc_counts} == {o.value for o in Outcome}


def test_snapshot_round_trip_restores_windows_totals_races_and_counters():
    clock = ManualClock()
    store = BenchmarkStore("c", clock=clock)
    for i in range(50):
        store.record_rpc("a", "eth_call", 3.0 + i % 5, Outcome.OK if i % 10 else Outcome.TIMEOUT)
        store.record_race("a", "newHeads", i % 4 != 0, 0.0 if i % 4 else 12.5)
    store.record_missed("b", "newHeads", 3)
    state = orjson.loads(orjson.dumps(store.to_state()))
    copy = BenchmarkStore("c", clock=clock)
    copy.load_state(state)
    assert copy.rpc() == store.rpc() and copy.rpc(window=False) == store.rpc(window=False)
    assert copy.races() == store.races()
    assert copy.rpc_counts == store.rpc_counts and copy.race_counts == store.race_counts
    assert copy.prom[("a", "eth_call")].count == 45


def test_leaderboard_ranks_by_score_with_components():
    clock = ManualClock()
    store = BenchmarkStore("c", clock=clock)
    for _ in range(100):
        store.record_race("fast", "newHeads", True, 0.0)
        store.record_race("slow", "newHeads", False, 40.0)
        store.record_rpc("fast", "eth_call", 5.0, Outcome.OK)
        store.record_rpc("slow", "eth_call", 50.0, Outcome.OK)
    ranked = leaderboard.rank(store, ["slow", "fast"])
    assert [r["provider"] for r in ranked] == ["fast", "slow"]
    assert ranked[0]["race"]["win_rate"] == 1.0 and ranked[0]["race"]["races"] == 100
    assert ranked[1]["race"]["avg_margin_ms"] == 40.0
    assert ranked[0]["rank"] == 1 and ranked[0]["rpc"]["samples"] == 100


def test_minute_series_are_taken_once_and_keep_the_current_minute_until_it_is_complete():
    clock = ManualClock(wall_start=1_700_000_010.0)  # minute 1_699_999_980 … 1_700_000_039
    store = BenchmarkStore("c", clock=clock)
    store.record_rpc("p", "eth_call", 10.0, Outcome.OK)
    store.record_race("p", "newHeads", True, 0.0)
    clock.advance(30)  # next minute
    store.record_rpc("p", "eth_call", 30.0, Outcome.BAD_RESPONSE)
    rpc, race = store.minute_rows(complete_only=True, take=True)
    assert [r[:6] for r in rpc] == [(1_699_999_980, "p", "eth_call", 1, 0, 10.0)]
    assert len(race) == 1 and race[0][3:5] == (1, 1)
    rpc2, _ = store.minute_rows(complete_only=False, take=True)
    assert len(rpc2) == 1 and rpc2[0][4] == 1  # the error of the current minute, taken once


def test_database_keeps_snapshots_and_series(tmp_path):
    db = Database(str(tmp_path / "x.sqlite"))
    db.save_snapshots([("local", "c", 1.0, orjson.dumps({"a": 1}))])
    db.save_series("local", "c", [(60, "p", "m", 2, 1, 3.0, 3.0, 9.0)], [(60, "p", "newHeads", 4, 3, 12.0)], 0)
    db.save_series("local", "c", [(60, "p", "m", 1, 0, 3.0, 3.0, 5.0)], [], 0)
    assert db.snapshots() == [("local", "c", 1.0, {"a": 1})]
    assert db.series("rpc", "local", "c", 0, None, None) == [(60, "p", "m", 3, 1, 3.0, 3.0, 9.0)]
    assert db.series("race", "local", "c", 0, "p", "newHeads") == [(60, "p", "newHeads", 4, 3, 12.0)]
    db.close()
    journal = sqlite3.connect(tmp_path / "x.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_a_corrupt_database_is_moved_aside_and_replaced(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    db = Database(str(path))
    assert db.moved_aside and os.path.exists(db.moved_aside)
    db.save_snapshots([("local", "c", 1.0, b"{}")])
    assert len(db.snapshots()) == 1
    db.close()


def test_minute_series_nobody_takes_are_dropped_after_an_hour():
    """Without persistence taking them, minute rows cannot pile up: after an hour they are dropped."""
    clock = ManualClock()
    store = BenchmarkStore("c", clock=clock)
    for _ in range(180):  # three hours, one request a minute
        store.record_rpc("p", "eth_call", 1.0, Outcome.OK)
        store.record_race("p", "newHeads", True, 0.0)
        clock.advance(60)
        store.fold()
        store.expire()
    assert len(store.rpc_minutes) <= 61 and len(store.race_minutes) <= 61


def test_the_head_delay_counts_wins_as_zero_and_losses_by_their_margin():
    """p50/p90 of how far behind the first arrival a provider is, wins included as 0 — so a provider that
    wins 70 % of races has a p50 of 0, whatever it loses by (an average of losses alone would rank it last)."""
    store = BenchmarkStore("c", clock=ManualClock())
    for i in range(100):
        store.record_race("mostly_first", "newHeads", i % 10 < 7, 0.0 if i % 10 < 7 else 50.0)
        store.record_race("always_second", "newHeads", False, 5.0)
    races = store.races()
    first, second = races["mostly_first"]["newHeads"], races["always_second"]["newHeads"]
    assert first["delay_p50_ms"] == 0.0 and 45 <= first["delay_p90_ms"] <= 55
    assert 4.5 <= second["delay_p50_ms"] <= 5.5 and first["avg_margin_ms"] > second["avg_margin_ms"]
