"""Chaos matrix plumbing: the rows measured by test_chaos_matrix.py, printed at the end of the session."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

ARTIFACT = Path(__file__).resolve().parents[2] / "artifacts" / "chaos_matrix.md"
COMMAND = ".venv/bin/pytest tests/chaos -q"


@dataclass
class Row:
    """The figures of one (fault, transport) cell."""

    fault: str
    transport: str
    requests: int = 0
    errors: int = 0
    failovers: int = 0
    p99_ms: float = 0.0
    heads: int | None = None
    gaps: int | None = None
    duplicates: int | None = None
    notes: list[str] = field(default_factory=list)


#: every row measured in this session, in order
ROWS: list[Row] = []
#: the files write_artifact() wrote in this session
WRITTEN: list[Path] = []


def table(rows: list[Row]) -> str:
    head = (
        "| fault | transport | requests | client errors | failovers | p99 ms | heads | gaps | dups | notes |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )

    def cell(value: int | None) -> str:
        return "–" if value is None else str(value)

    lines = [
        f"| {r.fault} | {r.transport} | {r.requests} | {r.errors} | {r.failovers} | {r.p99_ms:.0f} | "
        f"{cell(r.heads)} | {cell(r.gaps)} | {cell(r.duplicates)} | {'; '.join(r.notes)} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def write_artifact(rows: list[Row], complete: bool = True) -> Path:
    """artifacts/chaos_matrix.md after a full run; chaos_matrix.partial.md when only some rows ran (-k)."""
    path = ARTIFACT if complete else ARTIFACT.with_suffix(".partial.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Livechain chaos matrix\n\n"
        f"Produced by `{COMMAND}` (3 providers = 3 fault proxies, the preferred one faulted; "
        "block time 0.25 s).\n\n" + table(rows)
    )
    WRITTEN.append(path)
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ROWS:
        terminalreporter.section("chaos matrix")
        terminalreporter.write(table(ROWS))
        for path in WRITTEN:
            terminalreporter.write_line(f"written to {path}")
