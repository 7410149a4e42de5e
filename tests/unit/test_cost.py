"""Costs as units: spend per day and month with a budget that comes back with the period (injected wall clock),
the cheapest strategy's order, Livechain's own-traffic cap."""

from __future__ import annotations

from livechain.clock import ManualClock
from livechain.config.costs import BudgetConfig, CostConfig
from livechain.providers.spend import OwnRate, Spend

DAY = 86_400.0


def test_a_budget_is_spent_then_comes_back_the_next_day_and_month_totals_roll_over():
    clock = ManualClock(wall_start=1_764_633_600.0 + 3600)  # 2025-12-02 01:00 UTC
    changes: list[bool] = []
    spend = Spend(CostConfig(units={"eth_getLogs": 75}, default_units=10, unit_price=0.001),
                  BudgetConfig(day=1.0), clock.wall, changes.append)
    assert spend.price("eth_getLogs") == 0.075 and spend.price("eth_call") == 0.01
    for _ in range(13):
        spend.record("eth_getLogs")
    assert not spend.check() and changes == []
    spend.record("eth_getLogs", own=True)  # Livechain's own requests count against the budget too
    assert spend.check() and changes == [True]
    figures = spend.snapshot()
    assert figures["today"]["client"]["requests"] == 13 and figures["today"]["own"]["requests"] == 1
    assert figures["budget_left"]["day"] == 0 and figures["unit"] == "money"
    clock.advance(DAY)  # the next UTC day
    assert not spend.check() and changes == [True, False]
    assert spend.snapshot()["today"]["client"]["requests"] == 0
    assert spend.snapshot()["month"]["client"]["requests"] == 13  # same month
    clock.advance(31 * DAY)
    assert spend.snapshot()["month"]["client"]["requests"] == 0
    assert spend.snapshot()["total"]["client"]["requests"] == 13


def test_spend_restored_from_a_snapshot_keeps_today_only_on_the_same_day():
    clock = ManualClock(wall_start=1_764_633_600.0)
    spend = Spend(CostConfig(per_request=0.5), BudgetConfig(day=2.0), clock.wall)
    for _ in range(3):
        spend.record("eth_call")
    state = spend.to_state()
    again = Spend(CostConfig(per_request=0.5), BudgetConfig(day=2.0), clock.wall)
    again.load_state(state)
    assert again.snapshot()["today"]["client"]["money"] == 1.5 and not again.check()
    again.record("eth_call")
    assert again.check()
    tomorrow = Spend(CostConfig(per_request=0.5), BudgetConfig(day=2.0), lambda: clock.wall() + DAY)
    tomorrow.load_state(again.to_state())
    assert tomorrow.snapshot()["today"]["client"]["requests"] == 0
    assert tomorrow.snapshot()["total"]["client"]["requests"] == 4 and not tomorrow.check()


def test_a_budget_of_zero_is_spent_from_the_start_and_free_providers_cost_nothing():
    clock = ManualClock()
    assert Spend(CostConfig(per_request=1), BudgetConfig(day=0), clock.wall).check()
    free = Spend(None, None, clock.wall)
    free.record("eth_call")
    assert free.price("eth_call") == 0 and not free.check() and free.snapshot()["total"]["client"]["requests"] == 1


def test_own_traffic_is_capped_per_second():
    clock = ManualClock()
    rate = OwnRate(2.0, clock.monotonic)
    assert [rate.take() for _ in range(3)] == [True, True, False]
    clock.advance(0.5)
    assert rate.take() and not rate.take()


def test_explain_names_quarantine_lag_and_cooldown_and_cheapest_orders_reserve_and_slo_misses_last():
    from livechain.routing.explain import route
    from livechain.routing.strategies import Cheapest
    from tests.unit.test_strategies import pool_of

    pool, clock = pool_of(4, max_lag_blocks=2)
    _, p1, p2, p3 = sorted(pool.providers, key=lambda p: p.id)
    for p in pool.providers:
        pool.observe_head(p, 100)
    p1.head = 90  # 10 blocks behind the best head (2 allowed)
    pool.changed()
    p2.failed_check("eth_call", "block hash does not match its header", quarantine=30)
    p3._cool_down(5)
    plan = route(pool, Cheapest(), "eth_call", clock)
    reasons = {e["id"]: e["reasons"] for e in plan["excluded"]}
    assert reasons["p1"] == ["lagging by 10 blocks"]
    assert reasons["p2"] == ["quarantined: block hash does not match its header"]
    assert reasons["p3"][0].startswith("cooling down after 429")
    assert [p["id"] for p in plan["order"]] == ["p0"]

    misses = {("p0", "eth_call")}
    strategy = Cheapest(lambda pid, method: (pid, method) in misses)
    pool, _ = pool_of(3)
    a, b, c = sorted(pool.providers, key=lambda p: p.id)
    a.tier, b.tier, c.tier = "free", "reserve", "paid"
    order = [p.id for p in strategy.order(list(pool.providers), "eth_call")]
    assert order == ["p2", "p1", "p0"]  # in-SLO paid, then the reserve, then the one missing the SLO
