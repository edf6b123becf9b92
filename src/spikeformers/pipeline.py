"""High-level workflows: the Python API behind every CLI subcommand.

Each function takes typed arguments, writes a self-describing run directory and returns its
metrics. A run directory holds:

- ``config.json`` + ``model.safetensors``: the model (a spikeformers student, or a ``transformers``
  teacher for ``finetune_teacher``), plus the tokenizer files;
- ``run_config.json``: every resolved setting of the run;
- ``train_log.jsonl``: training and validation records;
- ``metrics.json``: the final validation/test metrics, timings and sizes;
- ``checkpoints/step-N/``: periodic training checkpoints (``--save-every``; see
  :mod:`spikeformers.checkpoint` and ``docs/SCALING.md``).

Under ``torchrun`` every workflow trains data-parallel (:mod:`spikeformers.distributed`); rank 0
writes the files.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from spikeformers import __version__
from spikeformers import checkpoint as ckpt
from spikeformers.cards import refresh_card
from spikeformers.data import (
    DataError,
    DatasetSplits,
    Example,
    TaskSpec,
    encode_examples,
    load_files,
    load_hub_dataset,
    load_rotten_tomatoes,
    load_task,
    load_unlabelled_text,
    make_dataloader,
)
from spikeformers.data.metrics import primary_metric
from spikeformers.distill.distiller import (
    DistillConfig,
    Distiller,
    VocabularyMismatchError,
    init_embeddings_from_teacher,
)
from spikeformers.distill.teacher import TeacherError, freeze, load_teacher, load_tokenizer
from spikeformers.distributed import (
    DistEnv,
    check_global_batch,
    evaluate_sharded,
    init_distributed,
    make_train_loader,
)
from spikeformers.evaluation import evaluate
from spikeformers.models.base import CONFIG_NAME, SpikingModel, read_config
from spikeformers.registry import is_saved_model, load_model
from spikeformers.tracking import open_trackers
from spikeformers.trainer import (
    SupervisedObjective,
    TrainConfig,
    TrainResult,
    check_precision,
    fit,
)
from spikeformers.utils.io import write_json
from spikeformers.utils.seed import pick_device, seed_everything

logger = logging.getLogger(__name__)


# BERT fine-tuning defaults (Devlin et al. 2019): small lr, linear decay, 10% warm-up.
TEACHER_TRAIN_DEFAULTS = TrainConfig(
    epochs=3, lr=5e-5, weight_decay=0.01, warmup_ratio=0.1, schedule="linear"
)


# Longer texts are refused rather than tokenised (truncation to --max-length is normal and logged;
# a megabyte in one example is almost always a broken file, e.g. a missing line break or quote).
MAX_TEXT_CHARS = 1_000_000


class RunDirError(ValueError):
    """An output directory cannot be used (it holds a different run)."""


@dataclass(frozen=True, kw_only=True)
class CheckpointArgs:
    """Periodic checkpoints and resuming (see ``docs/SCALING.md``)."""

    save_every: int = 0
    """Optimizer steps between checkpoints in ``OUT/checkpoints/step-N`` (0: none)."""
    keep_last: int = 2
    """Complete checkpoints kept."""
    resume: bool = False
    """Continue from the latest complete checkpoint (from scratch when there is none)."""


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
    names = tuple(_label_names(model))
    if n == 1:
        return TaskSpec("model", 1, names[:1], metric="pearson")
    return TaskSpec("model", n, names)


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


def prepare_out_dir(out_dir: str | Path, kind: str, *, overwrite: bool = False) -> Path:
    """Create ``out_dir``; refuse one that already holds a different kind of run.

    A directory with a ``run_config.json`` of another command (or any model not produced by this
    command) is refused unless ``overwrite``: finished work is never silently replaced by a
    different run.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out}: exists and is not a folder")
    rc = out / "run_config.json"
    if rc.is_file() and not overwrite:
        import json

        try:
            prev = json.loads(rc.read_text(encoding="utf-8")).get("command")
        except (ValueError, UnicodeDecodeError):
            prev = None
        if prev != kind:
            raise RunDirError(
                f"{out} already holds a {prev or 'different'} run; choose another --out or pass "
                "--overwrite"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_run_config(out: Path, command: str, **settings: Any) -> None:
    """Record every resolved setting of a run in ``run_config.json``."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.asdict(v)
        if isinstance(v, Path | torch.device):
            return str(v)
        return v

    write_json(
        out / "run_config.json",
        {
            "command": command,
            "spikeformers_version": __version__,
            **{k: plain(v) for k, v in settings.items()},
        },
    )


def _loader(
    examples: list[Example],
    tokenizer,
    args: DataArgs,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
):
    ds = encode_examples(examples, tokenizer, max_length=args.max_length)
    return make_dataloader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        pad_token_id=tokenizer.pad_token_id or 0,
        group_by_length=shuffle,
    )


def _attach_file_log(out: Path, enabled: bool = True) -> logging.Handler | None:
    if not enabled:  # other ranks of a distributed run: rank 0 writes run.log
        return None
    handler = logging.FileHandler(out / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("spikeformers").addHandler(handler)
    return handler


def _detach_file_log(handler: logging.Handler | None) -> None:
    if handler is None:
        return
    logging.getLogger("spikeformers").removeHandler(handler)
    handler.close()


def _selection(splits: DatasetSplits) -> tuple[str, Literal["max", "min"]]:
    return primary_metric(splits.task), "max"


def _evaluate_splits(
    model: nn.Module,
    splits: DatasetSplits,
    tokenizer,
    args: DataArgs,
    cfg: TrainConfig,
    device: torch.device,
    env: DistEnv | None = None,
    *,
    do_test: bool = False,
) -> dict[str, dict]:
    """Score the validation split (when labelled), and the test split only with ``do_test``."""
    out = {}
    for split in ("validation", "test") if do_test else ("validation",):
        examples = getattr(splits, split)
        if examples and all(e.label is not None for e in examples):
            run = _evaluator(
                model, examples, tokenizer, args, cfg.eval_batch_size, splits.task, device, env
            )
            out[split] = run()
    return out


def _evaluator(
    model: nn.Module,
    examples: list[Example],
    tokenizer,
    args: DataArgs,
    batch_size: int,
    task,
    device: torch.device,
    env: DistEnv | None,
):
    """A validation pass: ``evaluate`` in one process, sharded over ranks under torchrun."""
    if env is None or not env.is_distributed:
        loader = _loader(examples, tokenizer, args, batch_size, shuffle=False)
        return lambda: evaluate(model, loader, task, device)
    ds = encode_examples(examples, tokenizer, max_length=args.max_length)
    pad = tokenizer.pad_token_id or 0
    return lambda: evaluate_sharded(model, ds, task, env, batch_size=batch_size, pad_token_id=pad)


def _train_loader(examples: list[Example], tokenizer, args: DataArgs, train: TrainConfig, env):
    """This rank's share of every global batch (length-grouped, seeded per epoch)."""
    ds = encode_examples(examples, tokenizer, max_length=args.max_length)
    return make_train_loader(
        ds,
        global_batch_size=train.batch_size,
        seed=train.seed,
        pad_token_id=tokenizer.pad_token_id or 0,
        env=env,
        grad_accum=train.grad_accum,
        drop_last=train.drop_last,
    )


def _start_training(
    out: Path,
    env: DistEnv,
    train: TrainConfig,
    checkpointing: CheckpointArgs | None,
    overwrite: bool,
) -> ckpt.CheckpointConfig | None:
    """Checks made before any data or model is loaded: batch split, precision, checkpoints."""
    check_global_batch(train.batch_size, env.world_size, train.grad_accum)
    check_precision(train.precision, env.device)
    c = checkpointing or CheckpointArgs()
    return ckpt.prepare(
        out,
        save_every=c.save_every,
        keep_last=c.keep_last,
        resume=c.resume,
        overwrite=overwrite,
        train_config=train,
        is_main=env.is_main,
    )


def finetune_teacher(
    *,
    data: DataArgs,
    out_dir: str | Path,
    teacher: str | None = None,
    train: TrainConfig | None = None,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    checkpointing: CheckpointArgs | None = None,
    report_to: list[str] | None = None,
    do_test: bool = False,
) -> dict:
    """Fine-tune a BERT-family teacher on a task and save it (``transformers`` format).

    A regression task (one output) is fine-tuned with MSE (``problem_type="regression"``).
    The test split is scored only with ``do_test`` (as ``run_glue --do_predict``).

    Returns:
        Metrics: ``{"validation": {...}, "test": {...} (with do_test), "seconds": ...}``.
    """
    train = train or TEACHER_TRAIN_DEFAULTS
    out = prepare_out_dir(out_dir, "finetune-teacher", overwrite=overwrite)
    env = init_distributed(device)
    log_handler = _attach_file_log(out, env.is_main)
    try:
        dev = env.device
        ckpt_cfg = _start_training(out, env, train, checkpointing, overwrite)
        seed_everything(train.seed)
        splits = load_data(data)
        if do_test:
            check_scorable(splits, "test", data, "--do-test")
        tokenizer = load_tokenizer(teacher)
        model = load_teacher(
            teacher, num_labels=splits.task.num_labels, label_names=splits.task.label_names
        )
        if env.is_main:
            write_run_config(
                out,
                "finetune-teacher",
                teacher=teacher,
                data=data,
                train=train,
                do_test=do_test,
                device=dev,
                data_info=splits.info,
                task=splits.task,
                world_size=env.world_size,
            )
        train_loader = _train_loader(splits.train, tokenizer, data, train, env)
        val_eval = _evaluator(
            model, splits.validation, tokenizer, data, train.eval_batch_size, splits.task, dev, env
        )
        key, mode = _selection(splits)
        result = fit(
            SupervisedObjective(model),
            train_loader,
            train,
            device=dev,
            select_module=model,
            evaluate_fn=val_eval,
            select_key=key,
            select_mode=mode,
            log_path=out / "train_log.jsonl",
            desc="finetune-teacher",
            show_progress=show_progress,
            checkpoint=ckpt_cfg,
            dist_env=env,
            callbacks=open_trackers(report_to, out, is_main=env.is_main),
        )
        return _finish_run(
            out,
            env,
            model,
            tokenizer,
            lambda: _final_metrics(
                model, splits, tokenizer, data, train, dev, result, env, do_test=do_test
            ),
        )
    finally:
        _detach_file_log(log_handler)


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


def _finish_run(out: Path, env: DistEnv, model: nn.Module, tokenizer, metrics) -> dict:
    """Rank 0 saves the model and tokenizer; every rank runs ``metrics()`` (the evaluation is
    sharded); rank 0 writes ``metrics.json``. Returns the metrics."""
    if env.is_main:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    result = metrics()
    if env.is_main:
        write_json(out / "metrics.json", result)
        refresh_card(out)  # README.md in the Hugging Face model-card format
    return result


def _final_metrics(
    model,
    splits,
    tokenizer,
    data,
    train,
    dev,
    result: TrainResult,
    env: DistEnv | None = None,
    *,
    do_test: bool = False,
) -> dict:
    metrics: dict[str, Any] = _evaluate_splits(
        model, splits, tokenizer, data, train, dev, env, do_test=do_test
    )
    metrics.update(
        task=splits.task.name,
        seconds=round(result.seconds, 2),
        steps=result.steps,
        selected=result.best,
        parameters=sum(p.numel() for p in model.parameters()),
        sizes=splits.sizes(),
    )
    return metrics


def _student(model: str, tokenizer, splits: DatasetSplits | None, overrides: dict) -> SpikingModel:
    """A saved student (its head re-made if the task's class count differs) or a fresh variant."""
    if is_saved_model(model):
        saved = read_config(model)
        kw = dict(overrides)
        if splits is not None and saved.get("num_labels") != splits.task.num_labels:
            # Stage-1 students carry a placeholder head; re-make it for this task.
            student = load_model(model, **kw)
            return student.reset_classifier(splits.task.num_labels, splits.task.label_names)
        return load_model(model, **kw)
    if Path(model).exists():
        if (Path(model) / CONFIG_NAME).is_file():
            cfg = read_config(model)  # raises CheckpointError naming a corrupt config.json
            raise ValueError(
                f"--model {model}: {CONFIG_NAME} has model_type {cfg.get('model_type')!r}, not a "
                "spikeformers model (`spikeformers list-models` lists the families)"
            )
        raise ValueError(f"--model {model}: folder has no spikeformers {CONFIG_NAME}")
    kw = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id or 0, **overrides}
    if splits is not None:
        kw.update(num_labels=splits.task.num_labels, label_names=splits.task.label_names)
    return load_model(model, **kw)


def _check_vocab(student: SpikingModel, tokenizer, where: str) -> None:
    if student.config.vocab_size != len(tokenizer):
        raise ValueError(
            f"{where}: the student's vocabulary ({student.config.vocab_size}) does not match the "
            f"tokenizer ({len(tokenizer)} tokens); use the teacher the student was built for"
        )


def _check_same_vocabulary(student_tokenizer, teacher: str | None, where: str) -> None:
    """A saved student brings its own tokenizer: it must be the teacher's, token for token."""
    try:
        teacher_tokenizer = load_tokenizer(teacher)
    except TeacherError:
        logger.warning("cannot load the teacher's tokenizer: not comparing vocabularies")
        return
    s_vocab, t_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if s_vocab != t_vocab:
        differ = sorted(set(s_vocab.items()) ^ set(t_vocab.items()))[:3]
        raise VocabularyMismatchError(
            f"{where}: the student's tokenizer ({len(s_vocab)} tokens) differs from the "
            f"teacher's ({len(t_vocab)} tokens; e.g. {differ}); distil from the teacher whose "
            "tokenizer the student was built with"
        )


def distill(
    *,
    stage: Literal["general", "task"],
    out_dir: str | Path,
    model: str = "spikebert-mini",
    teacher: str | None = None,
    data: DataArgs | None = None,
    unlabelled_file: str | None = None,
    augmented_file: str | None = None,
    distill_config: DistillConfig | None = None,
    train: TrainConfig | None = None,
    model_overrides: dict | None = None,
    init_embeddings: bool = True,
    freeze_embeddings: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    checkpointing: CheckpointArgs | None = None,
    report_to: list[str] | None = None,
    do_test: bool = False,
    cache_teacher: bool = False,
) -> dict:
    """Distil a spiking student from a teacher (stage ``general`` or ``task``) and save it.

    Args:
        stage: ``general``: feature alignment to the pre-trained teacher on unlabelled text
            (``unlabelled_file``, or the task's training sentences with labels dropped).
            ``task``: all terms from a teacher fine-tuned on the task.
        out_dir: Run directory.
        model: Registered variant (fresh) or a saved student directory (e.g. stage-1 output).
        teacher: Teacher folder or Hub id (``None``: the packaged MiniLM). For the task stage this
            must be the fine-tuned teacher.
        data: The task data (validation split used for model selection in the task stage).
        unlabelled_file: Plain-text file for the general stage.
        augmented_file: Task stage only: a JSON Lines transfer set written by
            ``spikeformers augment`` (sentences with stored teacher logits) that replaces the
            training split; validation and test stay the task's own.
        distill_config: Loss weights; defaults per stage.
        train: Optimisation settings.
        model_overrides: Config overrides for a fresh student (e.g. ``{"time_steps": 4}``).
        init_embeddings: Copy the teacher's word embeddings into a fresh student (same width).
        freeze_embeddings: Keep the student's word embeddings fixed (on small task data the
            embedding of a 30k vocabulary is most of the parameters and overfits first).
        device: ``cpu``, ``cuda``, ``cuda:1``... (default: CUDA when present).
        overwrite: Allow replacing a different run in ``out_dir``.
        show_progress: Show progress bars.
        checkpointing: Periodic checkpoints and resuming.
        report_to: Experiment trackers (``tensorboard``, ``wandb``, ``mlflow``; see
            :mod:`spikeformers.tracking`).
        do_test: Task stage: also score the test split at the end (validation only otherwise).
        cache_teacher: Run the teacher once over the (fixed) training set and reuse its outputs
            every epoch (:meth:`Distiller.cache_teacher_outputs`; same losses, less time).
    """
    train = train or TrainConfig()
    data = data or DataArgs()
    dcfg = distill_config or DistillConfig.for_stage(stage)
    if dcfg.stage != stage:
        raise ValueError(f"distill_config.stage {dcfg.stage!r} != stage {stage!r}")
    if augmented_file and stage != "task":
        raise ValueError("--augmented-file is a task-stage option (stage 2)")
    if do_test and stage != "task":
        raise ValueError("--do-test is a task-stage option: the general stage scores nothing")
    command = f"distill-{stage}"
    out = prepare_out_dir(out_dir, command, overwrite=overwrite)
    env = init_distributed(device)
    log_handler = _attach_file_log(out, env.is_main)
    try:
        dev = env.device
        ckpt_cfg = _start_training(out, env, train, checkpointing, overwrite)
        seed_everything(train.seed)
        fresh = not is_saved_model(model)
        tok_src = (
            model if not fresh and (Path(model) / "tokenizer_config.json").is_file() else teacher
        )
        tokenizer = load_tokenizer(tok_src)
        if stage == "general":
            splits = None
            texts = _general_texts(data, unlabelled_file)
            examples = [Example(text=t) for t in texts]
            t_model = freeze(load_teacher(teacher))
        else:
            splits = load_data(data)
            if do_test:
                check_scorable(splits, "test", data, "--do-test")
            if augmented_file:
                from spikeformers.augment import augmented_splits

                splits = augmented_splits(splits, augmented_file)
            examples = splits.train
            t_model = freeze(load_teacher(teacher, num_labels=splits.task.num_labels))
        student = _student(model, tokenizer, splits, model_overrides or {})
        _check_vocab(student, tokenizer, f"--model {model}")
        if tok_src != teacher:
            _check_same_vocabulary(tokenizer, teacher, f"--model {model}")
        if fresh and init_embeddings:
            init_embeddings_from_teacher(student, t_model)
        if freeze_embeddings:
            student.get_input_embeddings().weight.requires_grad_(False)
        distiller = Distiller(student, t_model, dcfg)
        if cache_teacher:
            ds = encode_examples(examples, tokenizer, max_length=data.max_length)
            pad = tokenizer.pad_token_id or 0
            distiller.cache_teacher_outputs(
                ds,
                device=dev,
                batch_size=train.eval_batch_size,
                pad_token_id=pad,
                precision=train.precision,
            )
        if env.is_main:
            write_run_config(
                out,
                command,
                model=model,
                teacher=teacher,
                data=data,
                unlabelled_file=unlabelled_file,
                augmented_file=augmented_file,
                distill=dcfg,
                train=train,
                do_test=do_test,
                model_overrides=model_overrides,
                init_embeddings=init_embeddings,
                freeze_embeddings=freeze_embeddings,
                cache_teacher=cache_teacher,
                layer_map=distiller.layer_map,
                device=dev,
                student_config=student.config.to_dict(),
                data_info=splits.info if splits else {"texts": len(examples)},
                world_size=env.world_size,
            )
        train_loader = _train_loader(examples, tokenizer, data, train, env)
        if splits is not None:
            eval_fn = _evaluator(
                student,
                splits.validation,
                tokenizer,
                data,
                train.eval_batch_size,
                splits.task,
                dev,
                env,
            )
            key, mode = _selection(splits)
        else:
            eval_fn, key, mode = None, None, "max"
        result = fit(
            distiller,
            train_loader,
            train,
            device=dev,
            select_module=student,
            evaluate_fn=eval_fn,
            select_key=key,
            select_mode=mode,
            log_path=out / "train_log.jsonl",
            desc=command,
            show_progress=show_progress,
            checkpoint=ckpt_cfg,
            dist_env=env,
            callbacks=open_trackers(report_to, out, is_main=env.is_main),
        )
        if env.is_main:
            _save_projections(distiller, out)

        def metrics() -> dict:
            if splits is not None:
                return _final_metrics(
                    student, splits, tokenizer, data, train, dev, result, env, do_test=do_test
                )
            return {
                "seconds": round(result.seconds, 2),
                "steps": result.steps,
                "texts": len(examples),
                "parameters": student.num_parameters(),
            }

        return _finish_run(out, env, student, tokenizer, metrics)
    finally:
        _detach_file_log(log_handler)


def _save_projections(distiller: Distiller, out: Path) -> None:
    from safetensors.torch import save_file

    from spikeformers.utils.io import atomic_write

    state = {k: v.detach().contiguous().cpu() for k, v in distiller.projection_state_dict().items()}
    if state:
        atomic_write(out / "distiller.safetensors", lambda p: save_file(state, str(p)))


def _general_texts(data: DataArgs, unlabelled_file: str | None) -> list[str]:
    if unlabelled_file:
        if data.source() != "default":
            logger.warning(
                "general stage: distilling on --unlabelled-file %s; the task data (%s) is not read",
                unlabelled_file,
                data.task or data.dataset or ", ".join(data.files().values()),
            )
        texts = load_unlabelled_text(unlabelled_file)
    else:
        splits = load_data(data)
        texts = [e.text if e.text_pair is None else f"{e.text} {e.text_pair}" for e in splits.train]
    if not texts:
        raise ValueError("the general stage found no text to distil on")
    for i, t in enumerate(texts):
        if len(t) > MAX_TEXT_CHARS:
            where = unlabelled_file or "the training texts"
            raise DataError(
                f"text {i + 1} has {len(t):,} characters (the limit is {MAX_TEXT_CHARS:,}): is a "
                "line break missing?",
                path=where,
            )
    return texts


def train_direct(
    *,
    out_dir: str | Path,
    model: str = "spikebert-mini",
    tokenizer: str | None = None,
    data: DataArgs | None = None,
    train: TrainConfig | None = None,
    model_overrides: dict | None = None,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    checkpointing: CheckpointArgs | None = None,
    report_to: list[str] | None = None,
    do_test: bool = False,
) -> dict:
    """Train a spiking model directly with cross-entropy (no teacher): the baseline.

    ``tokenizer`` names the tokenizer (a teacher folder or Hub id; default the packaged MiniLM's).
    Regression tasks train with MSE. The test split is scored only with ``do_test``.
    """
    train = train or TrainConfig()
    data = data or DataArgs()
    out = prepare_out_dir(out_dir, "train", overwrite=overwrite)
    env = init_distributed(device)
    log_handler = _attach_file_log(out, env.is_main)
    try:
        dev = env.device
        ckpt_cfg = _start_training(out, env, train, checkpointing, overwrite)
        seed_everything(train.seed)
        splits = load_data(data)
        if do_test:
            check_scorable(splits, "test", data, "--do-test")
        saved_tok = is_saved_model(model) and (Path(model) / "tokenizer_config.json").is_file()
        tok = load_tokenizer(model if saved_tok else tokenizer)
        student = _student(model, tok, splits, model_overrides or {})
        _check_vocab(student, tok, f"--model {model}")
        if env.is_main:
            write_run_config(
                out,
                "train",
                model=model,
                tokenizer=tokenizer,
                data=data,
                train=train,
                do_test=do_test,
                model_overrides=model_overrides,
                device=dev,
                data_info=splits.info,
                student_config=student.config.to_dict(),
                world_size=env.world_size,
            )
        train_loader = _train_loader(splits.train, tok, data, train, env)
        val_eval = _evaluator(
            student, splits.validation, tok, data, train.eval_batch_size, splits.task, dev, env
        )
        key, mode = _selection(splits)
        result = fit(
            SupervisedObjective(student),
            train_loader,
            train,
            device=dev,
            select_module=student,
            evaluate_fn=val_eval,
            select_key=key,
            select_mode=mode,
            log_path=out / "train_log.jsonl",
            desc="train",
            show_progress=show_progress,
            checkpoint=ckpt_cfg,
            dist_env=env,
            callbacks=open_trackers(report_to, out, is_main=env.is_main),
        )
        return _finish_run(
            out,
            env,
            student,
            tok,
            lambda: _final_metrics(
                student, splits, tok, data, train, dev, result, env, do_test=do_test
            ),
        )
    finally:
        _detach_file_log(log_handler)


def load_any(model_dir: str | Path, overrides: dict | None = None) -> tuple[nn.Module, Any]:
    """Load a saved student or teacher run directory with its tokenizer.

    ``overrides`` changes a saved spiking model's config at load time (inference settings such
    as ``time_steps``); a ``transformers`` teacher takes none.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"--model {model_dir}: no such directory")
    cfg = read_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    if is_saved_model(model_dir):
        return load_model(model_dir, **(overrides or {})), tokenizer
    if overrides:
        raise ValueError(f"--set: {model_dir} is not a spikeformers model; it takes no overrides")
    if cfg.get("model_type") is None:
        raise ValueError(f"{model_dir / CONFIG_NAME}: no model_type")
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager"
    ), tokenizer


def evaluate_model(
    *,
    model_dir: str | Path,
    data: DataArgs | None = None,
    split: Literal["train", "validation", "test"] = "test",
    batch_size: int = 64,
    device: str | None = None,
    model_overrides: dict | None = None,
) -> dict:
    """Score a saved student or teacher on a split: task metrics and firing rates.

    ``model_overrides`` sets inference-time config of a saved spiking model, e.g.
    ``{"time_steps": 64}`` to evaluate a SpikingBERT student at another ``T``.
    """
    data = data or DataArgs()
    dev = pick_device(device)
    model, tokenizer = load_any(model_dir, model_overrides)
    splits = load_data(data, need_train=False, labels=model_label_set(model))
    examples = check_scorable(splits, split, data, f"--split {split}")
    model.to(dev)
    start = time.perf_counter()
    metrics = evaluate(
        model, _loader(examples, tokenizer, data, batch_size, shuffle=False), splits.task, dev
    )
    metrics.update(
        split=split, task=splits.task.name, seconds=round(time.perf_counter() - start, 2)
    )
    if model_overrides:
        metrics["model_overrides"] = dict(model_overrides)
    return metrics


@torch.no_grad()
def predict_texts(
    *,
    model_dir: str | Path,
    texts: list[str],
    text_pairs: list[str] | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    device: str | None = None,
) -> list[dict]:
    """Predict labels for raw texts: ``[{"text", "label", "label_id", "probs"}, ...]``.

    A regression model (one output) gives ``[{"text", <target name>: value}, ...]``.
    """
    dev = pick_device(device)
    model, tokenizer = load_any(model_dir)
    model.to(dev).eval()
    names = _label_names(model)
    pairs = text_pairs or [None] * len(texts)
    examples = [Example(text=t, text_pair=p) for t, p in zip(texts, pairs, strict=True)]
    loader = _loader(
        examples, tokenizer, DataArgs(max_length=max_length), batch_size, shuffle=False
    )
    from spikeformers.evaluation import predict

    logits, _ = predict(model, loader, dev)
    if logits.shape[-1] == 1:  # regression: the predicted value
        return [
            {"text": t, names[0] if names else "score": round(float(z), 6)}
            for t, z in zip(texts, logits[:, 0], strict=True)
        ]
    probs = logits.softmax(-1)
    out = []
    for text, p in zip(texts, probs, strict=True):
        i = int(p.argmax())
        out.append(
            {
                "text": text,
                "label": names[i] if i < len(names) else str(i),
                "label_id": i,
                "probs": [round(float(x), 6) for x in p],
            }
        )
    return out


def _label_names(model: nn.Module) -> list[str]:
    cfg = model.config
    if isinstance(model, SpikingModel):
        return list(cfg.label_names) or [str(i) for i in range(cfg.num_labels)]
    id2label = getattr(cfg, "id2label", None) or {}
    return [id2label.get(i, str(i)) for i in range(cfg.num_labels)]
