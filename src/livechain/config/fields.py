"""The config's field types and checks: durations, sizes, names, URLs, header names and values, origins, globs,
and the frozen mapping every config mapping becomes. Messages never echo a value (URLs and headers carry keys)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
)
from pydantic_core import PydanticCustomError

from livechain.config.durations import parse_duration
from livechain.config.expand import format_path
from livechain.config.sizes import parse_size

PROBLEMS_ERROR = "livechain_problems"

CHAIN_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
PROVIDER_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REGION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers Livechain manages itself; letting config override them would corrupt the upstream request.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
    }
)

Strategy = Literal["leaderboard", "priority", "round_robin", "fastest", "cheapest"]
#: the strategy names, for config and routes (/rpc/{strategy}/{chain})
STRATEGY_NAMES: tuple[str, ...] = get_args(Strategy)


class FrozenDict(dict):
    """A read-only, hashable ``dict`` (still a ``dict`` for pydantic, json and ``==``)."""

    __slots__ = ()

    def _read_only(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("config mappings are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict) -> FrozenDict:
        return self


def problems_error(problems: Iterable[tuple[tuple[object, ...], str]]) -> PydanticCustomError:
    """One pydantic error carrying several (relative path parts, message) problems."""
    items = tuple(problems)
    text = "; ".join(f"{format_path(parts)}: {message}" for parts, message in items)
    return PydanticCustomError(PROBLEMS_ERROR, "{text}", {"text": text, "problems": items})


def fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


# ---- field types ------------------------------------------------------------------------------------


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise fail("duration", str(exc)) from None


def not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise fail("int_type", "must be an integer, not a boolean")
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        raise fail("empty", "must not be empty")
    return value


def _size(value: object) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise fail("size", str(exc)) from None


def _auto_or_duration(value: object) -> object:
    if value == "auto":
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise fail("duration", f"must be auto or a duration — {exc}") from None


Duration = Annotated[float, BeforeValidator(_duration)]
#: "auto" (Livechain decides, e.g. from what it observes) or a duration in seconds
AutoDuration = Annotated[float | Literal["auto"], BeforeValidator(_auto_or_duration)]
Size = Annotated[int, BeforeValidator(_size)]
Int = Annotated[int, BeforeValidator(not_bool)]
PositiveInt = Annotated[int, BeforeValidator(not_bool), Field(gt=0)]
NonNegativeInt = Annotated[int, BeforeValidator(not_bool), Field(ge=0)]
Text = Annotated[str, AfterValidator(_check_text)]


def check_pattern(regex: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if not regex.match(value):
            raise fail("pattern", f"{what} must match {regex.pattern}")
        return value

    return AfterValidator(check)


def _check_chain_name(value: str) -> str:
    if value.isdigit():
        raise fail("chain_name", "chain name must not be all digits (routes accept the decimal chain id)")
    if not CHAIN_NAME_RE.match(value):
        raise fail("chain_name", f"chain name must match {CHAIN_NAME_RE.pattern}")
    return value


ChainName = Annotated[str, AfterValidator(_check_chain_name)]
ProviderId = Annotated[str, check_pattern(PROVIDER_ID_RE, "provider id")]


def _url_checker(schemes: tuple[str, ...], what: str) -> Any:
    def check(value: str) -> str:
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise fail("url", f"must be {what} URL without whitespace or control characters")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 — raises ValueError for a bad port
        except ValueError:
            raise fail("url", f"must be {what} URL (it does not parse)") from None
        if parts.scheme.lower() not in schemes:
            raise fail("url", f"must be {what} URL")
        if not parts.hostname:
            raise fail("url", f"must be {what} URL with a host")
        if parts.fragment:
            raise fail("url", f"must be {what} URL without a #fragment")
        return value

    return AfterValidator(check)


def empty_to_none(value: object) -> object:
    return None if value == "" else value


HttpUrl = Annotated[str, _url_checker(("http", "https"), "an http(s)")]
WsUrl = Annotated[str, _url_checker(("ws", "wss"), "a ws(s)")]


def _check_glob(value: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise fail("glob", "must be a non-empty method glob without whitespace")
    return value


Glob = Annotated[str, AfterValidator(_check_glob)]


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME_RE.match(value):
        raise fail("header", "header name must be an HTTP token")
    if value.lower() in RESERVED_HEADERS:
        raise fail("header", "header is managed by livechain and cannot be set")
    return value


def _check_header_value(value: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise fail("header", "header value must not contain CR, LF or NUL")
    return value


HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HeaderValue = Annotated[str, AfterValidator(_check_header_value)]


def _check_origin(value: str) -> str:
    if value == "*":
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
    ):
        raise fail("origin", "must be '*' or an origin like https://app.example.com")
    return value


Origin = Annotated[str, AfterValidator(_check_origin)]


# ---- models -----------------------------------------------------------------------------------------
