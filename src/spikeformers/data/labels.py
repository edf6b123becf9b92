"""Labels: how raw label values of a file map to class ids (or a regression target), inferred
from the training rows or given by a known label set, and rows turned into :class:`Example`."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from spikeformers.data.examples import (
    DatasetSplits,
    Example,
    TaskSpec,
)
from spikeformers.data.readers import (
    Row,
    get_text,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelScheme:
    """How raw label values (strings, numbers) map to ``Example.label``."""

    kind: Literal["classes", "regression"]
    names: tuple[str, ...]
    accept_ids: bool = False  # integers 0..len(names)-1 are class ids
    lookup: dict[str, int] = field(default_factory=dict)  # label text -> class id

    @classmethod
    def from_names(cls, names: Sequence[str], *, accept_ids: bool = True) -> LabelScheme:
        names = tuple(str(n) for n in names)
        if len(set(names)) != len(names):
            raise ValueError(f"label_names must be distinct, got {names}")
        return cls("classes", names, accept_ids, {n: i for i, n in enumerate(names)})


_INT_RE = re.compile(r"[+-]?\d+")


def canonical_label(raw: Any) -> tuple[str, Any]:
    """Classify a raw label as ``(kind, value)``.

    ``kind`` is ``"int"`` (an integer literal, or a JSON integer or boolean), ``"float"`` (a
    number written with a decimal point or exponent, e.g. ``"3.8"``, ``"5.000"``, a JSON ``1.0``:
    a float column, as ``run_glue`` reads it), ``"str"``, ``"missing"`` (``None`` or blank) or
    ``"bad"`` (anything else, e.g. a JSON list or a non-finite number).
    """
    if raw is None:
        return "missing", None
    if isinstance(raw, bool):
        return "int", int(raw)
    if isinstance(raw, int):
        return "int", raw
    if isinstance(raw, float):
        return ("float", raw) if math.isfinite(raw) else ("bad", raw)
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return "missing", None
        if _INT_RE.fullmatch(text):
            return "int", int(text)
        try:
            value = float(text)
        except ValueError:
            return "str", text
        if not math.isfinite(value):
            return "str", text
        return "float", value
    return "bad", raw


def _ids_unambiguous(names: Sequence[str]) -> bool:
    """Whether integer labels can be read as class ids for these names.

    True when the names are ``"0".."n-1"`` themselves or none of them looks like an integer;
    for names such as ``("-1", "1")`` the label ``1`` is a name and ``0`` no class at all.
    """
    if tuple(names) == tuple(str(i) for i in range(len(names))):
        return True
    return not any(_INT_RE.fullmatch(str(n).strip()) for n in names)


def label_scheme_for(task: TaskSpec) -> LabelScheme:
    """How to read a file's labels for a known label set (a saved model's, or a named task's).

    A regression task (``num_labels == 1``) reads numbers; a classification task reads its class
    names, and also class ids ``0..n-1`` unless a name looks like an integer (see
    :func:`_ids_unambiguous`).
    """
    if task.is_regression:
        return LabelScheme("regression", task.label_names)
    return LabelScheme.from_names(task.label_names, accept_ids=_ids_unambiguous(task.label_names))


def infer_label_scheme(
    rows: Sequence[Row], label_column: str, label_names: Sequence[str] | None
) -> LabelScheme:
    """Work out the label scheme from the training rows (see :func:`load_files`).

    Raises:
        DataError: A missing column or empty label (naming the row), or a column mixing numbers
            and text (naming the first line whose kind differs from the first label's).
    """
    if label_names is not None:
        return LabelScheme.from_names(label_names, accept_ids=_ids_unambiguous(label_names))
    kinds: set[str] = set()
    values: list[tuple[str, Any]] = []
    first: tuple[Row, str] | None = None
    for row in rows:
        if label_column not in row.values:
            raise row.error(f"missing column {label_column!r}; columns present: {list(row.values)}")
        kind, value = canonical_label(row.values[label_column])
        if kind == "missing":
            raise row.error(f"empty label in column {label_column!r}")
        if kind == "bad":
            raise row.error(
                f"bad label {value!r} in column {label_column!r}: expected a number or a string"
            )
        if first is None:
            first = (row, kind)
        elif (kind == "str") != (first[1] == "str"):
            what = {"str": "text", "int": "a number", "float": "a number"}
            raise row.error(
                f"mixed label types in column {label_column!r}: {value!r} is {what[kind]} but the "
                f"label on line {first[0].line} ({first[0].values[label_column]!r}) is "
                f"{what[first[1]]}; use class names or class ids throughout"
            )
        kinds.add(kind)
        values.append((kind, value))
    if kinds == {"int"}:
        ints = sorted({v for _, v in values})
        if ints[0] >= 0:
            names = tuple(str(i) for i in range(ints[-1] + 1))
            unused = sorted(set(range(len(names))) - set(ints))
            if unused:
                logger.warning(
                    "%s: class ids %s never occur in the training set (num_labels=%d)",
                    rows[0].path,
                    unused,
                    len(names),
                )
            return LabelScheme("classes", names, True, {n: i for i, n in enumerate(names)})
        # Negative integers (e.g. -1/1) are names, not ids: map them in numeric order.
        return LabelScheme.from_names([str(i) for i in ints], accept_ids=False)
    if "float" in kinds:
        row = next(r for r, (k, _) in zip(rows, values, strict=True) if k == "float")
        logger.warning(
            "%s: column %r holds floats (e.g. %r): a regression task (one output, MSE, "
            "Pearson/Spearman), as run_glue reads a float label column; write integer ids or "
            "class names for classification",
            row.source,
            label_column,
            row.values[label_column],
        )
        return LabelScheme("regression", (label_column,))
    names = sorted({str(v) for _, v in values})
    return LabelScheme.from_names(names, accept_ids=False)


def parse_label(
    row: Row, label_column: str, scheme: LabelScheme, *, allow_missing: bool
) -> int | float | None:
    if label_column not in row.values and not allow_missing:
        raise row.error(f"missing column {label_column!r}; columns present: {list(row.values)}")
    raw = row.values.get(label_column)
    kind, value = canonical_label(raw)
    if kind == "missing":
        if allow_missing:
            return None
        raise row.error(f"empty label in column {label_column!r}")
    if scheme.kind == "regression":
        if kind in ("int", "float"):
            return float(value)
        raise row.error(f"bad label {raw!r} in column {label_column!r}: expected a number")
    if kind in ("int", "str") and str(value) in scheme.lookup:
        return scheme.lookup[str(value)]
    if kind == "float" and value.is_integer():  # "1.0" in a class column: the id 1
        kind, value = "int", int(value)
        if str(value) in scheme.lookup:
            return scheme.lookup[str(value)]
    if kind == "int" and scheme.accept_ids and 0 <= value < len(scheme.names):
        return value
    raise row.error(
        f"bad label {raw!r} in column {label_column!r}: not one of the known classes "
        f"{list(scheme.names)}"
        + (f" (ids 0..{len(scheme.names) - 1})" if scheme.accept_ids else "")
    )


def rows_to_examples(
    rows: Sequence[Row],
    *,
    text_column: str,
    text_pair_column: str | None,
    label_column: str | None,
    scheme: LabelScheme | None,
    allow_missing_labels: bool = False,
    skip_empty_text: bool = False,
    skipped: list[str] | None = None,
) -> list[Example]:
    examples = []
    for row in rows:
        texts = []
        for column in (text_column, text_pair_column):
            if column is None:
                texts.append(None)
                continue
            value = row.values.get(column)
            if skip_empty_text and isinstance(value, str) and not value.strip():
                break
            texts.append(get_text(row, column))
        else:
            label = None
            if label_column is not None and scheme is not None:
                label = parse_label(row, label_column, scheme, allow_missing=allow_missing_labels)
            examples.append(Example(texts[0], texts[1], label, source=row.source))
            continue
        reason = f"{row.source}: empty text in column {column!r}; left out"
        logger.warning(reason)
        if skipped is not None:
            skipped.append(reason)
    return examples


def _label_counts(examples: Sequence[Example], task: TaskSpec) -> dict[str, int]:
    if task.is_regression:
        return {}
    counts = Counter(e.label for e in examples)
    result = {name: counts.get(i, 0) for i, name in enumerate(task.label_names)}
    if counts.get(None):
        result["(unlabelled)"] = counts[None]
    return result


def finish_splits(
    task: TaskSpec,
    train: list[Example],
    validation: list[Example],
    test: list[Example],
    info: dict[str, Any],
) -> DatasetSplits:
    splits = DatasetSplits(task, train, validation, test, info)
    info["sizes"] = splits.sizes()
    info["label_counts"] = {
        name: _label_counts(part, task)
        for name, part in (("train", train), ("validation", validation), ("test", test))
    }
    logger.info("loaded task %s: %s", task.name, info["sizes"])
    return splits
