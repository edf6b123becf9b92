"""The model side of the package imports only downward (function-level imports included):
``_version``/``errors`` -> ``utils`` -> ``neurons``/``solvers`` -> ``layers`` -> ``registry``
-> ``models``. The registry imports no model family, so registry <-> models cannot cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spikeformers

ROOT = Path(spikeformers.__file__).parent
RANK = {
    "_version": 0,
    "errors": 0,
    "utils": 1,
    "neurons": 2,
    "solvers": 2,
    "layers": 3,
    "registry": 4,
    "models": 5,
}


def _group(module: str) -> str | None:
    """``spikeformers.models.base`` -> ``models``; ``None`` outside the ranked layers."""
    parts = module.split(".")
    if parts[0] != "spikeformers":
        return None
    if len(parts) == 1:
        return "<package root>"
    return parts[1] if parts[1] in RANK else None


def _runtime_imports(path: Path) -> list[str]:
    """Every ``spikeformers`` module imported by ``path``, at any depth, except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [m for m in found if m.split(".")[0] == "spikeformers"]


FILES = sorted(
    p
    for p in ROOT.rglob("*.py")
    if _group("spikeformers." + ".".join(p.relative_to(ROOT).with_suffix("").parts)) in RANK
)


def test_the_layered_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert {"registry.py", "errors.py", "models/base.py", "neurons/lif.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_only_go_down(path: Path):
    own = _group("spikeformers." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
    bad = []
    for target in _runtime_imports(path):
        group = _group(target)
        if group == own:
            continue
        if group is None or group == "<package root>" or RANK[group] >= RANK[own]:
            bad.append(target)
    assert not bad, f"{path.relative_to(ROOT)} imports upward or sideways: {bad}"
