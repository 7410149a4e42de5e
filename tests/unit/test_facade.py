"""`Chain` is a real facade: the web edge, the client sessions and the library call its methods and never reach
into what is behind it (pool, forwarder, store, subscriptions, pipeline …). Imports are checked by the
import-linter contracts in pyproject.toml; this test checks attribute access in the source."""

from __future__ import annotations

import ast
from pathlib import Path

import livechain

ROOT = Path(livechain.__file__).parent
OUTSIDE = [*sorted((ROOT / "server").glob("*.py")), *sorted((ROOT / "clients").glob("*.py")),
           *sorted((ROOT / "demo").glob("*.py")), ROOT / "library.py", ROOT / "web3.py", ROOT / "app.py"]
INTERNALS = {"pool", "forwarder", "traffic", "policy", "subscriptions", "strategies", "store", "pipeline", "tasks",
             "race_factors", "config"}
CHAIN_NAMES = {"chain", "_chain", "target"}


def chain_internals(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in INTERNALS:
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else None
            if name in CHAIN_NAMES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}.{node.attr}")
    return found


def test_no_edge_module_reaches_behind_the_chain_facade():
    assert len(OUTSIDE) > 20
    assert [hit for path in OUTSIDE for hit in chain_internals(path)] == []


def test_the_check_finds_a_reach_in(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(chain, self):\n    chain.pool.providers\n    self.chain.store.fold()\n")
    assert [hit.split(" ")[1] for hit in chain_internals(sample, tmp_path)] == ["chain.pool", "chain.store"]
