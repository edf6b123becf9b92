"""Imports go only downward through the declared layers, and no module imports its own importer.

Every ``import`` in ``src/spikeformers`` counts, including the ones inside functions (they hide
cycles from Python but not from a reader). ``LAYERS`` is the architecture of
``docs/ARCHITECTURE.md``: a module may import modules of its own layer or of a lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "spikeformers"

# Bottom to top. A prefix covers the module and its submodules; the longest prefix wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # errors (one module of every error type) and _version import nothing of the package
    ("utils", ("utils", "errors", "_version")),
    ("neurons", ("neurons", "solvers")),
    ("layers", ("layers",)),
    # The package root only re-exports the registry's API (and holds __version__). The registry
    # imports no model family at run time (the cycle test below keeps it so).
    ("models", ("models", "registry", "")),
    ("data", ("data", "distill.teacher", "distill.m3e", "distill.mpnet")),
    (
        "cores",
        (
            "distill",
            "trainer",
            "evaluation",
            "energy",
            "augment",
            "checkpoint",
            "distributed",
            "tracking",
            "cards",
            "plots",
        ),
    ),
    ("workflows", ("workflows", "pipeline")),
    ("recipes", ("quickstart", "ablation", "report", "recipes")),
    ("cli", ("cli", "__main__")),
]

# Known exceptions to the layering: none. A cycle or an upward import added later must be
# removed, not listed here.
KNOWN_CYCLES: list[frozenset[str]] = []
KNOWN_UPWARD: set[tuple[str, str]] = set()


def modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` of the package."""
    out = {}
    for f in sorted((src / package).rglob("*.py")):
        rel = f.relative_to(src).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = f
    return out


def imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Package modules ``name`` imports anywhere in its file (``from P import m`` counts as an
    import of ``P.m`` when that is a module, else of ``P``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
            ]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def layer_of(module: str) -> int:
    """Index in ``LAYERS`` of the longest prefix matching ``module``."""
    rel = module.removeprefix(PACKAGE).removeprefix(".")
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (rel == p or rel.startswith(p + ".") or p == "") and len(p) > best_len:
                if p == "" and rel != "":
                    continue
                best, best_len = i, len(p)
    if best is None:
        raise KeyError(f"{module} is in no layer of LAYERS: add it there")
    return best


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    mods = modules(src, package)
    return {m: imports(m, f, mods) for m, f in mods.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"a (layer) imports b (higher layer)"`` for each import against the layer order."""
    bad = []
    for m, targets in sorted(graph.items()):
        if m == PACKAGE:  # the root re-exports its API; importing it is for __version__
            continue
        for t in sorted(targets):
            if layer_of(t) > layer_of(m) and (m, t) not in KNOWN_UPWARD:
                bad.append(f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan), the root's own
    re-exports left out."""
    graph = {m: (set() if m == PACKAGE else set(t)) for m, t in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_imports_only_go_downward():
    graph = import_graph()
    bad = upward_imports(graph)
    assert not bad, "upward imports:\n" + "\n".join(bad)
    gone = [pair for pair in KNOWN_UPWARD if pair[1] not in graph.get(pair[0], ())]
    assert not gone, f"no longer imported: delete {gone} from KNOWN_UPWARD"


def test_no_import_cycles():
    found = cycles(import_graph())
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(" <-> ".join(sorted(c)) for c in new)
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert not gone, "these cycles are gone: delete them from KNOWN_CYCLES"


# -- the checker itself, on a tiny package written here -----------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        f = root / PACKAGE / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)


def test_checker_sees_function_level_upward_imports_and_cycles(tmp_path):
    _write(
        tmp_path,
        {
            "__init__.py": "",
            "utils/__init__.py": "",
            "utils/io.py": "def f():\n    from spikeformers.cli import main\n",
            "cli/__init__.py": "from spikeformers.utils import io\n",
            "trainer.py": "from . import evaluation\n",
            "evaluation.py": "def g():\n    from .trainer import fit\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["spikeformers.utils.io"] == {"spikeformers.cli"}
    assert graph["spikeformers.cli"] == {"spikeformers.utils.io"}
    assert graph["spikeformers.trainer"] == {"spikeformers.evaluation"}
    assert upward_imports(graph) == ["spikeformers.utils.io (utils) imports spikeformers.cli (cli)"]
    assert sorted(sorted(c) for c in cycles(graph)) == [
        ["spikeformers.cli", "spikeformers.utils.io"],
        ["spikeformers.evaluation", "spikeformers.trainer"],
    ]


def test_a_module_outside_every_layer_is_an_error():
    with pytest.raises(KeyError, match="in no layer"):
        layer_of("spikeformers.newthing")
