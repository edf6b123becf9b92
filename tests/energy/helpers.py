"""Run folders for the energy CLI and report tests: a tiny student, its teacher, tiny CSV data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from spikeformers import create_model
from spikeformers.energy import estimate
from tests.conftest import WORDS, tiny_overrides


def write_csv_data(folder: Path) -> dict[str, str]:
    """``train.csv`` (24 rows) and ``test.csv`` (6 rows) of sentence,label."""
    rng = random.Random(0)
    paths = {}
    for split, n in (("train", 24), ("test", 6)):
        rows = [f"{' '.join(rng.sample(WORDS, 4))},{i % 2}\n" for i in range(n)]
        path = folder / f"{split}.csv"
        path.write_text("sentence,label\n" + "".join(rows), encoding="utf-8")
        paths[split] = str(path)
    return paths


def save_student(folder: Path, tokenizer) -> Path:
    """A tiny SpikeBERT saved with the tokenizer."""
    model = create_model("spikebert-tiny", **tiny_overrides(len(tokenizer)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_runs(root: Path, tokenizer, teacher_dir: Path) -> Path:
    """``root/student`` with metrics.json and energy.json; the teacher gets a metrics.json."""
    from transformers import AutoModelForSequenceClassification

    student_dir = save_student(root / "student", tokenizer)
    student = create_model("spikebert-tiny", **tiny_overrides(len(tokenizer)))
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    enc = tokenizer(["the movie is good", "a dull boring plot"], padding=True, return_tensors="pt")
    batch = {k: torch.as_tensor(v) for k, v in enc.items()}
    report = estimate(student, [batch], teacher=teacher)
    energy = {**report.to_dict(), "teacher_dir": str(teacher_dir), "task": "toy", "split": "test"}
    (student_dir / "energy.json").write_text(json.dumps(energy), encoding="utf-8")
    metrics = {
        "test": {
            "accuracy": 0.625,
            "firing_rate": report.mean_firing_rate,
            "firing_rates": report.firing_rates,
        }
    }
    (student_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (Path(teacher_dir) / "metrics.json").write_text(
        json.dumps({"test": {"accuracy": 0.875}}), encoding="utf-8"
    )
    return student_dir
