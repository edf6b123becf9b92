"""Data loaders and validation passes of the workflows (one process or sharded over ranks)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from spikeformers.data import (
    DatasetSplits,
    EncodedDataset,
    Example,
    encode_examples,
    make_dataloader,
)
from spikeformers.data.config import DataArgs
from spikeformers.data.metrics import primary_metric
from spikeformers.distributed import DistEnv, evaluate_sharded, make_train_loader
from spikeformers.evaluation import evaluate, padding_invariant
from spikeformers.trainer import TrainConfig


def loader(
    examples: list[Example],
    tokenizer,
    args: DataArgs,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    group_by_length: bool | None = None,
):
    """A padded loader over ``examples``; ``group_by_length`` (default: ``shuffle``) batches
    similar lengths together (:class:`~spikeformers.data.LengthGroupedBatchSampler`).

    Scoring passes ``group_by_length=padding_invariant(model)``: bucketed batches cut padding,
    and :func:`~spikeformers.evaluation.predict` puts the rows back in dataset order.
    """
    ds = encode_examples(examples, tokenizer, max_length=args.max_length)
    return make_dataloader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        pad_token_id=tokenizer.pad_token_id or 0,
        group_by_length=shuffle if group_by_length is None else group_by_length,
    )


def selection(splits: DatasetSplits) -> tuple[str, Literal["max", "min"]]:
    return primary_metric(splits.task), "max"


def evaluate_splits(
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
            run = evaluator(
                model, examples, tokenizer, args, cfg.eval_batch_size, splits.task, device, env
            )
            out[split] = run()
    return out


def evaluator(
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
    bucket = padding_invariant(model)
    if env is None or not env.is_distributed:
        batches = loader(
            examples, tokenizer, args, batch_size, shuffle=False, group_by_length=bucket
        )
        return lambda: evaluate(model, batches, task, device)
    ds = encode_examples(examples, tokenizer, max_length=args.max_length)
    pad = tokenizer.pad_token_id or 0
    return lambda: evaluate_sharded(
        model, ds, task, env, batch_size=batch_size, pad_token_id=pad, group_by_length=bucket
    )


def train_loader(
    examples: list[Example] | EncodedDataset, tokenizer, args: DataArgs, train: TrainConfig, env
):
    """This rank's share of every global batch (length-grouped, seeded per epoch), over
    ``examples`` or their already encoded dataset."""
    ds = (
        examples
        if isinstance(examples, EncodedDataset)
        else encode_examples(examples, tokenizer, max_length=args.max_length)
    )
    return make_train_loader(
        ds,
        global_batch_size=train.batch_size,
        seed=train.seed,
        pad_token_id=tokenizer.pad_token_id or 0,
        env=env,
        grad_accum=train.grad_accum,
        drop_last=train.drop_last,
    )
