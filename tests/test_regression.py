"""Regression (``num_labels == 1``) end to end: MSE logit distillation, MSE fine-tuning, Pearson.

The logit term of a one-output student used to be a softmax KL over one logit: identically 0.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from spikeformers.cli import main
from spikeformers.distill.distiller import DistillConfig, Distiller
from spikeformers.distill.losses import LogitMSE
from tests.conftest import POS, WORDS, make_tiny_teacher, tiny_overrides


def test_logit_mse_by_hand():
    zs = torch.tensor([[1.0], [2.0]])
    zt = torch.tensor([[0.0], [4.0]])
    assert LogitMSE()(zs, zt).item() == pytest.approx((1 + 4) / 2)


def test_regression_logit_term_is_the_mse_of_student_and_teacher_values(tokenizer):
    from spikeformers import create_model

    student = create_model(
        "spikebert-tiny", **tiny_overrides(len(tokenizer), num_labels=1, name="spikebert-tiny")
    )
    teacher = make_tiny_teacher(len(tokenizer), num_labels=1)
    cfg = DistillConfig(w_emb=0.0, w_ce=0.0, w_feat=0.0, w_logit=1.0)
    distiller = Distiller(student, teacher, cfg).eval()
    batch = tokenizer(["a good movie", "the plot is dull"], padding=True, return_tensors="pt")
    batch = dict(batch)
    with torch.no_grad():
        terms = distiller(batch)
        z_s = student(batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (2, 1)
        z_t = teacher(**batch).logits  # (2, 1)
    expected = ((z_s - z_t) ** 2).mean().item()
    assert expected > 0
    assert terms["kl"].item() == pytest.approx(expected, rel=1e-5)


def _score(sentence: str) -> float:
    """A target that words decide: +1.25 per positive word, from 0.5."""
    return 0.5 + 1.25 * sum(w in POS for w in sentence.split())


def _regression_csv(path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = ["sentence,score"]
    for _ in range(n):
        words = rng.sample(WORDS[:10], 2) + rng.sample(POS, rng.randint(0, 2))
        rng.shuffle(words)
        sentence = " ".join(words)
        lines.append(f"{sentence},{_score(sentence):.3f}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.slow
def test_regression_end_to_end_through_the_cli(tmp_path, tokenizer, capsys):
    # a tiny pre-trained encoder without a head, as a Hub BERT checkpoint is
    base = tmp_path / "bert"
    make_tiny_teacher(len(tokenizer), num_labels=None).save_pretrained(base)
    tokenizer.save_pretrained(base)
    train = _regression_csv(tmp_path / "train.csv", 48, 0)
    dev = _regression_csv(tmp_path / "dev.csv", 16, 1)
    test = _regression_csv(tmp_path / "test.csv", 12, 2)
    data = ["--train-file", train, "--validation-file", dev, "--label-column", "score"]
    data += ["--max-length", "16"]
    fast = ["--epochs", "2", "--batch-size", "8", "--no-progress"]

    teacher = tmp_path / "teacher"
    argv = ["finetune-teacher", "--teacher", str(base), *data, *fast, "--lr", "1e-3"]
    assert main([*argv, "--out", str(teacher)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"pearson", "spearman", "mse"} <= set(metrics["validation"])
    assert "accuracy" not in metrics["validation"] and "test" not in metrics
    cfg = json.loads((teacher / "config.json").read_text())
    assert cfg["problem_type"] == "regression" and cfg["id2label"] == {"0": "score"}
    log = [json.loads(x) for x in (teacher / "train_log.jsonl").read_text().splitlines()]
    pearsons = [r["validation"]["pearson"] for r in log if "validation" in r]
    assert len(pearsons) == 2  # selection on Pearson: the best validation Pearson is kept
    assert metrics["selected"]["validation"]["pearson"] == max(pearsons)
    assert metrics["validation"]["pearson"] == pytest.approx(max(pearsons), abs=1e-6)
    mses = [r["validation"]["mse"] for r in log if "validation" in r]
    assert mses[1] < mses[0]  # trained on MSE: the validation MSE goes down

    student = tmp_path / "student"
    argv = ["distill", "--stage", "task", "--model", "spikebert-tiny", "--teacher", str(teacher)]
    argv += ["--set", "num_layers=2", "hidden_size=32", "num_heads=4", "time_steps=2"]
    assert main([*argv, *data, *fast, "--test-file", test, "--do-test", "--out", str(student)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["test"]["num_examples"] == 12 and "pearson" in metrics["test"]
    log = [json.loads(x) for x in (student / "train_log.jsonl").read_text().splitlines()]
    assert all(r["kl"] > 0 for r in log if "kl" in r)  # the logit term is live (MSE, not KL)

    assert main(["evaluate", "--model", str(student), "--test-file", test, "--max-length", "16",
                 "--label-column", "score"]) == 0  # fmt: skip
    ev = json.loads(capsys.readouterr().out)
    assert ev["pearson"] == pytest.approx(metrics["test"]["pearson"], abs=1e-6)
    assert -1.0 <= ev["spearman"] <= 1.0

    assert main(["predict", "--model", str(student), "--text", "a good fun movie"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert set(row) == {"text", "score"} and isinstance(row["score"], float)
