"""Structured logging: one JSON object (or a key=value line) per record, with secrets scrubbed.

Call sites name providers by id and never pass URLs, but a library's exception text can carry a URL.
So every rendered line also passes through the `Redactor`, which replaces each registered secret (a
provider's URL, its path+query, its userinfo, its headers' values) with a placeholder naming the provider.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import orjson

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}


class Redactor:
    """Replaces registered secret substrings. Longest first, so a URL wins over its path."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._ordered: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def register(self, secret: str, replacement: str) -> None:
        if len(secret) < 6:  # too short to be a credential, too likely to hit ordinary text
            return
        with self._lock:
            self._secrets[secret] = replacement
            self._ordered = sorted(self._secrets.items(), key=lambda kv: -len(kv[0]))

    def register_url(self, url: str, owner: str) -> None:
        """Register a provider URL and the parts of it that can carry a key."""
        from urllib.parse import urlsplit

        placeholder = f"<{owner} url>"
        self.register(url, placeholder)
        parts = urlsplit(url)
        if parts.password:
            self.register(parts.password, "<secret>")
        if parts.username and parts.password:
            self.register(f"{parts.username}:{parts.password}", "<secret>")
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail) > 1:
            self.register(tail, "<secret>")
        for segment in [*parts.path.split("/"), *parts.query.replace("&", "=").split("=")]:
            if len(segment) >= 16:  # long path/query segments are where providers put API keys
                self.register(segment, "<secret>")

    def scrub(self, text: str) -> str:
        for secret, replacement in self._ordered:
            if secret in text:
                text = text.replace(secret, replacement)
        return text


REDACTOR = Redactor()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return REDACTOR.scrub(orjson.dumps(out, default=str).decode())


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        )
        line = f"{stamp} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if fields:
            line += f" {fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return REDACTOR.scrub(line)


def setup(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("livechain")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
