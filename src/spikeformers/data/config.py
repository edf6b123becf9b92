"""Where the data comes from (:class:`DataArgs`) and loading it with its checks.

:func:`load_data` reads the source a :class:`DataArgs` names (a named task, generic files, a Hub
dataset or the embedded default), checks a saved model's label set against it and caps the
split sizes; :func:`check_scorable` says whether a split can be scored.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
from torch import nn

from spikeformers.data.default import load_rotten_tomatoes
from spikeformers.data.examples import DataError, DatasetSplits, Example, TaskSpec
from spikeformers.data.tasks import load_files, load_hub_dataset, load_task
from spikeformers.models.base import SpikingModel

logger = logging.getLogger(__name__)

# Longer texts are refused rather than tokenised (truncation to --max-length is normal and logged;
# a megabyte in one example is almost always a broken file, e.g. a missing line break or quote).
MAX_TEXT_CHARS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class DataArgs:
    """Where the data comes from: a named task, generic files, a Hub dataset or the default."""

    task: str | None = None
    """Named task (sst2, sst5, mr, subj, chnsenti, waimai) read from ``data_dir``."""
    data_dir: str | None = None
    """Folder of the named task's files."""
    train_file: str | None = None
    """Generic CSV/TSV/JSONL training file."""
    validation_file: str | None = None
    """Generic validation file (split from train when absent)."""
    test_file: str | None = None
    """Generic test file."""
    text_column: str = "sentence"
    """Text column of generic files."""
    text_pair_column: str | None = None
    """Second-sentence column for sentence-pair tasks."""
    label_column: str = "label"
    """Label column of generic files."""
    dataset: str | None = None
    """Hugging Face Hub dataset id (needs a network)."""
    dataset_config: str | None = None
    """Hub dataset configuration name."""
    encoding: str = "utf-8"
    """Encoding of generic files."""
    max_length: int = 128
    """Tokens per sequence after truncation."""
    max_train_samples: int | None = None
    """Use at most this many training examples (a seeded random subset)."""
    max_eval_samples: int | None = None
    """Use at most this many validation and test examples (a seeded random subset)."""
    split_seed: int = 0
    """Seed of the split made for sets without one."""

    def files(self) -> dict[str, str]:
        """The generic files given, by split (``{"train": ..., "test": ...}``)."""
        named = {
            "train": self.train_file,
            "validation": self.validation_file,
            "test": self.test_file,
        }
        return {k: v for k, v in named.items() if v}

    def source(self) -> str:
        """Which kind of source is selected: ``task``, ``files``, ``dataset`` or ``default``.

        ``files`` means any of ``--train-file``, ``--validation-file``, ``--test-file``.

        Raises:
            ValueError: Several kinds given, or an option that only a kind not selected reads
                (``--data-dir`` without ``--task``, ``--dataset-config`` without ``--dataset``).
        """
        given = [
            n
            for n, v in (
                ("--task", self.task),
                ("--train-file/--validation-file/--test-file", self.files()),
                ("--dataset", self.dataset),
            )
            if v
        ]
        if len(given) > 1:
            raise ValueError(f"give only one data source, got {' and '.join(given)}")
        if self.data_dir and not self.task:
            raise ValueError(f"--data-dir {self.data_dir} is read only with --task")
        if self.dataset_config and not self.dataset:
            raise ValueError(f"--dataset-config {self.dataset_config} is read only with --dataset")
        if self.task:
            return "task"
        if self.files():
            return "files"
        return "dataset" if self.dataset else "default"


def load_data(
    args: DataArgs, *, need_train: bool = True, labels: TaskSpec | None = None
) -> DatasetSplits:
    """Load the splits described by ``args``; every file given is read, or this raises.

    Only ``args`` naming no data at all loads the embedded Rotten Tomatoes set (and logs so).

    Args:
        args: Where the data comes from.
        need_train: The caller trains: generic files must include ``--train-file``. Evaluation
            (``False``) accepts ``--validation-file`` or ``--test-file`` alone.
        labels: A saved model's label set (:func:`model_label_set`): generic files' labels are
            read with it (an unknown label is an error naming file, line and label); other
            sources must have as many classes.

    Raises:
        DataError: A missing, unreadable, empty or malformed file, named with its line.
        ValueError: Conflicting sources, or no training file where one is needed.
    """
    kind = args.source()
    if kind == "task":
        if not args.data_dir:
            raise ValueError(f"--task {args.task} needs --data-dir (the folder of its files)")
        splits = load_task(args.task, args.data_dir, seed=args.split_seed)
    elif kind == "files":
        if need_train and not args.train_file:
            given = ", ".join(f"--{k}-file" for k in args.files())
            raise ValueError(
                f"this command trains and needs --train-file (got only {given}); "
                "`spikeformers evaluate` scores a saved model on a --validation-file or "
                "--test-file alone"
            )
        splits = load_files(
            args.train_file,
            args.validation_file,
            args.test_file,
            text_column=args.text_column,
            text_pair_column=args.text_pair_column,
            label_column=args.label_column,
            encoding=args.encoding,
            seed=args.split_seed,
            labels=labels,
        )
    elif kind == "dataset":
        splits = load_hub_dataset(
            args.dataset,
            config_name=args.dataset_config,
            text_column=args.text_column,
            text_pair_column=args.text_pair_column,
            label_column=args.label_column,
            seed=args.split_seed,
        )
    else:
        logger.warning(
            "no data given (--task, --train-file, --validation-file, --test-file or --dataset): "
            "using the embedded Rotten Tomatoes snippets"
        )
        splits = load_rotten_tomatoes(seed=args.split_seed)
    if labels is not None:
        check_label_set(labels, splits)
    limits = {
        "train": args.max_train_samples,
        "validation": args.max_eval_samples,
        "test": args.max_eval_samples,
    }
    for split, limit in limits.items():
        examples = getattr(splits, split)
        if limit and len(examples) > limit:
            g = torch.Generator().manual_seed(args.split_seed)
            keep = sorted(torch.randperm(len(examples), generator=g)[:limit].tolist())
            splits = dataclasses.replace(splits, **{split: [examples[i] for i in keep]})
    for split in ("train", "validation", "test"):
        check_text_sizes(getattr(splits, split))
    logger.info("data %s: %s", splits.task.name, splits.sizes())
    return splits


def model_label_set(model: nn.Module) -> TaskSpec:
    """The label set saved with a model: class names in id order, or regression (one output).

    Spiking models keep ``num_labels`` and ``label_names`` in their config, ``transformers``
    teachers ``num_labels`` and ``id2label``; missing names read as ``"0".."n-1"``.
    """
    n = int(model.config.num_labels)
    names = tuple(model_label_names(model))
    if n == 1:
        return TaskSpec("model", 1, names[:1], metric="pearson")
    return TaskSpec("model", n, names)


def model_label_names(model: nn.Module) -> list[str]:
    """Class names of a spiking model or ``transformers`` teacher, in id order (``"0".."n-1"``
    where none are saved)."""
    cfg = model.config
    if isinstance(model, SpikingModel):
        return list(cfg.label_names) or [str(i) for i in range(cfg.num_labels)]
    id2label = getattr(cfg, "id2label", None) or {}
    return [id2label.get(i, str(i)) for i in range(cfg.num_labels)]


def check_label_set(labels: TaskSpec, splits: DatasetSplits) -> None:
    """A model's label set against the data's task: same kind and number of classes.

    Raises:
        ValueError: A regression model on a classification task (or the reverse), or another
            number of classes.
    """
    task = splits.task
    if labels.is_regression != task.is_regression or labels.num_labels != task.num_labels:
        kind = {True: "a regression output", False: "classes"}
        raise ValueError(
            f"the model predicts {labels.num_labels} {kind[labels.is_regression]} but "
            f"{task.name} has {task.num_labels} {kind[task.is_regression]}"
        )
    if not task.is_regression and labels.label_names != task.label_names:
        logger.warning(
            "the model's class names %s differ from %s's %s: labels are compared by id",
            list(labels.label_names),
            task.name,
            list(task.label_names),
        )


def check_text_sizes(examples: list[Example], limit: int = MAX_TEXT_CHARS) -> None:
    """Refuse an example whose text is longer than ``limit`` characters (names its line)."""
    for e in examples:
        for text in (e.text, e.text_pair):
            if text is not None and len(text) > limit:
                raise DataError(
                    f"a text of {len(text):,} characters (the limit is {limit:,}; texts are "
                    f"truncated to --max-length tokens anyway): is a line break or quote missing?",
                    path=e.source,
                )


def load_training_data(args: DataArgs, do_test: bool) -> DatasetSplits:
    """:func:`load_data` for a training command; with ``do_test`` the test split must be
    scorable (checked before any training, so a run never fails at its end)."""
    splits = load_data(args)
    if do_test:
        check_scorable(splits, "test", args, "--do-test")
    return splits


def check_scorable(splits: DatasetSplits, split: str, data: DataArgs, flag: str) -> list[Example]:
    """The examples of ``split``, which must exist and all be labelled to be scored.

    Raises:
        ValueError: The split is empty (the message says which files were given).
        DataError: An unlabelled example (named by file and line).
    """
    examples = getattr(splits, split)
    if not examples:
        files = data.files()
        hint = (
            f" (files given: {', '.join(f'--{k}-file' for k in files)}; give --{split}-file)"
            if files
            else ""
        )
        raise ValueError(f"{flag}: the {split} split of {splits.task.name} is empty{hint}")
    unlabelled = next((e for e in examples if e.label is None), None)
    if unlabelled is not None:
        raise DataError(
            f"{flag}: an unlabelled {split} example (scoring needs a label on every line; "
            "`spikeformers predict` labels texts)",
            path=unlabelled.source,
        )
    return examples
