"""The training loop shared by teacher fine-tuning, direct training and distillation.

Plain Python in small named functions: ``build_optimizer``, ``build_scheduler``, ``train_step``,
``fit``. What is optimised is an *objective*: a module whose ``forward(batch)`` returns a dict of
scalar loss terms with the total under ``"loss"`` (``SupervisedObjective`` for CE training, the
``Distiller`` for distillation). Model selection evaluates on the validation split, never on test,
and restores the best weights of the selected module at the end.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from spikeformers.evaluation import forward_logits, to_device
from spikeformers.models.base import classification_loss

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings of one run."""

    epochs: float = 3.0
    """Passes over the training data (fractions allowed)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides ``epochs`` when smaller)."""
    batch_size: int = 32
    """Examples per optimizer step."""
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
    """Steps between log records."""
    seed: int = 0
    """Seed of initialisation, shuffling and dropout."""

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
    """AdamW with weight decay on matrices only (not biases, norm scales or 1-D parameters)."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr)


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


def train_step(
    objective: nn.Module,
    batch: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    params: list[nn.Parameter],
    grad_clip: float | None,
) -> dict[str, torch.Tensor]:
    """One optimizer step; returns the detached loss terms (no host sync here)."""
    terms = objective(batch)
    loss = terms["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    sched.step()
    return {k: v.detach() for k, v in terms.items()}


@dataclass
class TrainResult:
    """What ``fit`` did: steps, seconds, validation history and the selected evaluation."""

    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    best: dict | None = None

    def to_dict(self) -> dict:  # noqa: D102
        return asdict(self)


def _better(new: float, old: float | None, mode: str) -> bool:
    return old is None or (new > old if mode == "max" else new < old)


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
) -> TrainResult:
    """Train ``objective`` and keep the best state of ``select_module``.

    Args:
        objective: Module whose ``forward(batch)`` returns ``{"loss": ..., <terms>}`` and which
            has ``trainable_parameters()``.
        train_loader: Yields collated batches.
        cfg: Optimisation settings.
        device: Where to train (the objective is moved there).
        select_module: Module whose weights are selected (the student or the teacher).
        evaluate_fn: Validation pass returning a metrics dict; ``None`` keeps the last weights.
        select_key: Metric used for selection (e.g. ``"accuracy"`` or ``"loss"``).
        select_mode: Whether larger (``"max"``) or smaller (``"min"``) is better.
        log_path: JSON-lines file receiving training and validation records.
        desc: Progress-bar label.
        show_progress: Show a tqdm bar per epoch.
    """
    objective.to(device)
    params = objective.trainable_parameters()
    opt = build_optimizer(params, cfg)
    per_epoch = len(train_loader)
    if per_epoch == 0:
        raise ValueError("the training data is empty")
    steps_total = total_steps(cfg, per_epoch)
    sched = build_scheduler(opt, cfg, steps_total)
    eval_every = max(1, per_epoch // max(1, cfg.evals_per_epoch))
    log = log_path.open("a", encoding="utf-8") if log_path else None
    result = TrainResult(steps=0, seconds=0.0)
    best_state, best_value = None, None
    start = time.perf_counter()
    n_epochs = math.ceil(steps_total / per_epoch)
    logger.info(
        "%s: %d steps (%d per epoch), %d parameters trained",
        desc,
        steps_total,
        per_epoch,
        sum(p.numel() for p in params),
    )

    def run_eval() -> None:
        nonlocal best_state, best_value
        if evaluate_fn is None:
            return
        metrics = evaluate_fn()
        record = {"step": result.steps, "epoch": result.steps / per_epoch, "validation": metrics}
        result.history.append(record)
        if log:
            log.write(json.dumps(record, default=float) + "\n")
            log.flush()
        value = metrics.get(select_key) if select_key else None
        if value is not None and _better(value, best_value, select_mode):
            best_value = value
            best_state = copy.deepcopy({k: v.cpu() for k, v in select_module.state_dict().items()})
            result.best = record
        logger.info(
            "%s step %d validation %s",
            desc,
            result.steps,
            {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
        )

    try:
        for epoch in range(n_epochs):
            objective.train()
            bar = tqdm(
                train_loader,
                desc=f"{desc} epoch {epoch + 1}/{n_epochs}",
                disable=not show_progress,
                leave=False,
                dynamic_ncols=True,
            )
            for i, batch in enumerate(bar):
                terms = train_step(
                    objective, to_device(batch, device), opt, sched, params, cfg.grad_clip
                )
                result.steps += 1
                if result.steps % cfg.log_every == 0 or result.steps == steps_total:
                    values = {k: float(v) for k, v in terms.items()}  # host sync on log steps only
                    if not math.isfinite(values["loss"]):
                        raise FloatingPointError(
                            f"{desc}: loss became {values['loss']} at step {result.steps}"
                        )
                    bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()})
                    if log:
                        rec = {"step": result.steps, "lr": sched.get_last_lr()[0], **values}
                        log.write(json.dumps(rec) + "\n")
                if result.steps >= steps_total:
                    break
                if (i + 1) % eval_every == 0 and (i + 1) < per_epoch:
                    run_eval()
                    objective.train()
            bar.close()
            run_eval()
            if result.steps >= steps_total:
                break
    finally:
        if log:
            log.close()
    if best_state is not None:
        select_module.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result
