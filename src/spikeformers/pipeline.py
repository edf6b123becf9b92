"""High-level workflows: the Python API behind every CLI subcommand.

Each function takes typed arguments, writes a self-describing run directory and returns its
metrics. A run directory holds:

- ``config.json`` + ``model.safetensors``: the model (a spikeformers student, or a ``transformers``
  teacher for ``finetune_teacher``), plus the tokenizer files;
- ``run_config.json``: every resolved setting of the run;
- ``train_log.jsonl``: training and validation records;
- ``metrics.json``: the final validation/test metrics, timings and sizes.
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
from spikeformers.data import (
    DatasetSplits,
    Example,
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
    init_embeddings_from_teacher,
)
from spikeformers.distill.teacher import freeze, load_teacher, load_tokenizer
from spikeformers.evaluation import evaluate
from spikeformers.models.base import CONFIG_NAME, SpikingModel, read_config
from spikeformers.registry import is_saved_model, load_model
from spikeformers.trainer import SupervisedObjective, TrainConfig, TrainResult, fit
from spikeformers.utils.io import write_json
from spikeformers.utils.seed import pick_device, seed_everything

logger = logging.getLogger(__name__)


# BERT fine-tuning defaults (Devlin et al. 2019): small lr, linear decay, 10% warm-up.
TEACHER_TRAIN_DEFAULTS = TrainConfig(
    epochs=3, lr=5e-5, weight_decay=0.01, warmup_ratio=0.1, schedule="linear"
)


class RunDirError(ValueError):
    """An output directory cannot be used (it holds a different run)."""


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

    def source(self) -> str:
        """Which kind of source is selected; raises if several or none are given."""
        given = [
            n
            for n, v in (
                ("task", self.task),
                ("train_file", self.train_file),
                ("dataset", self.dataset),
            )
            if v
        ]
        if len(given) > 1:
            raise ValueError(f"give only one of --task, --train-file, --dataset (got {given})")
        return given[0] if given else "default"


def load_data(args: DataArgs) -> DatasetSplits:
    """Load the splits described by ``args`` (the embedded Rotten Tomatoes set by default)."""
    kind = args.source()
    if kind == "task":
        if not args.data_dir:
            raise ValueError(f"--task {args.task} needs --data-dir (the folder of its files)")
        splits = load_task(args.task, args.data_dir, seed=args.split_seed)
    elif kind == "train_file":
        splits = load_files(
            args.train_file,
            args.validation_file,
            args.test_file,
            text_column=args.text_column,
            text_pair_column=args.text_pair_column,
            label_column=args.label_column,
            encoding=args.encoding,
            seed=args.split_seed,
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
        splits = load_rotten_tomatoes(seed=args.split_seed)
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
    logger.info("data %s: %s", splits.task.name, splits.sizes())
    return splits


def prepare_out_dir(out_dir: str | Path, kind: str, *, overwrite: bool = False) -> Path:
    """Create ``out_dir``; refuse one that already holds a different kind of run.

    A directory with a ``run_config.json`` of another command (or any model not produced by this
    command) is refused unless ``overwrite``: finished work is never silently replaced by a
    different run.
    """
    out = Path(out_dir)
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


def _attach_file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("spikeformers").addHandler(handler)
    return handler


def _detach_file_log(handler: logging.Handler) -> None:
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
) -> dict[str, dict]:
    out = {}
    for split in ("validation", "test"):
        examples = getattr(splits, split)
        if examples and all(e.label is not None for e in examples):
            loader = _loader(examples, tokenizer, args, cfg.eval_batch_size, shuffle=False)
            out[split] = evaluate(model, loader, splits.task, device)
    return out


def finetune_teacher(
    *,
    data: DataArgs,
    out_dir: str | Path,
    teacher: str | None = None,
    train: TrainConfig | None = None,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> dict:
    """Fine-tune a BERT-family teacher on a task and save it (``transformers`` format).

    Returns:
        Metrics: ``{"validation": {...}, "test": {...}, "seconds": ...}``.
    """
    train = train or TEACHER_TRAIN_DEFAULTS
    out = prepare_out_dir(out_dir, "finetune-teacher", overwrite=overwrite)
    log_handler = _attach_file_log(out)
    try:
        dev = pick_device(device)
        seed_everything(train.seed)
        splits = load_data(data)
        tokenizer = load_tokenizer(teacher)
        model = load_teacher(
            teacher, num_labels=splits.task.num_labels, label_names=splits.task.label_names
        )
        write_run_config(
            out,
            "finetune-teacher",
            teacher=teacher,
            data=data,
            train=train,
            device=dev,
            data_info=splits.info,
            task=splits.task,
        )
        train_loader = _loader(
            splits.train, tokenizer, data, train.batch_size, shuffle=True, seed=train.seed
        )
        val_loader = _loader(
            splits.validation, tokenizer, data, train.eval_batch_size, shuffle=False
        )
        key, mode = _selection(splits)
        result = fit(
            SupervisedObjective(model),
            train_loader,
            train,
            device=dev,
            select_module=model,
            evaluate_fn=lambda: evaluate(model, val_loader, splits.task, dev),
            select_key=key,
            select_mode=mode,
            log_path=out / "train_log.jsonl",
            desc="finetune-teacher",
            show_progress=show_progress,
        )
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        metrics = _final_metrics(model, splits, tokenizer, data, train, dev, result)
        write_json(out / "metrics.json", metrics)
        return metrics
    finally:
        _detach_file_log(log_handler)


def _final_metrics(model, splits, tokenizer, data, train, dev, result: TrainResult) -> dict:
    metrics: dict[str, Any] = _evaluate_splits(model, splits, tokenizer, data, train, dev)
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
            return _with_new_head(student, splits)
        return load_model(model, **kw)
    if Path(model).exists():
        raise ValueError(f"--model {model}: folder has no spikeformers {CONFIG_NAME}")
    kw = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id or 0, **overrides}
    if splits is not None:
        kw.update(num_labels=splits.task.num_labels, label_names=splits.task.label_names)
    return load_model(model, **kw)


def _with_new_head(student: SpikingModel, splits: DatasetSplits) -> SpikingModel:
    cfg = dataclasses.replace(
        student.config, num_labels=splits.task.num_labels, label_names=splits.task.label_names
    )
    fresh = type(student)(cfg)
    state = {k: v for k, v in student.state_dict().items() if not k.startswith("classifier.")}
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    logger.info(
        "new classification head for %d classes (initialised fresh: %s)",
        splits.task.num_labels,
        ", ".join(missing),
    )
    return fresh


def _check_vocab(student: SpikingModel, tokenizer, where: str) -> None:
    if student.config.vocab_size != len(tokenizer):
        raise ValueError(
            f"{where}: the student's vocabulary ({student.config.vocab_size}) does not match the "
            f"tokenizer ({len(tokenizer)} tokens); use the teacher the student was built for"
        )


def distill(
    *,
    stage: Literal["general", "task"],
    out_dir: str | Path,
    model: str = "spikebert-mini",
    teacher: str | None = None,
    data: DataArgs | None = None,
    unlabelled_file: str | None = None,
    distill_config: DistillConfig | None = None,
    train: TrainConfig | None = None,
    model_overrides: dict | None = None,
    init_embeddings: bool = True,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
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
        distill_config: Loss weights; defaults per stage.
        train: Optimisation settings.
        model_overrides: Config overrides for a fresh student (e.g. ``{"time_steps": 4}``).
        init_embeddings: Copy the teacher's word embeddings into a fresh student (same width).
        device: ``cpu``, ``cuda``, ``cuda:1``... (default: CUDA when present).
        overwrite: Allow replacing a different run in ``out_dir``.
        show_progress: Show progress bars.
    """
    train = train or TrainConfig()
    data = data or DataArgs()
    dcfg = distill_config or DistillConfig.for_stage(stage)
    if dcfg.stage != stage:
        raise ValueError(f"distill_config.stage {dcfg.stage!r} != stage {stage!r}")
    command = f"distill-{stage}"
    out = prepare_out_dir(out_dir, command, overwrite=overwrite)
    log_handler = _attach_file_log(out)
    try:
        dev = pick_device(device)
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
            examples = splits.train
            t_model = freeze(load_teacher(teacher, num_labels=splits.task.num_labels))
        student = _student(model, tokenizer, splits, model_overrides or {})
        _check_vocab(student, tokenizer, f"--model {model}")
        if fresh and init_embeddings:
            init_embeddings_from_teacher(student, t_model)
        distiller = Distiller(student, t_model, dcfg)
        write_run_config(
            out,
            command,
            model=model,
            teacher=teacher,
            data=data,
            unlabelled_file=unlabelled_file,
            distill=dcfg,
            train=train,
            model_overrides=model_overrides,
            init_embeddings=init_embeddings,
            layer_map=distiller.layer_map,
            device=dev,
            student_config=student.config.to_dict(),
            data_info=splits.info if splits else {"texts": len(examples)},
        )
        train_loader = _loader(
            examples, tokenizer, data, train.batch_size, shuffle=True, seed=train.seed
        )
        if splits is not None:
            val_loader = _loader(
                splits.validation, tokenizer, data, train.eval_batch_size, shuffle=False
            )
            key, mode = _selection(splits)

            def eval_fn() -> dict:
                return evaluate(student, val_loader, splits.task, dev)
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
        )
        student.save_pretrained(out)
        tokenizer.save_pretrained(out)
        _save_projections(distiller, out)
        if splits is not None:
            metrics = _final_metrics(student, splits, tokenizer, data, train, dev, result)
        else:
            metrics = {
                "seconds": round(result.seconds, 2),
                "steps": result.steps,
                "texts": len(examples),
                "parameters": student.num_parameters(),
            }
        write_json(out / "metrics.json", metrics)
        return metrics
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
        texts = load_unlabelled_text(unlabelled_file)
    else:
        splits = load_data(data)
        texts = [e.text if e.text_pair is None else f"{e.text} {e.text_pair}" for e in splits.train]
    if not texts:
        raise ValueError("the general stage found no text to distil on")
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
) -> dict:
    """Train a spiking model directly with cross-entropy (no teacher): the baseline.

    ``tokenizer`` names the tokenizer (a teacher folder or Hub id; default the packaged MiniLM's).
    """
    train = train or TrainConfig()
    data = data or DataArgs()
    out = prepare_out_dir(out_dir, "train", overwrite=overwrite)
    log_handler = _attach_file_log(out)
    try:
        dev = pick_device(device)
        seed_everything(train.seed)
        splits = load_data(data)
        saved_tok = is_saved_model(model) and (Path(model) / "tokenizer_config.json").is_file()
        tok = load_tokenizer(model if saved_tok else tokenizer)
        student = _student(model, tok, splits, model_overrides or {})
        _check_vocab(student, tok, f"--model {model}")
        write_run_config(
            out,
            "train",
            model=model,
            tokenizer=tokenizer,
            data=data,
            train=train,
            model_overrides=model_overrides,
            device=dev,
            data_info=splits.info,
            student_config=student.config.to_dict(),
        )
        train_loader = _loader(
            splits.train, tok, data, train.batch_size, shuffle=True, seed=train.seed
        )
        val_loader = _loader(splits.validation, tok, data, train.eval_batch_size, shuffle=False)
        key, mode = _selection(splits)
        result = fit(
            SupervisedObjective(student),
            train_loader,
            train,
            device=dev,
            select_module=student,
            evaluate_fn=lambda: evaluate(student, val_loader, splits.task, dev),
            select_key=key,
            select_mode=mode,
            log_path=out / "train_log.jsonl",
            desc="train",
            show_progress=show_progress,
        )
        student.save_pretrained(out)
        tok.save_pretrained(out)
        metrics = _final_metrics(student, splits, tok, data, train, dev, result)
        write_json(out / "metrics.json", metrics)
        return metrics
    finally:
        _detach_file_log(log_handler)


def load_any(model_dir: str | Path) -> tuple[nn.Module, Any]:
    """Load a saved student or teacher run directory with its tokenizer."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"--model {model_dir}: no such directory")
    cfg = read_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    if is_saved_model(model_dir):
        return load_model(model_dir), tokenizer
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
) -> dict:
    """Score a saved student or teacher on a split: task metrics and firing rates."""
    data = data or DataArgs()
    dev = pick_device(device)
    model, tokenizer = load_any(model_dir)
    splits = load_data(data)
    examples = getattr(splits, split)
    if not examples:
        raise ValueError(f"the {split} split of {splits.task.name} is empty")
    n_labels = getattr(getattr(model, "config", None), "num_labels", None)
    if n_labels is not None and n_labels != splits.task.num_labels:
        raise ValueError(
            f"{model_dir} predicts {n_labels} classes but {splits.task.name} has "
            f"{splits.task.num_labels}"
        )
    model.to(dev)
    start = time.perf_counter()
    metrics = evaluate(
        model, _loader(examples, tokenizer, data, batch_size, shuffle=False), splits.task, dev
    )
    metrics.update(
        split=split, task=splits.task.name, seconds=round(time.perf_counter() - start, 2)
    )
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
    """Predict labels for raw texts: ``[{"text", "label", "label_id", "probs"}, ...]``."""
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
