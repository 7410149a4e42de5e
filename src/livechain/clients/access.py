"""Client access, the same for every entry point: optional API keys, token-bucket rate limits (per key and per
client address), and connections per address.

    Access.admit(key, peer, headers) → a `Client`: who it is (the key's name, its address). Missing or wrong
                                       key when keys are configured: Unauthorized (-32003, HTTP 401),
                                       compared in constant time.
    Client.charge(n)                   takes n tokens — one per JSON-RPC request, batch items count one each —
                                       from the key's bucket and the address's bucket; over either limit:
                                       RateLimited (-32005, HTTP 429, Retry-After).
    AddressCounts                      open connections per address (HTTP and WebSocket alike; a WebSocket
                                       takes over the slot of the HTTP connection it was upgraded from).

With neither keys nor per-address limits configured, `admit` returns the shared `OPEN` client, whose charge
does nothing: the request path pays one attribute read. Sync and O(1); the per-address bucket table is
pruned when it grows, dropping buckets that are full again.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Mapping

from livechain.config.schema import AuthConfig, RateLimit
from livechain.errors import RateLimited, Unauthorized

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


class Client:
    """One client as access sees it: `name` (the API key's name, or None), `address` (the peer address, or
    the configured X-Forwarded-For's), and what it is charged against."""

    __slots__ = ("_access", "address", "name")

    def __init__(self, access: Access | None, name: str | None, address: str) -> None:
        self._access = access
        self.name = name
        self.address = address

    @property
    def identity(self) -> str | None:
        """Who the pipeline's per-client stages key by: the key's name, else the address (None: open)."""
        return self.name or (self.address if self._access is not None else None)

    def charge(self, n: int = 1) -> None:
        """Take n requests' worth of tokens, or raise RateLimited."""
        if self._access is not None:
            self._access.charge(self.name, self.address, n)


#: the client of an edge with no access control configured (and of in-process calls)
OPEN = Client(None, None, "")


class Access:
    def __init__(self, config: AuthConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._key_buckets: dict[str, TokenBucket] = {}
        self.configure(config)

    def configure(self, config: AuthConfig) -> None:
        """Adopt a (reloaded) config; buckets of unchanged keys keep their state."""
        self.config = config
        now = self._clock()
        old = self._key_buckets
        self._keys = [(entry.key.encode(), entry.name) for entry in config.keys]
        self._key_buckets = {
            e.name: old.get(e.name) or TokenBucket(e.rate, e.burst, now) for e in config.keys if e.rate > 0
        }
        self._per_ip: RateLimit = config.per_ip
        self._ip_buckets: dict[str, TokenBucket] = {}
        #: neither keys nor per-address limits: every client is `OPEN`
        self.open = not self._keys and self._per_ip.rate <= 0

    @property
    def required(self) -> bool:
        return bool(self._keys)


    def admit(self, key: str | None, peer: str, headers: Mapping[str, str]) -> Client:
        """The client of a request or connection; raises Unauthorized for a missing or wrong key."""
        if self.open:
            return OPEN
        name = self.identify(key)
        return Client(self, name, client_address(peer, headers, self.config.trust_forwarded_for))

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
            raise RateLimited(message, retry_after=retry)

    def _prune(self, now: float) -> None:
        for address in [a for a, b in self._ip_buckets.items() if b.full(now)]:
            del self._ip_buckets[address]
        while len(self._ip_buckets) >= MAX_ADDRESSES:  # everyone is busy: forget the oldest
            del self._ip_buckets[next(iter(self._ip_buckets))]


def client_address(peer: str, headers: Mapping[str, str], trust_forwarded_for: bool) -> str:
    if trust_forwarded_for:
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",", 1)[0].strip()[:64] or peer
    return peer


class AddressCounts:
    """Open connections per address, against `limit` (server.max_connections_per_ip)."""

    __slots__ = ("counts", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Count one more connection from `address`; False (and nothing counted) when it is at the limit."""
        n = self.counts.get(address, 0)
        if n >= self.limit:
            return False
        self.counts[address] = n + 1
        return True

    def release(self, address: str) -> None:
        n = self.counts.get(address, 1) - 1
        if n <= 0:
            self.counts.pop(address, None)
        else:
            self.counts[address] = n
