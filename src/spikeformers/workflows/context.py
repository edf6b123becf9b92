"""The run context every training workflow shares.

:func:`training_run` does, in this order, what each of ``finetune_teacher``, ``distill`` and
``train_direct`` needs before its own work: make the run folder (refusing another run's),
start the (possibly distributed) environment, attach ``run.log``, check the batch split and
precision, prepare checkpoints and seed every RNG. The :class:`RunContext` it yields then records
the settings, trains with :func:`~spikeformers.trainer.fit`, and saves the model and metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from spikeformers import checkpoint as ckpt
from spikeformers.cards import refresh_card
from spikeformers.data import DatasetSplits
from spikeformers.data.config import DataArgs
from spikeformers.distributed import DistEnv, check_global_batch, init_distributed
from spikeformers.tracking import open_trackers
from spikeformers.trainer import (
    SupervisedObjective,
    TrainConfig,
    TrainResult,
    check_precision,
    fit,
)
from spikeformers.utils.io import write_json
from spikeformers.utils.seed import seed_everything
from spikeformers.workflows.loaders import evaluate_splits, evaluator, selection, train_loader
from spikeformers.workflows.rundir import (
    CheckpointArgs,
    attach_file_log,
    detach_file_log,
    prepare_out_dir,
    write_run_config,
)


@dataclass
class RunContext:
    """One training run: its folder, process environment and settings."""

    command: str
    """The run's kind, as written to ``run_config.json`` (e.g. ``distill-task``)."""
    out: Path
    """The run folder."""
    env: DistEnv
    """This process's place in a (possibly one-process) distributed run."""
    train: TrainConfig
    """Optimisation settings."""
    checkpoint: ckpt.CheckpointConfig | None
    """Periodic checkpoints, or ``None``."""
    show_progress: bool = True
    """Show progress bars."""
    report_to: list[str] | None = None
    """Experiment trackers."""

    @property
    def device(self) -> torch.device:
        """Where this process trains."""
        return self.env.device

    def record(self, **settings: Any) -> None:
        """Rank 0 writes ``run_config.json`` with every resolved setting."""
        if self.env.is_main:
            write_run_config(self.out, self.command, **settings)

    def validation(
        self, model: nn.Module, splits: DatasetSplits | None, tokenizer, data: DataArgs
    ) -> tuple[Callable[[], dict] | None, str | None, Literal["max", "min"]]:
        """``(evaluate_fn, select_key, select_mode)`` for :meth:`fit`: the validation pass of
        ``splits`` (sharded over ranks), or no selection when there is no task."""
        if splits is None:
            return None, None, "max"
        val_eval = evaluator(
            model,
            splits.validation,
            tokenizer,
            data,
            self.train.eval_batch_size,
            splits.task,
            self.device,
            self.env,
        )
        key, mode = selection(splits)
        return val_eval, key, mode

    def fit(
        self,
        objective: nn.Module,
        train_loader,
        *,
        select_module: nn.Module,
        validation: tuple[Callable[[], dict] | None, str | None, Literal["max", "min"]],
    ) -> TrainResult:
        """:func:`~spikeformers.trainer.fit` with this run's log, checkpoints and trackers."""
        evaluate_fn, key, mode = validation
        return fit(
            objective,
            train_loader,
            self.train,
            device=self.device,
            select_module=select_module,
            evaluate_fn=evaluate_fn,
            select_key=key,
            select_mode=mode,
            log_path=self.out / "train_log.jsonl",
            desc=self.command,
            show_progress=self.show_progress,
            checkpoint=self.checkpoint,
            dist_env=self.env,
            callbacks=open_trackers(self.report_to, self.out, is_main=self.env.is_main),
        )

    def final_metrics(
        self,
        model: nn.Module,
        splits: DatasetSplits,
        tokenizer,
        data: DataArgs,
        result: TrainResult,
        *,
        do_test: bool = False,
    ) -> dict:
        """Validation (and with ``do_test`` test) metrics plus timing, steps, examples and real
        tokens trained on (``examples_seen``, ``tokens_seen``: summed over epochs), sizes."""
        metrics: dict[str, Any] = evaluate_splits(
            model, splits, tokenizer, data, self.train, self.device, self.env, do_test=do_test
        )
        metrics.update(
            task=splits.task.name,
            seconds=round(result.seconds, 2),
            steps=result.steps,
            examples_seen=result.examples_seen,
            tokens_seen=result.tokens_seen,
            selected=result.best,
            parameters=sum(p.numel() for p in model.parameters()),
            sizes=splits.sizes(),
        )
        return metrics

    def train_supervised(
        self,
        model: nn.Module,
        splits: DatasetSplits,
        tokenizer,
        data: DataArgs,
        *,
        do_test: bool = False,
    ) -> dict:
        """Train ``model`` on ``splits.train`` with its task loss (cross-entropy, or MSE for
        regression), select on validation, then :meth:`finish` with :meth:`final_metrics`."""
        batches = train_loader(splits.train, tokenizer, data, self.train, self.env)
        result = self.fit(
            SupervisedObjective(model),
            batches,
            select_module=model,
            validation=self.validation(model, splits, tokenizer, data),
        )
        return self.finish(
            model,
            tokenizer,
            lambda: self.final_metrics(model, splits, tokenizer, data, result, do_test=do_test),
        )

    def finish(self, model: nn.Module, tokenizer, metrics: Callable[[], dict]) -> dict:
        """Rank 0 saves the model and tokenizer; every rank runs ``metrics()`` (the evaluation is
        sharded); rank 0 writes ``metrics.json`` and the model card. Returns the metrics."""
        if self.env.is_main:
            model.save_pretrained(self.out)
            tokenizer.save_pretrained(self.out)
        result = metrics()
        if self.env.is_main:
            write_json(self.out / "metrics.json", result)
            refresh_card(self.out)  # README.md in the Hugging Face model-card format
        return result


@contextmanager
def training_run(
    out_dir: str | Path,
    command: str,
    *,
    train: TrainConfig,
    device: str | None,
    overwrite: bool,
    checkpointing: CheckpointArgs | None,
    show_progress: bool,
    report_to: list[str] | None,
) -> Iterator[RunContext]:
    """Open a training run (see the module docstring); ``run.log`` is detached on exit."""
    out = prepare_out_dir(out_dir, command, overwrite=overwrite)
    env = init_distributed(device)
    log_handler = attach_file_log(out, env.is_main)
    try:
        # Checks made before any data or model is loaded: batch split, precision, checkpoints.
        check_global_batch(train.batch_size, env.world_size, train.grad_accum)
        check_precision(train.precision, env.device)
        c = checkpointing or CheckpointArgs()
        ckpt_cfg = ckpt.prepare(
            out,
            save_every=c.save_every,
            keep_last=c.keep_last,
            resume=c.resume,
            overwrite=overwrite,
            train_config=train,
            is_main=env.is_main,
        )
        seed_everything(train.seed)
        yield RunContext(
            command=command,
            out=out,
            env=env,
            train=train,
            checkpoint=ckpt_cfg,
            show_progress=show_progress,
            report_to=report_to,
        )
    finally:
        detach_file_log(log_handler)
