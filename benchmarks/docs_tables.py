"""The result tables of README.md and docs/RESULTS.md, generated from the committed result JSON.

A generated block sits between two HTML comments::

    <!-- generated: NAME (benchmarks/docs_tables.py; edit the JSON, not this block) -->
    ...
    <!-- end generated: NAME -->

and holds exactly what :data:`BLOCKS` ``[NAME]`` makes from the files under
``benchmarks/results/``. ``python benchmarks/docs_tables.py`` rewrites every block of both files
in place; ``--check`` only reports the blocks that differ from their JSON and exits 1 if any does
(``tests/test_docs_tables.py`` runs it, so a typed number or a result committed without its table
fails the suite).

Blocks:

- ``quickstart``: the README quickstart's runs (``benchmarks/quickstart_runs.py``; one JSON per
  family x seed in ``results/quickstart_runs/``).
- ``quickstart-recipes``: the validation-only recipe sweep (``benchmarks/quickstart_recipes.py``).
- ``suite``: the papers' tables (``benchmarks/suite.py``; ``results/suite/<dataset>/*.json``).
- ``levers``: issue 16's levers on validation (``benchmarks/levers.py``;
  ``results/levers/<dataset>/*.json``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import levers  # noqa: E402
import quickstart_recipes  # noqa: E402
import quickstart_runs  # noqa: E402
import suite  # noqa: E402

DOCS = (ROOT / "README.md", ROOT / "docs" / "RESULTS.md")


def _quickstart() -> str:
    rows = quickstart_runs.load_rows()
    if not rows:
        return "No quickstart run is recorded yet (`benchmarks/quickstart_runs.py`)."
    when = sorted({r["machine"]["date"][:10] for r in rows})
    cpus = sorted({f"{r['machine']['cpu']}, {r['machine']['cpu_count']} cores" for r in rows})
    return (
        f"{quickstart_runs.markdown(rows)}\n\n"
        f"Measured {', '.join(when)} on {'; '.join(cpus)}. `wall s`: the run's wall time, install "
        "excluded; for a run assembled from the recipe sweep, the sum of its stages' times at 1 "
        "thread under the load shown, not the quickstart's time on a quiet machine."
    )


def _recipes() -> str:
    records = quickstart_recipes.load_records()
    if not records:
        return "No candidate is recorded yet (`benchmarks/quickstart_recipes.py`)."
    return quickstart_recipes.markdown(records)


def _suite() -> str:
    records = suite.load_results(suite.SUITE_RESULTS)
    if not records:
        return "No suite run is recorded yet (`benchmarks/suite.py run`)."
    text = suite.markdown(records).split("\n", 2)[2].strip()  # the document has its own title
    return text.replace("\n## ", "\n### ")  # sub-headings under the document's section


def _levers() -> str:
    records = levers.load_records()
    if not records:
        return "No lever run is recorded yet (`benchmarks/levers.py run`)."
    return levers.markdown(records)


BLOCKS: dict[str, Callable[[], str]] = {
    "quickstart": _quickstart,
    "quickstart-recipes": _recipes,
    "suite": _suite,
    "levers": _levers,
}

_BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) \(benchmarks/docs_tables\.py; edit the JSON, not this "
    r"block\) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
    re.DOTALL,
)


class BlockError(ValueError):
    """A generated block that cannot be filled: unknown name or no end marker."""


def render(text: str, blocks: dict[str, Callable[[], str]] = BLOCKS, source: str = "") -> str:
    """``text`` with the body of every generated block replaced by its generator's output.

    Raises:
        BlockError: a block names no generator, or a start marker has no matching end marker.
    """
    starts = len(re.findall(r"<!-- generated: ", text))
    found = list(_BLOCK.finditer(text))
    if len(found) != starts:
        raise BlockError(f"{source}: {starts} generated-block starts, {len(found)} complete blocks")

    def fill(m: re.Match) -> str:
        name = m["name"]
        if name not in blocks:
            raise BlockError(f"{source}: unknown generated block {name!r} (known: {list(blocks)})")
        return f"{m[1]}{blocks[name]().rstrip()}\n{m[4]}"

    return _BLOCK.sub(fill, text)


def stale(paths: tuple[Path, ...] = DOCS) -> list[str]:
    """``path: block`` for every block whose body differs from what its JSON gives."""
    out = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new = render(text, source=str(path))
        if new != text:
            old_blocks = {m["name"]: m["body"] for m in _BLOCK.finditer(text)}
            out += [
                f"{path.name}: {m['name']}"
                for m in _BLOCK.finditer(new)
                if old_blocks.get(m["name"]) != m["body"]
            ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="report stale blocks; exit 1 if any")
    a = p.parse_args(argv)
    if a.check:
        bad = stale()
        for line in bad:
            print(f"stale: {line} (run python benchmarks/docs_tables.py)", file=sys.stderr)
        return 1 if bad else 0
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        new = render(text, source=str(path))
        if new != text:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(new, encoding="utf-8")
            tmp.replace(path)
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
