"""SQLite persistence of the benchmark stores: snapshots of aggregates, and one-minute time series.

    snapshots(region, chain, saved_at, state)          the latest aggregates per (region, chain): restored at
                                                        start so a restarted Livechain keeps its leaderboard;
                                                        other regions' rows are loaded read-only for comparison
    rpc_series(region, chain, ts, provider, method, count, errors, mean_ms, p50_ms, p99_ms)
    race_series(region, chain, ts, provider, event, races, wins, margin_sum)

WAL mode, one connection, every statement run in a worker thread (never on the event loop) and serialised
by a lock. Snapshots are written every `snapshot_interval` and at clean shutdown; the minute series every
minute (they are small, and the dashboard's charts want them fresh). Rows older than the retention period
are deleted. A corrupt or unreadable database is reported, moved aside (`<path>.corrupt-<unix time>`), and
replaced by a new one: Livechain still starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

import orjson

log = logging.getLogger("livechain.persistence")

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots(
    region TEXT NOT NULL, chain TEXT NOT NULL, saved_at REAL NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY(region, chain));
CREATE TABLE IF NOT EXISTS rpc_series(
    region TEXT NOT NULL, chain TEXT NOT NULL, ts INTEGER NOT NULL, provider TEXT NOT NULL, method TEXT NOT NULL,
    count INTEGER NOT NULL, errors INTEGER NOT NULL, mean_ms REAL, p50_ms REAL, p99_ms REAL,
    PRIMARY KEY(region, chain, ts, provider, method));
CREATE TABLE IF NOT EXISTS race_series(
    region TEXT NOT NULL, chain TEXT NOT NULL, ts INTEGER NOT NULL, provider TEXT NOT NULL, event TEXT NOT NULL,
    races INTEGER NOT NULL, wins INTEGER NOT NULL, margin_sum REAL NOT NULL,
    PRIMARY KEY(region, chain, ts, provider, event));
"""


class Database:
    """One SQLite file. Sync methods (call them through `run()` from async code)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.moved_aside: str | None = None
        self._lock = threading.Lock()
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = f"{self.path}.corrupt-{int(time.time())}"
            log.error(
                "database is corrupt or unreadable; moving it aside and starting a new one",
                extra={"path": self.path, "moved_to": aside, "error": str(exc)},
            )
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
            self.moved_aside = aside
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
            conn.executescript(SCHEMA)
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    # ------------------------------------------------------------------ writing

    def save_snapshots(self, rows: Iterable[tuple[str, str, float, bytes]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR REPLACE INTO snapshots(region, chain, saved_at, state) VALUES(?, ?, ?, ?)", rows
            )
            self._conn.execute("COMMIT")

    def save_series(self, region: str, chain: str, rpc: list[tuple], race: list[tuple], horizon: float) -> None:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO rpc_series VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(region, chain, ts, provider, method) DO UPDATE SET "
                "count = count + excluded.count, errors = errors + excluded.errors, "
                "mean_ms = coalesce(excluded.mean_ms, mean_ms), p50_ms = coalesce(excluded.p50_ms, p50_ms), "
                "p99_ms = max(coalesce(excluded.p99_ms, 0), coalesce(p99_ms, 0))",
                [(region, chain, *row) for row in rpc],
            )
            conn.executemany(
                "INSERT INTO race_series VALUES(?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(region, chain, ts, provider, event) DO UPDATE SET "
                "races = races + excluded.races, wins = wins + excluded.wins, margin_sum = margin_sum + excluded.margin_sum",
                [(region, chain, *row) for row in race],
            )
            conn.execute("DELETE FROM rpc_series WHERE chain = ? AND ts < ?", (chain, horizon))
            conn.execute("DELETE FROM race_series WHERE chain = ? AND ts < ?", (chain, horizon))
            conn.execute("COMMIT")

    # ------------------------------------------------------------------ reading

    def snapshots(self) -> list[tuple[str, str, float, dict]]:
        with self._lock:
            rows = self._conn.execute("SELECT region, chain, saved_at, state FROM snapshots").fetchall()
        out = []
        for region, chain, saved_at, blob in rows:
            try:
                out.append((region, chain, saved_at, orjson.loads(blob)))
            except orjson.JSONDecodeError:
                log.error("unreadable snapshot skipped", extra={"region": region, "chain": chain})
        return out

    def series(self, kind: str, region: str, chain: str, since: float, provider: str | None, key: str | None) -> list[tuple]:
        table, key_col = ("rpc_series", "method") if kind == "rpc" else ("race_series", "event")
        sql = f"SELECT * FROM {table} WHERE region = ? AND chain = ? AND ts >= ?"
        args: list[Any] = [region, chain, int(since)]
        if provider:
            sql += " AND provider = ?"
            args.append(provider)
        if key:
            sql += f" AND {key_col} = ?"
            args.append(key)
        sql += " ORDER BY ts LIMIT 20000"
        with self._lock:
            return [row[2:] for row in self._conn.execute(sql, args).fetchall()]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run a method in a worker thread."""
        return await asyncio.to_thread(fn, *args)
