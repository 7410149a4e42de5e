"""``${ENV}`` expansion over a raw YAML tree, before validation.

In string values (never keys):
    ``${VAR}``            the variable's value; an error when it is not set
    ``${VAR:-default}``   the value, or ``default`` when the variable is unset or empty
    ``$$``                a literal ``$``
Any other ``$`` is an error (write ``$$``), so a typo never silently becomes part of a URL.

Problems are collected for the whole tree, each at the dotted path of its value. Messages name the
variable, never a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

Problem = tuple[str, str]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_path(parts: Iterable[object]) -> str:
    """``("chains", "ethereum", "providers", 1, "http_url")`` -> ``chains.ethereum.providers[1].http_url``."""
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def expand_string(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand one string. Returns the result and the problems found (messages only)."""
    if "$" not in text:
        return text, []
    out: list[str] = []
    problems: list[str] = []
    i, n = 0, len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        nxt = text[dollar + 1] if dollar + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i = dollar + 2
            continue
        if nxt != "{":
            problems.append("unescaped '$': write $$ for a literal $ or ${NAME} for a variable")
            i = dollar + 1
            continue
        close = text.find("}", dollar + 2)
        if close < 0:
            problems.append("unterminated ${...} reference")
            break
        body = text[dollar + 2 : close]
        i = close + 1
        name, sep, default = body.partition(":-")
        if not _NAME_RE.fullmatch(name):
            problems.append("invalid ${...} reference: expected ${NAME} or ${NAME:-default}")
            continue
        value = env.get(name)
        if sep:
            out.append(value if value else default)
        elif value is None:
            problems.append(f"environment variable {name} is not set")
        else:
            out.append(value)
    return "".join(out), problems


def expand_env(tree: Any, env: Mapping[str, str] | None = None) -> tuple[Any, list[Problem]]:
    """Return a copy of ``tree`` with every string value expanded, and all problems as (path, message)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    problems: list[Problem] = []

    def walk(node: Any, path: tuple[object, ...]) -> Any:
        if isinstance(node, str):
            value, found = expand_string(node, environ)
            problems.extend((format_path(path) or "<root>", message) for message in found)
            return value
        if isinstance(node, Mapping):
            return {key: walk(value, (*path, key)) for key, value in node.items()}
        if isinstance(node, list | tuple):
            return [walk(value, (*path, index)) for index, value in enumerate(node)]
        return node

    return walk(tree, ()), problems
