"""The flag groups commands share, and their conversion back into the library's dataclasses.

Data, training and checkpoint flags are generated from :class:`DataArgs`, :class:`TrainConfig`
and :class:`CheckpointArgs` (:mod:`spikeformers.cli.fields`): their defaults and help live in the
dataclasses. Commands and recipes that build their own parsers use these public helpers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from spikeformers.cli.fields import add_fields, field_values

DATA_GROUP = (
    "data (one source: a named task, your own files or a Hub dataset; with none of them, "
    "the embedded Rotten Tomatoes snippets)"
)


def add_data_args(p: argparse.ArgumentParser) -> None:
    """``--task``, ``--data-dir``, ``--train-file`` ... : every field of :class:`DataArgs`."""
    from spikeformers.data.config import DataArgs

    add_fields(p.add_argument_group(DATA_GROUP), DataArgs)


def data_args(a: argparse.Namespace):
    """The :class:`DataArgs` of parsed :func:`add_data_args` flags."""
    from spikeformers.data.config import DataArgs

    return field_values(DataArgs, a)


def add_train_args(p: argparse.ArgumentParser, defaults: Any = None) -> None:
    """Training, checkpoint and tracker flags; ``defaults`` is a :class:`TrainConfig` whose values
    are the command's defaults (``None``: the dataclass defaults)."""
    from spikeformers.trainer import TrainConfig
    from spikeformers.workflows.rundir import CheckpointArgs

    g = p.add_argument_group("training")
    add_fields(
        g,
        TrainConfig,
        exclude=("seed", "log_every"),  # --seed is a run flag; log_every is not a flag
        defaults=defaults,
        extra={
            "grad_clip": {"help": "max gradient norm; 0: off (default: 1.0)"},
            "grad_accum": {"metavar": "N"},
        },
    )
    g.add_argument(
        "--do-test",
        action="store_true",
        help="also score the test split at the end (default: validation only; as run_glue's "
        "--do_predict, or `spikeformers evaluate --split test` later)",
    )
    c = p.add_argument_group("checkpoints (see docs/SCALING.md)")
    add_fields(
        c,
        CheckpointArgs,
        flags={"keep_last": "--keep-checkpoints"},
        extra={"save_every": {"metavar": "N"}, "keep_last": {"metavar": "K"}},
    )
    add_report_to(p)


def add_report_to(p: argparse.ArgumentParser) -> None:
    """``--report-to TRACKER ...`` (read back with :func:`report_to`)."""
    p.add_argument(
        "--report-to",
        nargs="+",
        choices=["none", "tensorboard", "wandb", "mlflow"],
        default=["none"],
        metavar="TRACKER",
        help="experiment trackers, offline, inside --out: none, tensorboard, wandb, mlflow "
        "(several allowed; pip install 'spikeformers[track]')",
    )


def train_config(a: argparse.Namespace):
    """The :class:`TrainConfig` of parsed :func:`add_train_args` flags (and ``--seed``)."""
    from spikeformers.trainer import TrainConfig

    return field_values(TrainConfig, a, grad_clip=a.grad_clip or None)


def checkpointing(a: argparse.Namespace):
    """The :class:`CheckpointArgs` of parsed :func:`add_train_args` flags."""
    from spikeformers.workflows.rundir import CheckpointArgs

    return field_values(CheckpointArgs, a)


def report_to(a: argparse.Namespace) -> list[str]:
    """The trackers of ``--report-to``; a missing package fails here, before any work."""
    from spikeformers.tracking import resolve_report_to

    return resolve_report_to(a.report_to)


def add_run_args(p: argparse.ArgumentParser, *, out: bool = True) -> None:
    """``--device``, ``--seed``, ``--no-progress``; with ``out`` also ``--out``/``--overwrite``."""
    if out:
        p.add_argument("--out", required=True, help="run directory to write")
        p.add_argument(
            "--overwrite", action="store_true", help="allow replacing a different run in --out"
        )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_overrides(p: argparse.ArgumentParser, help: str = "model config overrides") -> None:
    """``--set KEY=VALUE ...`` (read with :func:`parse_overrides`)."""
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help=help)


def parse_overrides(items: Sequence[str] | None) -> dict:
    """``KEY=VALUE`` pairs; values parsed as JSON when possible (numbers, true/false)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def emit(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (rank 0 only under torchrun)."""
    from spikeformers.distributed import is_main_process

    if not is_main_process():  # under torchrun, rank 0 prints the result
        return
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
