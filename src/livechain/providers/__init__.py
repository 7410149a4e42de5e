"""Providers: one configured upstream endpoint each (HTTP pool, breaker, health), and the per-chain pool."""

import logging

log = logging.getLogger("livechain.providers")
