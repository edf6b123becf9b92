"""Reading a transfer set: the JSON Lines file ``spikeformers augment`` writes.

Each row holds a ``sentence`` (and optional ``text_pair``/``label``) with the fine-tuning
teacher's ``teacher_logits``; they become :class:`Example` objects whose ``soft_labels`` feed the
task-stage KL term.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

from spikeformers.data.examples import DataError, DatasetSplits, Example
from spikeformers.data.readers import get_text, read_table


def iter_augmented(path: str | os.PathLike, *, encoding: str = "utf-8") -> Iterator[Example]:
    """Examples of an augmented JSONL file with ``soft_labels`` = the stored teacher logits.

    Raises:
        DataError: A row without ``sentence`` or ``teacher_logits``, non-numeric logits, or rows
            of different widths (named with file and line).
    """
    _, rows = read_table(path, encoding=encoding, fmt="jsonl")
    width = None
    for row in rows:
        logits = row.values.get("teacher_logits")
        if not isinstance(logits, list) or not logits:
            raise row.error("missing or empty 'teacher_logits' (not an augmented file?)")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in logits):
            raise row.error("'teacher_logits' must be a list of numbers")
        if width is None:
            width = len(logits)
        elif len(logits) != width:
            raise row.error(f"{len(logits)} teacher logits, earlier rows have {width}")
        pair = row.values.get("text_pair")
        label = row.values.get("label")
        if label is not None and not isinstance(label, int | float):
            raise row.error(f"bad label {label!r}: expected a number")
        yield Example(
            get_text(row, "sentence"),
            None if pair is None else get_text(row, "text_pair"),
            label,
            tuple(float(v) for v in logits),
            row.source,
        )


def load_augmented(path: str | os.PathLike, *, encoding: str = "utf-8") -> list[Example]:
    """All examples of an augmented JSONL file (see :func:`iter_augmented`)."""
    return list(iter_augmented(path, encoding=encoding))


def augmented_splits(splits: DatasetSplits, path: str | os.PathLike) -> DatasetSplits:
    """``splits`` with its training set replaced by the augmented file at ``path``.

    Validation and test stay as they are (model selection and scoring on real data).

    Raises:
        DataError: The file's logits do not have one value per class of the task.
    """
    train = load_augmented(path)
    widths = {len(e.soft_labels or ()) for e in train}
    if widths != {splits.task.num_labels}:
        raise DataError(
            f"teacher logits of width {sorted(widths)} for a task with "
            f"{splits.task.num_labels} classes",
            path=str(path),
        )
    info = {**splits.info, "augmented_file": str(path)}
    out = dataclasses.replace(splits, train=train, info=info)
    info["sizes"] = out.sizes()
    return out
