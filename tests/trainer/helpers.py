"""Tiny data, a tiny teacher and CLI argument lists shared by the trainer tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import torch

from tests.conftest import WORDS, make_tiny_teacher

POS = ["good", "great", "fun", "funny", "moving", "brilliant"]
NEG = ["bad", "awful", "boring", "dull", "terrible", "mess"]
# A student narrower than the teacher (16 vs 32), so the distiller has projections to checkpoint.
STUDENT = ["--set", "num_layers=2", "hidden_size=16", "num_heads=2", "time_steps=2"]


def write_csv(path: Path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = rng.sample(WORDS[:10], rng.randint(1, 6)) + [rng.choice(POS if label else NEG)]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{label}\n")
    path.write_text("sentence,label\n" + "".join(rows))
    return str(path)


def make_workspace(root: Path, tokenizer) -> dict[str, str]:
    """A saved tiny teacher and train/dev CSV files under ``root``."""
    teacher = make_tiny_teacher(len(tokenizer))
    teacher.config.hidden_dropout_prob = 0.0
    tdir = root / "teacher"
    teacher.save_pretrained(tdir)
    tokenizer.save_pretrained(tdir)
    return {
        "teacher": str(tdir),
        "train": write_csv(root / "train.csv", 30, 0),
        "dev": write_csv(root / "dev.csv", 8, 1),
    }


def distill_argv(
    ws: dict[str, str], out: Path, *extra: str, sets: tuple[str, ...] = ()
) -> list[str]:
    """``distill --stage task`` of a tiny student: 30 examples, global batch 8 (4 steps/epoch);
    ``sets`` adds student config overrides."""
    return [
        "distill",
        "--stage",
        "task",
        "--model",
        "spikebert-tiny",
        "--teacher",
        ws["teacher"],
        "--train-file",
        ws["train"],
        "--validation-file",
        ws["dev"],
        "--max-length",
        "12",
        *STUDENT,
        *sets,
        "--batch-size",
        "8",
        "--eval-batch-size",
        "8",
        "--lr",
        "3e-3",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
