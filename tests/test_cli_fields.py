"""Options generated from dataclass fields: names, types, defaults and help come from the class."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Literal

import pytest

from spikeformers.cli import build_parser
from spikeformers.cli.fields import add_fields, field_docs, field_values
from spikeformers.cli.options import checkpointing, data_args, train_config
from spikeformers.data.config import DataArgs
from spikeformers.trainer import TrainConfig
from spikeformers.workflows.rundir import CheckpointArgs
from spikeformers.workflows.teacher import TEACHER_TRAIN_DEFAULTS


@dataclasses.dataclass(frozen=True)
class Toy:
    """A class with every kind of field the helper maps."""

    size: int = 3
    """How many
    things."""
    rate: float | None = None
    """A rate."""
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    flag: bool = False
    name: str = "x"
    """A name."""


def test_field_docs_reads_the_string_after_each_field():
    assert field_docs(Toy) == {
        "size": "How many things.",
        "rate": "A rate.",
        "mode": "Which mode.",
        "name": "A name.",
    }


def test_add_fields_maps_types_defaults_and_flags():
    p = argparse.ArgumentParser()
    add_fields(p, Toy, flags={"name": "--label"})
    a = p.parse_args([])
    assert field_values(Toy, a) == Toy()
    a = p.parse_args(["--size", "5", "--rate", "0.5", "--mode", "b", "--flag", "--label", "y"])
    assert field_values(Toy, a) == Toy(size=5, rate=0.5, mode="b", flag=True, name="y")
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "c"])
    assert "How many things. (default: 3)" in " ".join(p.format_help().split())


def test_add_fields_takes_defaults_from_an_instance_and_leaves_some_unset():
    p = argparse.ArgumentParser()
    add_fields(p, Toy, defaults=Toy(size=7), no_default=("mode",), exclude=("name",))
    a = p.parse_args([])
    assert (a.size, a.mode) == (7, None) and not hasattr(a, "name")


def test_a_flag_defaulting_to_true_is_refused():
    @dataclasses.dataclass
    class On:
        on: bool = True

    with pytest.raises(TypeError, match="cannot default to True"):
        add_fields(argparse.ArgumentParser(), On)


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_command_defaults_are_the_dataclass_defaults():
    a = _parse("train", "--out", "o")
    assert data_args(a) == DataArgs()
    assert train_config(a) == TrainConfig()
    assert checkpointing(a) == CheckpointArgs()
    a = _parse("finetune-teacher", "--out", "o")
    assert train_config(a) == TEACHER_TRAIN_DEFAULTS
    a = _parse("distill", "--stage", "task", "--out", "o")
    assert train_config(a) == TrainConfig()


def test_grad_clip_zero_turns_clipping_off_and_seed_reaches_the_config():
    a = _parse("train", "--out", "o", "--grad-clip", "0", "--seed", "4", "--keep-checkpoints", "5")
    assert train_config(a) == TrainConfig(grad_clip=None, seed=4)
    assert checkpointing(a) == CheckpointArgs(keep_last=5)


def test_distill_weights_default_per_stage():
    from spikeformers.cli.distill import distill_config
    from spikeformers.distill.distiller import DistillConfig

    general = distill_config(_parse("distill", "--stage", "general", "--out", "o"))
    assert general == DistillConfig(stage="general", w_emb=0.0, w_ce=0.0, w_logit=0.0, w_feat=1.0)
    task = distill_config(_parse("distill", "--stage", "task", "--out", "o", "--w-ce", "0.5"))
    assert task == DistillConfig(stage="task", w_ce=0.5)
