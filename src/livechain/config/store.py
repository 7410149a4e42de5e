"""ConfigStore: the current frozen Config, swapped atomically on reload, with change subscribers.

Sync by design (like everything that does not do I/O beyond reading one small file): call it from the event
loop thread. A swap is a single reference assignment, so a reader sees the old or the new config, never a mix.

    store = ConfigStore("livechain.yaml", load_config("livechain.yaml"))
    unsubscribe = store.subscribe(lambda old, new: ...)
    result = store.reload()      # ReloadResult(ok, version, problems, changed)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .expand import Problem
from .load import ConfigError, load_config
from .schema import Config

log = logging.getLogger("livechain.config")

Subscriber = Callable[[Config, Config], None]

_SECTIONS = ("region", "server", "metrics", "persistence", "logging")


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    version: int
    problems: list[Problem] = field(default_factory=list)
    changed: dict[str, Any] = field(default_factory=dict)


def diff_configs(old: Config, new: Config) -> dict[str, Any]:
    """What differs between two configs, by name and id only (never a value).

    Keys, always present: ``chains_added``, ``chains_removed``, ``chains_changed`` (lists of chain names);
    ``providers_added``, ``providers_removed``, ``providers_changed`` ({chain: [provider ids]}, only for chains
    in both configs, only non-empty entries); ``sections_changed`` (top-level keys other than ``chains``).
    """
    old_names, new_names = set(old.chains), set(new.chains)
    changed: dict[str, Any] = {
        "chains_added": sorted(new_names - old_names),
        "chains_removed": sorted(old_names - new_names),
        "chains_changed": [],
        "providers_added": {},
        "providers_removed": {},
        "providers_changed": {},
        "sections_changed": [s for s in _SECTIONS if getattr(old, s) != getattr(new, s)],
    }
    for name in sorted(old_names & new_names):
        before, after = old.chains[name], new.chains[name]
        if before == after:
            continue
        changed["chains_changed"].append(name)
        old_providers = {p.id: p for p in before.providers}
        new_providers = {p.id: p for p in after.providers}
        for key, ids in (
            ("providers_added", [p for p in new_providers if p not in old_providers]),
            ("providers_removed", [p for p in old_providers if p not in new_providers]),
            (
                "providers_changed",
                [p for p in new_providers if p in old_providers and old_providers[p] != new_providers[p]],
            ),
        ):
            if ids:
                changed[key][name] = ids
    return changed


class ConfigStore:
    """Holds the current Config; ``version`` starts at 1 and increments on every successful swap."""

    def __init__(
        self, path: str | os.PathLike[str] | None, config: Config, env: Mapping[str, str] | None = None
    ):
        self.path = None if path is None else os.fspath(path)
        self._config = config
        self._version = 1
        self._env = env
        self._subscribers: list[Subscriber] = []

    @property
    def current(self) -> Config:
        return self._config

    @property
    def version(self) -> int:
        return self._version

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(old, new)`` after every swap. Returns an idempotent unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def reload(self) -> ReloadResult:
        """Re-read ``path``. Valid → swap and notify (unless nothing changed); invalid → keep the last good one."""
        if self.path is None:
            return ReloadResult(
                ok=False, version=self._version, problems=[("<store>", "no config file to reload")]
            )
        try:
            new = load_config(self.path, env=self._env)
        except ConfigError as exc:
            log.warning(
                "config reload failed; keeping version %d:\n%s",
                self._version,
                exc,
                extra={"config_problems": exc.problems},
            )
            return ReloadResult(ok=False, version=self._version, problems=list(exc.problems))
        changed = diff_configs(self._config, new)
        if new == self._config:
            log.info("config reload: no changes (version %d)", self._version)
            return ReloadResult(ok=True, version=self._version, changed=changed)
        self._swap(new)
        log.info("config reloaded: version %d %s", self._version, _summary(changed))
        return ReloadResult(ok=True, version=self._version, changed=changed)

    def replace(self, config: Config) -> None:
        """Swap in ``config`` (already validated) and notify subscribers."""
        self._swap(config)

    def _swap(self, new: Config) -> None:
        old = self._config
        self._config = new
        self._version += 1
        for callback in list(self._subscribers):
            try:
                callback(old, new)
            except Exception:
                log.exception(
                    "config subscriber %r failed (the swap to version %d stands)", callback, self._version
                )


def _summary(changed: Mapping[str, Any]) -> str:
    parts = [f"{key}={value}" for key, value in changed.items() if value]
    return ", ".join(parts) or "(no chain or section changes)"
