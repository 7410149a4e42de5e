"""The benchmark store of one chain: what routing, the API, Prometheus and the dashboard read.

Recording is the only part on the request path, and it is an append to a list (`record_rpc`,
`record_race`). `fold()` — run by a timer task every 250 ms and before every read — moves pending records
into:
- a bounded detail ring (`max_entries` rows of 16 bytes in `array` columns: time, provider, key, value,
  outcome), for history and persistence;
- per-(provider, method) and per-(provider, event type) `Windowed` aggregates (the "now" window and
  retention totals), which answer p50/p90/p99, success rates, win rates and margins;
- cumulative Prometheus histograms per (provider, method);
- one-minute series (count, errors, latency, races, wins, margins) kept until persistence takes them
  (`take_minutes`, every minute) — the history the API and the dashboard's charts read.
Distinct method names per chain are capped (a dev chain may allow "*"); the rest count as "other".

`to_state()` / `load_state()` carry the aggregates across a restart (the snapshot in SQLite).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

from livechain.clock import SYSTEM_CLOCK, Clock
from livechain.metrics.sketch import bucket_of, bucket_value
from livechain.metrics.windows import Windowed
from livechain.outcomes import Outcome

MAX_METHODS = 256
#: Prometheus latency buckets (ms) — coarse on purpose: exposition size grows with buckets × series
PROM_BUCKETS_MS: tuple[float, ...] = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
RACE = 255  # outcome column value marking a race row in the detail ring
MINUTES_KEPT = 3600.0  # in-memory minute series not yet taken by persistence


class PromHistogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = array("Q", bytes(8 * (len(PROM_BUCKETS_MS) + 1)))
        self.count = 0
        self.sum = 0.0

    def observe(self, ms: float) -> None:
        self.buckets[bisect_left(PROM_BUCKETS_MS, ms)] += 1
        self.count += 1
        self.sum += ms


class DetailRing:
    """Fixed-capacity columns; the oldest row is overwritten. 8+1+2+4+1 = 16 bytes a row."""

    __slots__ = ("capacity", "head", "key", "outcome", "provider", "size", "ts", "value_us")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.ts = array("d", bytes(8 * capacity))
        self.provider = array("B", bytes(capacity))
        self.key = array("H", bytes(2 * capacity))
        self.value_us = array("I", bytes(4 * capacity))
        self.outcome = array("B", bytes(capacity))
        self.head = 0  # next write position
        self.size = 0

    def append(self, ts: float, provider: int, key: int, value_us: int, outcome: int) -> None:
        i = self.head
        self.ts[i] = ts
        self.provider[i] = provider
        self.key[i] = key
        self.value_us[i] = value_us if value_us < 4_294_967_295 else 4_294_967_295
        self.outcome[i] = outcome
        self.head = (i + 1) % self.capacity
        if self.size < self.capacity:
            self.size += 1

    def rows(self, since: float = 0.0):
        """(ts, provider index, key index, value µs, outcome) oldest first."""
        start = (self.head - self.size) % self.capacity
        for n in range(self.size):
            i = (start + n) % self.capacity
            if self.ts[i] >= since:
                yield self.ts[i], self.provider[i], self.key[i], self.value_us[i], self.outcome[i]

    def drop_older(self, horizon: float) -> None:
        start = (self.head - self.size) % self.capacity
        while self.size and self.ts[start] < horizon:
            start = (start + 1) % self.capacity
            self.size -= 1

    @property
    def nbytes(self) -> int:
        return sum(len(col) * col.itemsize for col in (self.ts, self.provider, self.key, self.value_us, self.outcome))


class BenchmarkStore:
    def __init__(
        self,
        chain: str,
        *,
        region: str = "local",
        window: float = 300.0,
        retention: float = 86_400.0,
        max_entries: int = 86_400,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.chain = chain
        self.region = region
        self.window = window
        self.retention = retention
        self._clock = clock
        self._pending: list[tuple] = []
        self.detail = DetailRing(max_entries)
        self.providers: list[str] = []  # index → provider id (detail ring column)
        self._provider_idx: dict[str, int] = {}
        self.keys: list[str] = []  # index → method name or event type
        self._key_idx: dict[str, int] = {}
        self.rpc_stats: dict[tuple[str, str], Windowed] = {}
        self.race_stats: dict[tuple[str, str], Windowed] = {}
        self.prom: dict[tuple[str, str], PromHistogram] = {}
        self.missed: dict[tuple[str, str], int] = {}  # (provider, event type) → events never delivered
        # cumulative counters for Prometheus (monotonic, never expire)
        self.rpc_counts: dict[tuple[str, str, str], int] = {}  # (provider, method, outcome)
        self.race_counts: dict[tuple[str, str], list] = {}  # (provider, event type) → [races, wins, margin sum]
        #: (minute, provider, method) → [count, errors, latency sum, {sketch bucket: n}] (successes' latency)
        self.rpc_minutes: dict[tuple[int, str, str], list] = {}
        #: (minute, provider, event type) → [races, wins, margin sum]
        self.race_minutes: dict[tuple[int, str, str], list] = {}
        self.recorded = 0
        self.read_only = False  # a snapshot of another region, loaded for comparison

    # ------------------------------------------------------------------ hot path: append only

    def record_rpc(self, provider: str, method: str, latency_ms: float, outcome: Outcome) -> None:
        self._pending.append((self._clock.wall(), provider, method, latency_ms, outcome))

    def record_race(self, provider: str, event_type: str, win: bool, margin_ms: float) -> None:
        """`win` must be a bool: it is how fold() tells a race row from an RPC row."""
        self._pending.append((self._clock.wall(), provider, event_type, margin_ms, win))

    def record_missed(self, provider: str, event_type: str, count: int = 1) -> None:
        key = (provider, event_type)
        self.missed[key] = self.missed.get(key, 0) + count

    # ------------------------------------------------------------------ folding (timer task, and before reads)

    def fold(self) -> int:
        pending, self._pending = self._pending, []
        for ts, provider, key, value, outcome in pending:
            p = self._intern_provider(provider)
            if type(outcome) is not bool:  # an RPC row (race rows carry win: bool)
                method = key if key in self._key_idx or len(self.keys) < MAX_METHODS else "other"
                k = self._intern_key(method)
                stats_key = (provider, method)
                stats = self.rpc_stats.get(stats_key)
                if stats is None:
                    stats = self.rpc_stats[stats_key] = Windowed(self.window, self.retention)
                o = outcome.index
                answered = outcome.answered
                bucket = bucket_of(value) if answered else -1
                stats.add_rpc(ts, value, o, bucket)
                count_key = (provider, method, outcome.value)
                self.rpc_counts[count_key] = self.rpc_counts.get(count_key, 0) + 1
                minute_key = (int(ts // 60) * 60, provider, method)
                minute = self.rpc_minutes.get(minute_key)
                if minute is None:
                    minute = self.rpc_minutes[minute_key] = [0, 0, 0.0, {}]
                minute[0] += 1
                if answered:
                    minute[2] += value
                    minute[3][bucket] = minute[3].get(bucket, 0) + 1
                else:
                    minute[1] += 1
                if answered:
                    hist = self.prom.get(stats_key)
                    if hist is None:
                        hist = self.prom[stats_key] = PromHistogram()
                    hist.observe(value)
                self.detail.append(ts, p, k, int(value * 1000), o)
            else:
                k = self._intern_key(key)
                stats_key = (provider, key)
                stats = self.race_stats.get(stats_key)
                if stats is None:
                    stats = self.race_stats[stats_key] = Windowed(self.window, self.retention)
                win = outcome
                stats.add_race(ts, win, value)
                counts = self.race_counts.get(stats_key)
                if counts is None:
                    counts = self.race_counts[stats_key] = [0, 0, 0.0]
                counts[0] += 1
                minute_key = (int(ts // 60) * 60, provider, key)
                minute = self.race_minutes.get(minute_key)
                if minute is None:
                    minute = self.race_minutes[minute_key] = [0, 0, 0.0]
                minute[0] += 1
                if win:
                    counts[1] += 1
                    minute[1] += 1
                else:
                    counts[2] += value
                    minute[2] += value
                self.detail.append(ts, p, k, int(value * 1000), RACE - (0 if win else 1))
        self.recorded += len(pending)
        return len(pending)

    def expire(self) -> None:
        """Drop what is older than the retention period (timer task). Minute series nobody took (persistence
        off, or behind) are kept for MINUTES_KEPT seconds only: memory stays bounded either way."""
        now = self._clock.wall()
        self.detail.drop_older(now - self.retention)
        horizon = now - MINUTES_KEPT
        for table in (self.rpc_minutes, self.race_minutes):
            for key in [k for k in table if k[0] < horizon]:
                del table[key]
        for table in (self.rpc_stats, self.race_stats):
            for key in [k for k, w in table.items() if w.expire(now)]:
                del table[key]

    def _intern_provider(self, provider: str) -> int:
        idx = self._provider_idx.get(provider)
        if idx is None:
            if len(self.providers) >= 255:
                return 254
            idx = self._provider_idx[provider] = len(self.providers)
            self.providers.append(provider)
        return idx

    def _intern_key(self, key: str) -> int:
        idx = self._key_idx.get(key)
        if idx is None:
            idx = self._key_idx[key] = len(self.keys)
            self.keys.append(key)
        return idx

    # ------------------------------------------------------------------ reading

    def rpc(self, provider: str | None = None, *, window: bool = True) -> dict[str, dict[str, dict]]:
        """{provider: {method: summary}} for the "now" window (or the retention period)."""
        self.fold()
        now = self._clock.wall()
        out: dict[str, dict[str, dict]] = {}
        for (p, method), stats in self.rpc_stats.items():
            if provider is None or p == provider:
                summary = stats.rpc_summary(now, window=window)
                if summary["count"]:
                    out.setdefault(p, {})[method] = summary
        return out

    def races(self, provider: str | None = None, *, window: bool = False) -> dict[str, dict[str, dict]]:
        """{provider: {event type: {total, wins, win_rate, avg_margin_ms, missed, delay_p50_ms, delay_p90_ms}}}
        (counts of the retention period by default; the delay behind the first arrival, wins as 0, always of the
        "now" window)."""
        self.fold()
        now = self._clock.wall()
        out: dict[str, dict[str, dict]] = {}
        for (p, event_type), stats in self.race_stats.items():
            if provider is None or p == provider:
                summary = stats.race_summary(now, window=window)
                summary["missed"] = self.missed.get((p, event_type), 0)
                out.setdefault(p, {})[event_type] = summary
        for (p, event_type), missed in self.missed.items():
            if (provider is None or p == provider) and event_type not in out.get(p, {}):
                out.setdefault(p, {})[event_type] = {
                    "total": 0, "wins": 0, "win_rate": None, "avg_margin_ms": 0.0, "missed": missed,
                    "delay_p50_ms": None, "delay_p90_ms": None,
                }
        return out

    # ------------------------------------------------------------------ minute series

    def minute_rows(self, *, complete_only: bool, take: bool) -> tuple[list[tuple], list[tuple]]:
        """(rpc rows, race rows) of the in-memory minute series; `complete_only` leaves the current minute;
        `take` removes what it returns (persistence owns it from then on)."""
        self.fold()
        current = int(self._clock.wall() // 60) * 60
        rpc_rows: list[tuple] = []
        race_rows: list[tuple] = []
        for key in list(self.rpc_minutes):
            if complete_only and key[0] >= current:
                continue
            count, errors, latency_sum, hist = self.rpc_minutes.pop(key) if take else self.rpc_minutes[key]
            successes = count - errors
            rpc_rows.append((*key, count, errors, round(latency_sum / successes, 3) if successes else None,
                             _quantile(hist, 0.5), _quantile(hist, 0.99)))
        for key in list(self.race_minutes):
            if complete_only and key[0] >= current:
                continue
            races, wins, margin_sum = self.race_minutes.pop(key) if take else self.race_minutes[key]
            race_rows.append((*key, races, wins, margin_sum))
        return rpc_rows, race_rows

    # ------------------------------------------------------------------ snapshot

    def to_state(self) -> dict:
        self.fold()
        return {
            "chain": self.chain,
            "region": self.region,
            "saved_at": self._clock.wall(),
            "rpc": [[p, m, w.to_state()] for (p, m), w in self.rpc_stats.items()],
            "race": [[p, e, w.to_state()] for (p, e), w in self.race_stats.items()],
            "missed": [[p, e, n] for (p, e), n in self.missed.items()],
            "rpc_counts": [[p, m, o, n] for (p, m, o), n in self.rpc_counts.items()],
            "race_counts": [[p, e, *v] for (p, e), v in self.race_counts.items()],
            "prom": [[p, m, list(h.buckets), h.count, h.sum] for (p, m), h in self.prom.items()],
        }

    def load_state(self, state: dict) -> None:
        """Restore aggregates from a snapshot (at start, before traffic)."""
        for p, m, w in state.get("rpc", []):
            stats = self.rpc_stats[(p, m)] = Windowed(self.window, self.retention)
            stats.load_state(w)
            self._intern_provider(p)
            self._intern_key(m)
        for p, e, w in state.get("race", []):
            stats = self.race_stats[(p, e)] = Windowed(self.window, self.retention)
            stats.load_state(w)
        self.missed = {(p, e): int(n) for p, e, n in state.get("missed", [])}
        self.rpc_counts = {(p, m, o): int(n) for p, m, o, n in state.get("rpc_counts", [])}
        self.race_counts = {(p, e): [int(r), int(w), float(s)] for p, e, r, w, s in state.get("race_counts", [])}
        for p, m, buckets, count, total in state.get("prom", []):
            hist = self.prom[(p, m)] = PromHistogram()
            for i, n in enumerate(buckets[: len(hist.buckets)]):
                hist.buckets[i] = int(n)
            hist.count, hist.sum = int(count), float(total)
        self.expire()


def _quantile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, int(q * total + 0.999999))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return round(bucket_value(bucket), 3)
    return None

