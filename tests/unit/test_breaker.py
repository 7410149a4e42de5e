"""Circuit breaker: transitions with an injected clock (no real sleeping)."""

from livechain.clock import ManualClock
from livechain.failsafe.breaker import DENIED, BreakerState, CircuitBreaker


def make(clock, **kw):
    seen = []
    breaker = CircuitBreaker(
        "t", clock=clock, on_transition=lambda b, old, new, why: seen.append((old.value, new.value)), **kw
    )
    return breaker, seen


def test_opens_after_threshold_consecutive_failures_only():
    """A success between failures resets the count; the threshold-th consecutive failure opens."""
    clock = ManualClock()
    b, seen = make(clock, failure_threshold=3)
    for _ in range(2):
        b.record_failure(b.acquire())
    b.record_success(b.acquire())
    for _ in range(2):
        b.record_failure(b.acquire())
    assert b.state is BreakerState.CLOSED
    b.record_failure(b.acquire())
    assert b.state is BreakerState.OPEN
    assert b.acquire() == DENIED
    assert seen == [("closed", "open")]


def test_open_becomes_half_open_after_recovery_timeout_and_closes_after_successes():
    """open → half_open after recovery_timeout; success_threshold probe successes close it."""
    clock = ManualClock()
    b, seen = make(clock, failure_threshold=1, recovery_timeout=10, success_threshold=2)
    b.record_failure(b.acquire())
    clock.advance(9.9)
    assert b.state is BreakerState.OPEN and not b.available()
    clock.advance(0.2)
    assert b.state is BreakerState.HALF_OPEN
    b.record_success(b.acquire())
    assert b.state is BreakerState.HALF_OPEN
    b.record_success(b.acquire())
    assert b.state is BreakerState.CLOSED
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_half_open_limits_concurrent_probes_and_reopens_on_any_failure():
    """Only half_open_probes permits at once; one failed probe re-opens and restarts the timer."""
    clock = ManualClock()
    b, _ = make(clock, failure_threshold=1, recovery_timeout=5, half_open_probes=2)
    b.record_failure(b.acquire())
    clock.advance(5)
    p1, p2 = b.acquire(), b.acquire()
    assert p1 != DENIED and p2 != DENIED
    assert b.acquire() == DENIED
    b.record_failure(p1)
    assert b.state is BreakerState.OPEN
    clock.advance(4.9)
    assert b.state is BreakerState.OPEN


def test_verdicts_from_before_a_transition_are_ignored():
    """A slow attempt that started while closed cannot close or re-open a breaker that moved on."""
    clock = ManualClock()
    b, _ = make(clock, failure_threshold=1, recovery_timeout=5, success_threshold=1)
    slow = b.acquire()
    b.record_failure(b.acquire())
    assert b.state is BreakerState.OPEN
    clock.advance(5)
    assert b.state is BreakerState.HALF_OPEN
    b.record_success(slow)  # stale: must not close
    assert b.state is BreakerState.HALF_OPEN
    b.record_failure(slow)  # stale: must not re-open
    assert b.state is BreakerState.HALF_OPEN


def test_released_probe_frees_its_slot_without_a_verdict():
    """Cancelling a probe (client went away) neither opens nor closes the breaker."""
    clock = ManualClock()
    b, _ = make(clock, failure_threshold=1, recovery_timeout=1, half_open_probes=1)
    b.record_failure(b.acquire())
    clock.advance(1)
    probe = b.acquire()
    assert b.acquire() == DENIED
    b.release(probe)
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire() != DENIED
