"""benchmarks/docs_tables.py: generated blocks are filled from JSON, and the docs are in sync."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _docs_tables():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("docs_tables", BENCHMARKS / "docs_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs_tables = _docs_tables()


def _block(name: str, body: str) -> str:
    return (
        f"<!-- generated: {name} (benchmarks/docs_tables.py; edit the JSON, not this block) -->\n"
        f"{body}<!-- end generated: {name} -->"
    )


def test_render_replaces_only_the_bodies_of_named_blocks():
    a_old, a_new, b_old, b_new = (
        _block("a", "old typed 0.99\n"),
        _block("a", "| x |\n"),
        _block("b", ""),
        _block("b", "B\n"),
    )
    text = f"# Title\n\n{a_old}\nprose\n{b_old}\nend\n"
    out = docs_tables.render(text, {"a": lambda: "| x |\n", "b": lambda: "B"})
    assert out == f"# Title\n\n{a_new}\nprose\n{b_new}\nend\n"
    # Rendering is idempotent: a second pass changes nothing.
    assert docs_tables.render(out, {"a": lambda: "| x |\n", "b": lambda: "B"}) == out


def test_unknown_block_and_missing_end_marker_are_errors_naming_the_file():
    with pytest.raises(docs_tables.BlockError, match="README.md: unknown generated block 'zz'"):
        docs_tables.render(_block("zz", ""), {}, source="README.md")
    broken = _block("a", "").replace("<!-- end generated: a -->", "")
    with pytest.raises(docs_tables.BlockError, match="RESULTS.md: 1 generated-block starts, 0"):
        docs_tables.render(broken, {"a": lambda: ""}, source="RESULTS.md")


def test_committed_docs_match_their_committed_json():
    """A number typed into a generated block, or a result committed without regenerating the
    docs, fails here: run ``python benchmarks/docs_tables.py``."""
    assert docs_tables.stale() == []
    readme = (BENCHMARKS.parent / "README.md").read_text(encoding="utf-8")
    assert "<!-- generated: quickstart " in readme and "<!-- generated: suite " in readme
