"""Upstream transports. Every OSError/TLS/parse failure is translated into livechain.errors here, once."""

from livechain.transport.http import HttpPool, HttpResponse

__all__ = ["HttpPool", "HttpResponse"]
