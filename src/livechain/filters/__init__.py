"""Stateful filters served by Livechain itself (`eth_newFilter` and the rest): `filter` (one filter and its
buffer), `registry` (a chain's filters: ids, owners, bounds, expiry). The pipeline stage that answers the
filter methods is `livechain.pipeline.filters`."""

from livechain.filters.filter import BlockFilter, Filter, LogFilter, PendingFilter
from livechain.filters.registry import Filters

__all__ = ["BlockFilter", "Filter", "Filters", "LogFilter", "PendingFilter"]
