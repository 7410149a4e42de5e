"""Load a config: read → YAML → ``${ENV}`` expansion → validation, every problem reported at a dotted path.

    load_config("livechain.yaml")            -> Config, or ConfigError listing every problem
    parse_config(text, source="inline")

Messages never contain a config value (provider URLs and headers carry API keys): YAML errors are reported
by position, pydantic errors by their message (inputs are hidden, and stripped again if one slips in).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from .expand import Problem, expand_env, format_path
from .schema import PROBLEMS_ERROR, Config

REGION_ENV = "LIVECHAIN_REGION"

_MESSAGES = {"extra_forbidden": "unknown key", "missing": "required"}
_PREFIXES = ("Value error, ", "Assertion failed, ")


class ConfigError(Exception):
    """An invalid config. ``problems`` is every ``(dotted path, message)`` found (expansion problems first)."""

    def __init__(self, problems: Iterable[Problem], *, source: str | None = None) -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{path}: {message}" for path, message in self.problems)


# ---- YAML -------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mapping keys are the raw scalar text (``1:``, ``on:`` stay "1", "on") and which
    rejects duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "mapping keys must be scalars",
                key_node.start_mark,
            )
        if key_node.value in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"duplicate key {key_node.value!r}",
                key_node.start_mark,
            )
        seen.add(key_node.value)
    loader.flatten_mapping(node)  # resolves "<<" merges; explicit keys come last and win
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        mapping[str(key_node.value)] = loader.construct_object(value_node, deep=deep)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        message = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            message = f"{exc.problem} ({exc.context})"
        raise ConfigError([(where, f"YAML syntax error: {message}")], source=source) from None
    except yaml.YAMLError:
        raise ConfigError([(source, "YAML syntax error")], source=source) from None


# ---- validation errors → problems -------------------------------------------------------------------


def _scrub(message: str, value: object) -> str:
    """Belt and braces: never let an input string appear in a message."""
    if isinstance(value, str) and len(value) >= 4 and value in message:
        return message.replace(value, "<redacted>")
    return message


def _problems_from(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        loc = tuple(part for part in err["loc"] if part != "[key]")
        kind = err["type"]
        if kind == PROBLEMS_ERROR:
            for parts, message in err["ctx"]["problems"]:
                problems.append((format_path((*loc, *parts)) or "<root>", message))
            continue
        message = _MESSAGES.get(kind) or err["msg"]
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        problems.append((format_path(loc) or "<root>", _scrub(message, err.get("input"))))
    return problems


def _under(path: str, prefixes: set[str]) -> bool:
    return any(path == p or path.startswith((p + ".", p + "[")) for p in prefixes)


# ---- entry points -----------------------------------------------------------------------------------


def parse_config(text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None) -> Config:
    """Parse YAML text into a validated Config; raise ConfigError with every problem found."""
    raw = _load_yaml(text, source)
    return config_from_mapping({} if raw is None else raw, source=source, env=env)


def config_from_mapping(
    raw: object, *, source: str = "<mapping>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a mapping with the file's schema (`${ENV}` expanded in its strings) into a Config; raise
    ConfigError with every problem found — what an embedding program passes to `Livechain.from_config`."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if not isinstance(raw, dict):
        raise ConfigError([(source, "the top level must be a mapping")], source=source)
    expanded, problems = expand_env(raw, environ)
    region = environ.get(REGION_ENV)
    if region:
        expanded["region"] = region
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        # A value whose expansion failed was validated as a partial string: report only the expansion problem.
        failed = {path for path, _ in problems}
        problems.extend(p for p in _problems_from(exc) if not _under(p[0], failed))
        raise ConfigError(problems, source=source) from None
    if problems:
        raise ConfigError(problems, source=source)
    return config


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and parse a config file; raise ConfigError (never OSError) when it cannot be used."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ConfigError([(source, "config file not found")], source=source) from None
    except IsADirectoryError:
        raise ConfigError([(source, "config path is a directory, not a file")], source=source) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([(source, f"cannot read config file: {reason}")], source=source) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [(source, f"config file is not valid UTF-8 (byte {exc.start})")], source=source
        ) from None
    return parse_config(text, source=source, env=env)
