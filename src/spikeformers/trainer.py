"""The training loop shared by teacher fine-tuning, direct training and distillation.

Plain Python in small named functions: ``build_optimizer``, ``build_scheduler``, ``train_step``,
``fit``. What is optimised is an *objective*: a module whose ``forward(batch)`` returns a dict of
scalar loss terms with the total under ``"loss"`` (``SupervisedObjective`` for CE training, the
``Distiller`` for distillation). Model selection evaluates on the validation split, never on test,
and restores the best weights of the selected module at the end.

The same loop runs in one process or under ``torchrun`` (DDP around the objective, data sharded by
:class:`~spikeformers.distributed.ShardedBatchSampler`, metrics reduced over ranks), with gradient
accumulation, bf16/fp16 autocast, and periodic checkpoints (:mod:`spikeformers.checkpoint`) from
which a killed run resumes to the same final weights. The loss is checked for NaN/inf on the device
every step (no host sync) and the flag is read on log steps and before every checkpoint, so a
checkpoint never holds a diverged model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from spikeformers import checkpoint as ckpt
from spikeformers.distributed import (
    DistEnv,
    ShardedBatchSampler,
    all_gather_object,
    all_reduce_sum,
    broadcast_object,
    current_env,
    wrap_ddp,
)
from spikeformers.evaluation import forward_logits, to_device
from spikeformers.models.base import classification_loss
from spikeformers.utils.allocator import set_malloc_mmap_threshold

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16"]
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings of one run."""

    epochs: float = 3.0
    """Passes over the training data (fractions allowed)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides ``epochs`` when smaller)."""
    batch_size: int = 32
    """Examples per optimizer step: the global batch, over all processes and accumulation steps
    (each process sees ``batch_size / (world_size * grad_accum)`` per micro-step)."""
    eval_batch_size: int = 64
    """Examples per evaluation batch."""
    lr: float = 5e-4
    """Peak learning rate (AdamW)."""
    weight_decay: float = 5e-3
    """AdamW weight decay (not applied to biases, norms and embeddings)."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate decay after warm-up."""
    warmup_ratio: float = 0.0
    """Fraction of steps of linear warm-up."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value (``None``: off)."""
    evals_per_epoch: int = 1
    """Validation passes per epoch (for model selection)."""
    log_every: int = 20
    """Steps between log records; also how often the on-device NaN/inf flag of the loss is read
    (it is read before every checkpoint too)."""
    seed: int = 0
    """Seed of initialisation, shuffling and dropout."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step on each process."""
    drop_last: bool = False
    """Skip each epoch's last batch when it is smaller than ``batch_size`` (one short batch gets
    a full step's weight, which can move a small model noticeably)."""
    precision: Precision = "fp32"
    """``fp32``; ``bf16`` autocast (CPU or GPU); ``fp16`` autocast with a GradScaler (GPU only)."""
    gradient_checkpointing: bool = False
    """Recompute each block in backward instead of storing its activations (less memory, one
    more forward per step); calls ``gradient_checkpointing_enable()`` of the trained model."""
    malloc_mmap_threshold: int = 0
    """Opt-in low-memory mode (e.g. 65536). On CPU with glibc, memory blocks of at least this
    many bytes are mapped on their own and returned to the system when freed, so peak memory
    follows the live tensors instead of the allocator's high-water mark (0.4-0.45x the peak RSS
    of a SpikeBERT step, 0.7-0.75x for SNN-BERT and SpikingBERT). It costs CPU time: every such
    block is fresh memory from the kernel (measured 5-10x the page faults and about 1.9-2.3x the
    CPU seconds per step at the quickstart sizes, docs/RESULTS.md); process-wide, set when
    training starts. 0 (default): leave glibc's dynamic threshold alone (faster steps, higher
    peak). See :mod:`spikeformers.utils.allocator`."""

    def __post_init__(self) -> None:
        if self.epochs <= 0 and not self.max_steps:
            raise ValueError("epochs must be > 0 (or give max_steps)")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch sizes must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size (--batch-size) {self.batch_size} is not divisible by grad_accum "
                f"(--grad-accum) {self.grad_accum}"
            )
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if not 0 <= self.malloc_mmap_threshold <= 32 * 2**20:
            raise ValueError(
                f"malloc_mmap_threshold must be in 0 .. 33554432 bytes, got "
                f"{self.malloc_mmap_threshold}"
            )


class TrainCallback(Protocol):
    """Receives what the loop logs (rank 0 only); see :mod:`spikeformers.tracking`."""

    def on_log(self, record: dict) -> None:
        """One record of ``train_log.jsonl``: ``{"step", "lr", <loss terms>}`` plus ``"interval"``
        on log steps, or ``{"step", "epoch", "validation": {...}}`` after a validation pass.

        ``interval`` (given to callbacks only, not written to ``train_log.jsonl``, which stays
        identical when a run resumes) covers the optimizer steps since the previous training
        record: ``{"steps", "examples", "tokens", "seconds"}`` (global examples and real tokens,
        ``tokens`` ``None`` when the batches carry no host-side ``attention_mask``; training
        seconds, validation and checkpoint time excluded)."""

    def on_train_end(self) -> None:
        """The loop has ended (normally or by an exception): flush and close."""


def check_precision(precision: str, device: torch.device) -> None:
    """Raise a clear error when ``precision`` cannot run on ``device``."""
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            "--precision fp16 needs a CUDA GPU (it trains with a GradScaler); on CPU use "
            "--precision bf16 or fp32"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("--precision bf16: this GPU has no bfloat16 support; use fp16 or fp32")


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=_AMP_DTYPES[precision])


class SupervisedObjective(nn.Module):
    """Cross-entropy (MSE for regression) on gold labels: direct training and teacher fine-tuning.

    Works for spikeformers models and ``transformers`` classifiers.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def trainable_parameters(self) -> list[nn.Parameter]:  # noqa: D102
        return [p for p in self.model.parameters() if p.requires_grad]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: D102
        loss = classification_loss(forward_logits(self.model, batch), batch["labels"])
        return {"loss": loss, "ce": loss}


def build_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, norm scales or 1-D parameters).

    The fused kernel is used where PyTorch has one (float parameters on CPU or CUDA): on CPU it
    updates a large word embedding several times faster than the default ``foreach`` path, and
    that update is a large share of a small student's step.
    """
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused or None)


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine / linear decay to 0 (or constant)."""
    warmup = int(cfg.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if cfg.schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps the run will take."""
    steps = math.ceil(cfg.epochs * steps_per_epoch) if cfg.epochs > 0 else cfg.max_steps
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


MicroBatches = list[tuple[dict[str, torch.Tensor], float]]


def train_step(
    objective: nn.Module,
    batch: dict[str, torch.Tensor] | MicroBatches,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    params: list[nn.Parameter],
    grad_clip: float | None,
    *,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, torch.Tensor]:
    """One optimizer step over one batch or several micro-batches (gradient accumulation).

    Args:
        objective: The objective, or its DDP wrapper (gradients are then synchronised on the last
            micro-batch only).
        batch: A batch on the device, or ``[(batch, loss_scale), ...]``: each micro-batch's loss
            is multiplied by its scale (see :class:`~spikeformers.distributed.ShardedBatchSampler`)
            before ``backward``.
        opt: Optimizer.
        sched: Scheduler, stepped once.
        params: The trained parameters (for clipping).
        grad_clip: Max global gradient norm, or ``None``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast on the batch's device).
        scaler: GradScaler for fp16.

    Returns:
        The scale-weighted sums of the detached loss terms (no host sync here).
    """
    micro = [(batch, 1.0)] if isinstance(batch, dict) else list(batch)
    opt.zero_grad(set_to_none=True)
    totals: dict[str, torch.Tensor] = {}
    for k, (b, scale) in enumerate(micro):
        device_type = b["input_ids"].device.type if "input_ids" in b else "cpu"
        # DDP: all-reduce gradients once, on the last micro-batch
        defer_sync = k < len(micro) - 1 and hasattr(objective, "no_sync")
        with objective.no_sync() if defer_sync else contextlib.nullcontext():
            with autocast(precision, device_type):
                terms = objective(b)
            loss = terms["loss"] * scale if scale != 1.0 else terms["loss"]
            (scaler.scale(loss) if scaler is not None else loss).backward()
        for name, v in terms.items():
            v = v.detach().float() * scale
            totals[name] = totals[name] + v if name in totals else v
    if scaler is not None:
        scaler.unscale_(opt)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    sched.step()
    return totals


@dataclass
class TrainResult:
    """What ``fit`` did: steps, seconds, validation history and the selected evaluation."""

    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    examples_seen: int = 0
    """Training examples in the batches trained on, summed over epochs and ranks (an example
    seen in two epochs counts twice); kept across a resume."""
    tokens_seen: int | None = 0
    """Real tokens (``attention_mask`` ones) in those batches; ``None`` when a batch had no CPU
    ``attention_mask`` (or the run resumed from a checkpoint that did not count them)."""

    def to_dict(self) -> dict:  # noqa: D102
        return asdict(self)


def _better(new: float, old: float | None, mode: str) -> bool:
    return old is None or (new > old if mode == "max" else new < old)


class _LossWatch:
    """Remembers the first step whose loss was NaN/inf, on the device (no host sync per step)."""

    def __init__(self) -> None:
        self.first: torch.Tensor | None = None  # () long, -1 while all losses are finite
        self.value: torch.Tensor | None = None  # () float, the first bad loss

    def update(self, loss: torch.Tensor, step: int) -> None:
        if self.first is None:
            self.first = torch.full((), -1, dtype=torch.long, device=loss.device)
            self.value = torch.zeros((), dtype=torch.float32, device=loss.device)
        take = ~torch.isfinite(loss) & (self.first < 0)
        self.first = torch.where(take, torch.full_like(self.first, step), self.first)
        self.value = torch.where(take, loss.float(), self.value)

    def check(self, env: DistEnv, desc: str, last_good: Path | None, step: int) -> None:
        """Raise ``FloatingPointError`` on every rank if any rank saw a non-finite loss."""
        mine = (-1, 0.0) if self.first is None else (int(self.first), float(self.value))
        bad = [r for r in all_gather_object(mine, env) if r[0] >= 0]
        if bad:
            first, value = min(bad)
            where = f"; the last good checkpoint is {last_good}" if last_good else ""
            raise FloatingPointError(
                f"{desc}: loss became {value} at step {first} (checked on step {step}: the loss "
                f"is checked every log interval and before each checkpoint){where}; lower --lr, "
                "clip gradients (--grad-clip) or use --precision fp32"
            )


def _check_finite_weights(
    params: list[nn.Parameter], desc: str, step: int, last_good: Path | None
) -> None:
    """Refuse to checkpoint NaN/inf weights (a finite loss can still step into them)."""
    if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
        where = f"; the last good checkpoint is {last_good}" if last_good else ""
        raise FloatingPointError(
            f"{desc}: the weights became NaN/inf by step {step} (the loss was still finite){where}"
        )


def _reduce_terms(terms: dict[str, torch.Tensor], env: DistEnv) -> dict[str, float]:
    """Global-batch means of the loss terms (host sync: log steps only)."""
    names = sorted(terms)
    t = torch.stack([terms[k] for k in names])
    t = all_reduce_sum(t, env) / env.world_size
    return dict(zip(names, t.tolist(), strict=True))


class _Interval:
    """Training examples, real tokens and seconds since the last training log record.

    Counted from each micro-batch on the host before it moves to the device (no device sync):
    examples from the batch's first dimension, real tokens from ``attention_mask`` when it is a
    CPU tensor (``None`` when some batch has no CPU mask). Seconds are training time only:
    validation passes and checkpoint saves are paused out. The clock is read at log steps, right
    after the loss terms' host sync, so the steps logged have finished on the device.
    """

    def __init__(self) -> None:
        self.seen = [0, 0, 0]
        """Examples, real tokens and batches without a CPU mask over the whole run (this rank:
        never reset)."""
        self.reset()

    def reset(self) -> None:  # noqa: D102
        self.steps, self.examples, self.tokens, self.seconds = 0, 0, 0, 0.0
        self.tokens_known = True
        self._since: float | None = time.perf_counter()

    def pause(self) -> None:
        """Stop the clock (before a validation pass or a checkpoint save)."""
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def resume(self) -> None:  # noqa: D102
        if self._since is None:
            self._since = time.perf_counter()

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Count one micro-batch (host tensors)."""
        ids = batch.get("input_ids", next(iter(batch.values()), None))
        examples = int(ids.shape[0]) if isinstance(ids, torch.Tensor) and ids.dim() else 0
        mask = batch.get("attention_mask")
        known = isinstance(mask, torch.Tensor) and mask.device.type == "cpu"
        tokens = int(mask.sum()) if known else 0
        self.examples += examples
        self.tokens += tokens
        self.tokens_known &= known
        self.seen = [self.seen[0] + examples, self.seen[1] + tokens, self.seen[2] + (not known)]

    def totals(self, env: DistEnv, prior: tuple[int, int | None]) -> tuple[int, int | None]:
        """``(examples, tokens)`` seen in the whole run, summed over ranks, plus ``prior`` (the
        totals a resumed checkpoint recorded). Every rank must call it (a collective)."""
        t = torch.tensor(self.seen, device=env.device)
        examples, tokens, unknown = all_reduce_sum(t, env).tolist()
        known = not unknown and prior[1] is not None
        return prior[0] + int(examples), prior[1] + int(tokens) if known else None

    def record(self, env: DistEnv) -> dict[str, float | int | None]:
        """The ``interval`` field of a log record (examples and tokens summed over ranks);
        resets the counts."""
        self.pause()
        counts = [self.examples, self.tokens, int(not self.tokens_known)]
        t = torch.tensor(counts, device=env.device)
        examples, tokens, unknown = all_reduce_sum(t, env).tolist()
        out = {
            "steps": self.steps,
            "examples": int(examples),
            "tokens": None if unknown else int(tokens),
            "seconds": self.seconds,
        }
        self.reset()
        return out


@dataclass
class _Selection:
    best_state: dict[str, torch.Tensor] | None = None
    best_value: float | None = None


@dataclass
class _Run:
    """What a checkpoint saves and restores."""

    objective: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    cfg: TrainConfig
    env: DistEnv
    per_epoch: int
    result: TrainResult
    interval: _Interval
    sel: _Selection = field(default_factory=_Selection)
    prior_seen: tuple[int, int | None] = (0, 0)
    """Examples and tokens seen before the checkpoint this run resumed from."""


def fit(
    objective: nn.Module,
    train_loader: DataLoader,
    cfg: TrainConfig,
    *,
    device: torch.device,
    select_module: nn.Module,
    evaluate_fn: Callable[[], dict] | None = None,
    select_key: str | None = None,
    select_mode: Literal["max", "min"] = "max",
    log_path: Path | None = None,
    desc: str = "train",
    show_progress: bool = True,
    checkpoint: ckpt.CheckpointConfig | None = None,
    dist_env: DistEnv | None = None,
    callbacks: Sequence[TrainCallback] = (),
) -> TrainResult:
    """Train ``objective`` and keep the best state of ``select_module``.

    Args:
        objective: Module whose ``forward(batch)`` returns ``{"loss": ..., <terms>}`` and which
            has ``trainable_parameters()``.
        train_loader: Yields collated batches. Distributed training, ``grad_accum > 1`` and
            checkpoints need the loader of :func:`spikeformers.distributed.make_train_loader`.
        cfg: Optimisation settings.
        device: Where to train (the objective is moved there).
        select_module: Module whose weights are selected (the student or the teacher).
        evaluate_fn: Validation pass returning a metrics dict (called on every rank);
            ``None`` keeps the last weights.
        select_key: Metric used for selection (e.g. ``"accuracy"`` or ``"loss"``).
        select_mode: Whether larger (``"max"``) or smaller (``"min"``) is better.
        log_path: JSON-lines file receiving training and validation records (rank 0 only).
        desc: Progress-bar label.
        show_progress: Show a tqdm bar per epoch (rank 0 only).
        checkpoint: Periodic checkpoints and resuming; ``None``: neither.
        dist_env: This process's place in a distributed job (default: from the process group).
        callbacks: Receive every log record on rank 0 (experiment trackers); each one's
            ``on_train_end`` is called when the loop ends.
    """
    env = dist_env or current_env(device)
    check_precision(cfg.precision, device)
    if cfg.malloc_mmap_threshold and device.type == "cpu":
        set_malloc_mmap_threshold(cfg.malloc_mmap_threshold)
    if cfg.gradient_checkpointing:
        enable = getattr(select_module, "gradient_checkpointing_enable", None)
        if enable is None:
            raise ValueError(
                f"--gradient-checkpointing: {type(select_module).__name__} does not support it"
            )
        enable()
    objective.to(device)
    params = objective.trainable_parameters()
    opt = build_optimizer(params, cfg)
    sampler = train_loader.batch_sampler
    if not isinstance(sampler, ShardedBatchSampler):
        loader_drops = getattr(sampler, "drop_last", getattr(train_loader, "drop_last", False))
        sampler = None
        if env.is_distributed or cfg.grad_accum > 1 or checkpoint is not None:
            raise ValueError(
                "distributed training, grad_accum > 1 and checkpoints need the loader of "
                "spikeformers.distributed.make_train_loader"
            )
        if cfg.drop_last and not loader_drops:
            raise ValueError(
                "TrainConfig.drop_last is set but the train loader keeps its last short batch; "
                "build it with drop_last=True"
            )
    elif (sampler.grad_accum, sampler.world_size, sampler.drop_last) != (
        cfg.grad_accum,
        env.world_size,
        cfg.drop_last,
    ):
        raise ValueError(
            "the train loader was built for another grad_accum, world size or drop_last"
        )
    accum = cfg.grad_accum
    per_epoch = sampler.num_global_batches if sampler else len(train_loader)
    if per_epoch == 0:
        raise ValueError("the training data is empty")
    steps_total = total_steps(cfg, per_epoch)
    sched = build_scheduler(opt, cfg, steps_total)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    eval_every = max(1, per_epoch // max(1, cfg.evals_per_epoch))
    result = TrainResult(steps=0, seconds=0.0)
    interval = _Interval()
    run = _Run(objective, opt, sched, scaler, cfg, env, per_epoch, result, interval)
    sel = run.sel
    prior_seconds, last_good = 0.0, None
    if checkpoint is not None and checkpoint.resume:
        resumed = _resume(run, checkpoint, log_path)
        if resumed is not None:
            last_good, prior_seconds = resumed
    model = wrap_ddp(objective, env)
    log = log_path.open("a", encoding="utf-8") if log_path and env.is_main else None
    callbacks = list(callbacks) if env.is_main else []
    watch = _LossWatch()
    start = time.perf_counter()
    n_epochs = math.ceil(steps_total / per_epoch)
    logger.info(
        "%s: %d steps (%d per epoch), global batch %d = %d process(es) x %d accumulation x %d, "
        "%s, %d parameters trained%s",
        desc,
        steps_total,
        per_epoch,
        cfg.batch_size,
        env.world_size,
        accum,
        cfg.batch_size // (env.world_size * accum),
        cfg.precision,
        sum(p.numel() for p in params),
        f", resuming after step {result.steps}" if result.steps else "",
    )

    def run_eval() -> None:
        if evaluate_fn is None:
            return
        interval.pause()
        metrics = evaluate_fn()
        record = {"step": result.steps, "epoch": result.steps / per_epoch, "validation": metrics}
        result.history.append(record)
        if log:
            log.write(json.dumps(record, default=float) + "\n")
            log.flush()
        for cb in callbacks:
            cb.on_log(record)
        value = metrics.get(select_key) if select_key else None
        if value is not None and _better(value, sel.best_value, select_mode):
            sel.best_value = value
            # copy=True: own storage per tensor (tied weights stay loadable from safetensors)
            sel.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in select_module.state_dict().items()
            }
            result.best = record
        logger.info(
            "%s step %d validation %s",
            desc,
            result.steps,
            {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
        )

    def save() -> None:
        nonlocal last_good
        _check_finite_weights(params, desc, result.steps, last_good)
        seconds = prior_seconds + time.perf_counter() - start
        last_good = _save(run, checkpoint, log, seconds)

    try:
        first_epoch, first_batch = divmod(result.steps, per_epoch)
        for epoch in range(first_epoch, n_epochs):
            if result.steps >= steps_total:
                break
            first = first_batch if epoch == first_epoch else 0
            if sampler is not None:
                sampler.set_epoch(epoch, first)
            model.train()
            bar = tqdm(
                total=per_epoch,
                initial=first,
                desc=f"{desc} epoch {epoch + 1}/{n_epochs}",
                disable=not (show_progress and env.is_main),
                leave=False,
                dynamic_ncols=True,
            )
            batches = iter(train_loader)
            for i in range(first, per_epoch):
                micro = []
                for _ in range(accum):
                    b = next(batches)
                    scale = b.pop("loss_scale", 1.0)
                    interval.add(b)
                    micro.append((to_device(b, device), scale))
                terms = train_step(
                    model,
                    micro,
                    opt,
                    sched,
                    params,
                    cfg.grad_clip,
                    precision=cfg.precision,
                    scaler=scaler,
                )
                result.steps += 1
                interval.steps += 1
                bar.update(1)
                watch.update(terms["loss"], result.steps)
                final = result.steps >= steps_total
                log_due = result.steps % cfg.log_every == 0 or final
                save_due = (
                    checkpoint is not None
                    and checkpoint.save_every > 0
                    and result.steps % checkpoint.save_every == 0
                )
                if log_due or save_due:
                    watch.check(env, desc, last_good, result.steps)
                if log_due:
                    values = _reduce_terms(terms, env)
                    bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()})
                    rec = {"step": result.steps, "lr": sched.get_last_lr()[0], **values}
                    if log:
                        log.write(json.dumps(rec) + "\n")
                        log.flush()  # so a watcher (or a crash) sees progress
                    # timing is for the trackers only: train_log.jsonl stays the same on resume
                    timed = {**rec, "interval": interval.record(env)}
                    for cb in callbacks:
                        cb.on_log(timed)
                if final or i + 1 == per_epoch or (i + 1) % eval_every == 0:
                    run_eval()
                    model.train()
                if save_due:
                    interval.pause()
                    save()
                interval.resume()
                if final:
                    break
            bar.close()
    finally:
        if log:
            log.close()
        for cb in callbacks:
            cb.on_train_end()
    if sel.best_state is not None:
        select_module.load_state_dict(sel.best_state)
    result.seconds = prior_seconds + time.perf_counter() - start
    result.examples_seen, result.tokens_seen = interval.totals(env, run.prior_seen)
    return result


def _save(run: _Run, checkpoint: ckpt.CheckpointConfig, log, seconds: float) -> Path:
    """Write a checkpoint from rank 0 with every rank's RNG state; all ranks see the outcome."""
    objective, opt, sched, scaler = run.objective, run.opt, run.sched, run.scaler
    cfg, env, per_epoch, result, sel = run.cfg, run.env, run.per_epoch, run.result, run.sel
    device = next(iter(objective.parameters())).device
    rngs = all_gather_object(ckpt.capture_rng(device), env)
    seen = run.interval.totals(env, run.prior_seen)
    folder, error = checkpoint.dir / f"step-{result.steps}", None
    if env.is_main:
        try:
            if log:
                log.flush()
            state = {
                "step": result.steps,
                "epoch": result.steps // per_epoch,
                "batch_in_epoch": result.steps % per_epoch,
                "steps_per_epoch": per_epoch,
                "world_size": env.world_size,
                "train_config": json.dumps(asdict(cfg)),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rngs,
                "selection": json.dumps(
                    {"best_value": sel.best_value, "best": result.best, "history": result.history},
                    default=float,
                ),
                "log_offset": log.tell() if log else None,
                "seconds": seconds,
                "seen": list(seen),
            }
            folder = ckpt.save(
                checkpoint.dir,
                result.steps,
                weights=ckpt.trainable_state(objective),
                best=sel.best_state,
                trainer_state=state,
                meta={"train_config": asdict(cfg), "world_size": env.world_size},
                keep_last=checkpoint.keep_last,
            )
            logger.debug("checkpoint %s", folder)
        except Exception as e:  # reported on every rank below, then re-raised here
            error = e
    remote = broadcast_object(None if error is None else f"{type(error).__name__}: {error}", env)
    if error is not None:
        raise error
    if remote is not None:
        raise OSError(f"rank 0 could not write checkpoint step-{result.steps}: {remote}")
    return folder


def _resume(
    run: _Run, checkpoint: ckpt.CheckpointConfig, log_path: Path | None
) -> tuple[Path, float] | None:
    """Restore the latest complete checkpoint; ``None`` when there is none (start from scratch)."""
    objective, opt, sched, scaler = run.objective, run.opt, run.sched, run.scaler
    cfg, env, per_epoch, result, sel = run.cfg, run.env, run.per_epoch, run.result, run.sel
    found, loaded = None, None
    if env.is_main:
        try:
            loaded = ckpt.load_latest(checkpoint.dir)
            found = ("ok", str(loaded.folder)) if loaded else ("none", "")
        except ckpt.CheckpointError as e:
            found, loaded = ("error", str(e)), None
    found = broadcast_object(found, env)
    if found[0] == "error":
        raise ckpt.CheckpointError(found[1])
    if found[0] == "none":
        logger.info("no checkpoint in %s: starting from scratch", checkpoint.dir)
        return None
    folder = Path(found[1])
    if not env.is_main:
        if not folder.is_dir():
            raise ckpt.CheckpointError(
                f"rank {env.rank} cannot see {folder}: resuming a multi-node run needs the "
                "output folder on a filesystem shared by all nodes"
            )
        loaded = ckpt.load(folder)
    state = loaded.state
    ckpt.check_compatible(json.loads(state["train_config"]), cfg, folder)
    if state["steps_per_epoch"] != per_epoch:
        raise ValueError(
            f"cannot resume from {folder}: it has {state['steps_per_epoch']} steps per epoch, this "
            f"run {per_epoch}; the training data differs from the interrupted run's"
        )
    device = next(iter(objective.parameters())).device
    ckpt.load_trainable_state(objective, loaded.weights, folder / ckpt.WEIGHTS)
    try:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise ckpt.CheckpointError(f"{folder / ckpt.STATE}: does not fit this run ({e})") from e
    rngs = state["rng"]
    if len(rngs) != env.world_size:
        logger.warning(
            "checkpoint written by %d process(es), resumed on %d: data order and global batches "
            "are the same, dropout randomness is not",
            len(rngs),
            env.world_size,
        )
    ckpt.restore_rng(rngs[env.rank % len(rngs)], device)
    selection = json.loads(state["selection"])
    result.steps = loaded.step
    examples, tokens = state.get("seen") or (0, None)  # older checkpoints did not count them
    run.prior_seen = (int(examples), None if tokens is None else int(tokens))
    result.history = selection["history"]
    result.best = selection["best"]
    sel.best_value = selection["best_value"]
    sel.best_state = loaded.best
    if env.is_main:
        ckpt.discard_after(checkpoint.dir, loaded.step)
        offset = state.get("log_offset")
        stale = offset is not None and log_path is not None and log_path.is_file()
        if stale and log_path.stat().st_size > offset:  # drop records written after it
            with log_path.open("r+b") as f:
                f.truncate(offset)
    logger.info("resumed from %s (step %d)", folder, loaded.step)
    return folder, float(state.get("seconds", 0.0))
