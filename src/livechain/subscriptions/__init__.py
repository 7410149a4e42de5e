"""Subscriptions: raced across every provider (aggregator), in order and without gaps (head tracker, feeds),
shared between identical client subscriptions (manager)."""
