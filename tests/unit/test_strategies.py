"""Selection: eligibility filters and strategy orderings, on real Provider objects with an injected clock."""

import random

import pytest

from livechain.clock import ManualClock
from livechain.config import parse_config
from livechain.events import EventBus
from livechain.metrics.store import BenchmarkStore
from livechain.outcomes import Outcome
from livechain.providers.pool import ProviderPool
from livechain.routing.selection import eligible
from livechain.routing.strategies import Fastest, Leaderboard, Priority, RoundRobin


def pool_of(n=3, clock=None, **chain):
    extra = "".join(f"\n    {k}: {v}" for k, v in chain.items())
    providers = "".join(
        f"\n      - {{id: p{i}, http_url: 'http://127.0.0.1:9/{i}', priority: {n - i}}}" for i in range(n)
    )
    cfg = parse_config(f"chains:\n  dev:\n    chain_id: 1{extra}\n    providers:{providers}\n")
    chain = cfg.chains["dev"]
    clock = clock or ManualClock()
    store = BenchmarkStore("dev", clock=clock)
    pool = ProviderPool(chain, store=store, events=EventBus(), clock=clock)
    for p in pool.providers:
        pool.set_chain_id_ok(p, True)
    return pool, clock


def test_pool_orders_providers_by_priority_lower_first():
    pool, _ = pool_of(3)
    assert [p.id for p in pool.providers] == ["p2", "p1", "p0"]
    assert [p.id for p in Priority().order(list(pool.providers), "m")] == ["p2", "p1", "p0"]


def test_round_robin_spreads_3n_picks_evenly():
    """3N picks over 3 providers: each is first exactly N times (true rotation)."""
    pool, clock = pool_of(3)
    rr = RoundRobin()
    counts = {}
    for _ in range(30):
        first = rr.order(eligible(pool, "eth_call", clock), "eth_call")[0].id
        counts[first] = counts.get(first, 0) + 1
    assert counts == {"p0": 10, "p1": 10, "p2": 10}


def test_fastest_prefers_lowest_latency_and_still_explores():
    """The lowest-latency provider leads most picks; exploration gives the others some first picks."""
    pool, _ = pool_of(3)
    for p, ms in zip(pool.providers, (50.0, 5.0, 20.0), strict=True):
        for _ in range(20):
            p.stats.observe("eth_call", ms, Outcome.OK)
    fastest = Fastest(random.Random(1))
    firsts = [fastest.order(list(pool.providers), "eth_call")[0].id for _ in range(1000)]
    assert firsts.count("p1") > 900
    assert len(set(firsts)) == 3
    assert [p.id for p in sorted(pool.providers, key=lambda p: Fastest._latency(p, "eth_call"))] == ["p1", "p0", "p2"]


def test_fastest_tries_never_measured_providers_first():
    pool, _ = pool_of(2)
    pool.providers[0].stats.observe("eth_call", 1.0, Outcome.OK)
    assert Fastest(random.Random(0)).order(list(pool.providers), "eth_call")[0] is pool.providers[1]


def test_leaderboard_ranks_by_success_and_latency_and_trusts_only_after_min_samples():
    """Below MIN_SAMPLES a provider keeps the optimistic prior; after, failures and latency rank it down."""
    pool, _ = pool_of(3)
    a, b, c = pool.providers
    for _ in range(30):
        a.stats.observe("eth_call", 10.0, Outcome.OK)
        b.stats.observe("eth_call", 10.0, Outcome.TRANSPORT)
    for _ in range(3):
        c.stats.observe("eth_call", 500.0, Outcome.TRANSPORT)
    lb = Leaderboard()
    order = [p.id for p in lb.order(list(pool.providers), "eth_call")]
    assert order == [c.id, a.id, b.id]  # c: too few samples → prior 1.0; a healthy; b failing


def test_leaderboard_score_decays_back_to_the_prior_when_nobody_measures():
    """A provider punished for failures drifts back towards the prior after minutes without samples."""
    pool, clock = pool_of(1)
    (p,) = pool.providers
    for _ in range(30):
        p.stats.observe("eth_call", 10.0, Outcome.TRANSPORT)
    lb = Leaderboard()
    low = lb.score(p, "eth_call")
    clock.advance(300)
    assert low < 0.1 and lb.score(p, "eth_call") > 0.9


def test_eligibility_drops_open_breakers_wrong_chain_cooldown_and_lag():
    pool, clock = pool_of(4, max_lag_blocks=2)
    a, b, c, d = pool.providers
    for p, head in zip(pool.providers, (100, 100, 100, 90), strict=True):
        pool.observe_head(p, head)
    pool.set_chain_id_ok(a, False)
    for _ in range(5):
        b.breaker.record_failure(b.breaker.acquire())
    c.cooldown_until = clock.monotonic() + 5
    # nothing passes every filter: the soft filters (cooldown, lag) are dropped, the hard ones are not
    assert eligible(pool, "eth_call", clock) == [c, d]
    pool.observe_head(d, 99)
    assert eligible(pool, "eth_call", clock) == [d]
    clock.advance(6)
    assert [p.id for p in eligible(pool, "eth_call", clock)] == [c.id, d.id]


def test_eligibility_never_falls_back_to_a_wrong_chain_or_open_breaker():
    pool, clock = pool_of(2)
    a, b = pool.providers
    pool.set_chain_id_ok(a, False)
    for _ in range(5):
        b.breaker.record_failure(b.breaker.acquire())
    assert eligible(pool, "eth_call", clock) == []


@pytest.mark.parametrize("n", [10])
def test_per_provider_method_policy_excludes_provider(n):
    cfg = parse_config(
        "chains:\n  dev:\n    chain_id: 1\n    providers:\n"
        "      - {id: a, http_url: 'http://h/1', methods: {deny: ['eth_getLogs']}}\n"
        "      - {id: b, http_url: 'http://h/2'}\n"
    )
    clock = ManualClock()
    pool = ProviderPool(cfg.chains["dev"], store=BenchmarkStore("dev", clock=clock), events=EventBus(), clock=clock)
    for p in pool.providers:
        pool.set_chain_id_ok(p, True)
    assert [p.id for p in eligible(pool, "eth_getLogs", clock)] == ["b"]
    assert [p.id for p in eligible(pool, "eth_call", clock)] == ["a", "b"]


def test_selection_cache_is_invalidated_by_breaker_transitions_cooldowns_and_heads():
    """A cached eligible list is never served after an input changed: an opened breaker, a 429 cooldown
    or a head that makes a provider lag drops the provider on the very next pick."""
    pool, clock = pool_of(3, max_lag_blocks=1)
    a, b, c = pool.providers
    for p in pool.providers:
        pool.observe_head(p, 10)
    assert eligible(pool, "eth_call", clock) == [a, b, c]
    for _ in range(5):
        a.breaker.record_failure(a.breaker.acquire())
    assert eligible(pool, "eth_call", clock) == [b, c]
    b._cool_down(2.0)
    assert eligible(pool, "eth_call", clock) == [c]
    clock.advance(2.1)  # the cooldown is over (time-based: seen once the cache's short TTL has passed)
    assert eligible(pool, "eth_call", clock) == [b, c]
    pool.observe_head(c, 20)  # b now lags 10 blocks behind the best head: dropped on the very next pick
    assert eligible(pool, "eth_call", clock) == [c]


def test_leaderboard_ranking_is_reused_briefly_and_recomputed_after_its_ttl():
    pool, clock = pool_of(2)
    a, b = pool.providers
    lb = Leaderboard()
    for _ in range(20):
        a.stats.observe("eth_call", 50.0, Outcome.OK)
        b.stats.observe("eth_call", 5.0, Outcome.OK)
    first = lb.order(eligible(pool, "eth_call", clock), "eth_call")
    assert first[0] is b
    for _ in range(40):
        b.stats.observe("eth_call", 900.0, Outcome.TRANSPORT)
    assert lb.order(eligible(pool, "eth_call", clock), "eth_call")[0] is b  # within the TTL
    clock.advance(0.1)
    assert lb.order(eligible(pool, "eth_call", clock), "eth_call")[0] is a


def test_the_leaderboards_inlined_ranking_agrees_with_the_scoring_formulas():
    """Leaderboard._rank inlines rpc_score + decayed for speed: for many random statistics (few samples, per
    method or only "*", fresh or silent, failing or not, with race factors) its order equals sorting by
    -score(), and score() is exactly metrics.scoring's decayed(rpc_score(success, latency)) × race factor."""
    from livechain.metrics.scoring import decayed, rpc_score
    from livechain.routing.strategies import rpc_score as provider_score

    rng = random.Random(7)
    for _ in range(200):
        pool, clock = pool_of(6)
        factors = {p.id: rng.choice([1.0, rng.uniform(0.5, 1.0)]) for p in pool.providers}
        lb = Leaderboard(lambda pid, f=factors: f[pid])
        for p in pool.providers:
            for _ in range(rng.choice([0, 5, 12, 40])):
                method = rng.choice(["eth_call", "eth_getLogs"])
                outcome = rng.choice([Outcome.OK, Outcome.OK, Outcome.TRANSPORT, Outcome.TIMEOUT])
                p.stats.observe(method, rng.uniform(1.0, 800.0), outcome)
                clock.advance(rng.uniform(0.0, 20.0))
        now = clock.monotonic()
        candidates = list(pool.providers)
        assert lb._rank(candidates, "eth_call", now) == sorted(candidates, key=lambda p: -lb.score(p, "eth_call"))
        for p in candidates:
            entry = p.stats.get("eth_call")
            if entry is None or entry.samples < 10:
                entry = p.stats.get("*")
            if entry is not None and entry.samples >= 10:
                expected = decayed(rpc_score(entry.success, entry.latency_ms), p.stats.freshness(entry, now))
                assert provider_score(p, "eth_call", now) == expected
                assert lb.score(p, "eth_call") == pytest.approx(expected * factors[p.id])
