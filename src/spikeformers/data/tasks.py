"""Labelled sources: named benchmark tasks, your own files and the Hugging Face hub.

- :func:`load_task` reads the public benchmark files (SST-2, SST-5, MR, Subj, ChnSentiCorp,
  Waimai) in their published formats.
- :func:`load_files` reads your own CSV / TSV / JSON Lines files.
- :func:`load_hub_dataset` loads a Hugging Face hub data set (needs ``datasets`` and a network or
  a local cache).

The offline default is in :mod:`spikeformers.data.default`, unlabelled text for stage-1
distillation in :mod:`spikeformers.data.unlabelled`, label reading in
:mod:`spikeformers.data.labels`. Sets published without a split get a seeded, stratified
train / validation / test split (see :mod:`spikeformers.data.splits`); the seed and fractions are
recorded in ``DatasetSplits.info``.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from spikeformers.data.default import ROTTEN_TOMATOES, load_rotten_tomatoes
from spikeformers.data.examples import (
    DataError,
    DatasetSplits,
    Example,
    MissingDependencyError,
    TaskSpec,
)
from spikeformers.data.labels import (
    LabelScheme,
    canonical_label,
    finish_splits,
    infer_label_scheme,
    label_scheme_for,
    rows_to_examples,
)
from spikeformers.data.readers import (
    Row,
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
    scheme = LabelScheme.from_names(task.label_names)

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
        return rows_to_examples(
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
    return finish_splits(task, train, validation, test, info)


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
        scheme = infer_label_scheme(train.rows if train else [], label_column, label_names)
    else:
        source = given[0]
        require_columns(source.name, source.columns, [label_column], line=source.header_line)
        rows = [
            r for r in source.rows if canonical_label(r.values.get(label_column))[0] != "missing"
        ]
        if not rows:
            raise DataError(
                f"no labels in column {label_column!r}: cannot tell the label set",
                path=source.name,
            )
        scheme = infer_label_scheme(rows, label_column, None)
    if scheme.kind == "regression":
        task = TaskSpec(task_name, 1, scheme.names, metric="pearson")
    else:
        task = TaskSpec(task_name, len(scheme.names), scheme.names)

    def convert(part: _Part, *, allow_missing: bool) -> list[Example]:
        labelled = label_column in part.columns
        if not labelled and not allow_missing:
            require_columns(part.name, part.columns, [label_column], line=part.header_line)
        require_columns(part.name, part.columns, text_columns, line=part.header_line)
        return rows_to_examples(
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
    return finish_splits(task, train_examples, validation_examples or [], test_examples or [], info)


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
