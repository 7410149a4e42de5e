"""Routing: which providers to try for a request, in which order (strategies, sync), and trying them
(the forwarder: deadline, attempt timeouts, failover)."""
