"""Client access: optional API keys and token-bucket rate limits (per key and per client address).

    identify(key)     → the key's name, or Unauthorized (-32003, HTTP 401) when keys are configured and the
                        key is missing or wrong (compared in constant time)
    charge(name, ip, n) → takes n tokens (one per JSON-RPC request; batch items count one each) from the
                        key's bucket and the address's bucket; over either limit: LimitExceeded (-32005,
                        HTTP 429) carrying Retry-After

Sync and O(1); the per-address table is pruned when it grows, dropping buckets that are full again.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable

from livechain.config.schema import AuthConfig, RateLimit
from livechain.errors import LimitExceeded, Unauthorized

MAX_ADDRESSES = 100_000


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, math.ceil(rate)))
        self.tokens = self.burst
        self.stamp = now

    def take(self, n: int, now: float) -> float:
        """Take n tokens: 0.0 when allowed, else the seconds until they would be there."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate if self.rate > 0 else math.inf

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


class Access:
    def __init__(self, config: AuthConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.configure(config)

    def configure(self, config: AuthConfig) -> None:
        """Adopt a (reloaded) config; buckets of unchanged keys keep their state."""
        self.config = config
        now = self._clock()
        old = getattr(self, "_key_buckets", {})
        self._keys = [(entry.key.encode(), entry.name) for entry in config.keys]
        self._key_buckets: dict[str, TokenBucket] = {
            e.name: old.get(e.name) or TokenBucket(e.rate, e.burst, now) for e in config.keys if e.rate > 0
        }
        self._per_ip: RateLimit = config.per_ip
        self._ip_buckets: dict[str, TokenBucket] = {}

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def identify(self, key: str | None) -> str | None:
        if not self._keys:
            return None
        if key:
            supplied = key.encode()
            match = None
            for known, name in self._keys:  # every key compared, in constant time
                if hmac.compare_digest(known, supplied):
                    match = name
            if match is not None:
                return match
        raise Unauthorized("an API key is required: /rpc/{chain}/{key} or the X-Api-Key header" if not key
                           else "unknown API key")

    def charge(self, name: str | None, address: str, n: int = 1) -> None:
        now = self._clock()
        if name is not None:
            bucket = self._key_buckets.get(name)
            if bucket is not None:
                self._check(bucket.take(n, now), f"rate limit of key {name} exceeded")
        if self._per_ip.rate > 0:
            buckets = self._ip_buckets
            bucket = buckets.get(address)
            if bucket is None:
                if len(buckets) >= MAX_ADDRESSES:
                    self._prune(now)
                bucket = buckets[address] = TokenBucket(self._per_ip.rate, self._per_ip.burst, now)
            self._check(bucket.take(n, now), "rate limit for this address exceeded")

    @staticmethod
    def _check(wait: float, message: str) -> None:
        if wait > 0:
            retry = max(1, math.ceil(wait)) if math.isfinite(wait) else 60
            raise LimitExceeded(message, http_status=429, data={"retry_after": retry})

    def _prune(self, now: float) -> None:
        for address in [a for a, b in self._ip_buckets.items() if b.full(now)]:
            del self._ip_buckets[address]
        while len(self._ip_buckets) >= MAX_ADDRESSES:  # everyone is busy: forget the oldest
            del self._ip_buckets[next(iter(self._ip_buckets))]


def client_address(peer: str, headers: dict[str, str], trust_forwarded_for: bool) -> str:
    if trust_forwarded_for:
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",", 1)[0].strip()[:64] or peer
    return peer
