"""The ablation runner: each variant really switches off what it names (losses, stages, data)."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from spikeformers.ablation import (
    VARIANT_NAMES,
    AblationConfig,
    _done,
    _run_settings,
    get_variant,
    markdown_table,
    run_ablation,
    summarize,
)
from spikeformers.augment import AugmentConfig, finished_transfer_set
from spikeformers.data import Example, encode_examples, make_dataloader
from spikeformers.distill.distiller import DistillConfig, Distiller
from spikeformers.pipeline import DataArgs
from spikeformers.registry import create_model
from spikeformers.trainer import SupervisedObjective, TrainConfig
from tests.conftest import WORDS, make_tiny_teacher, tiny_overrides
from tests.test_augment import StubTagger

# What each variant's stage 2 must compute, written out by hand (not derived from the code).
EXPECTED_TERMS = {
    "full": {"emb", "feat", "ce", "kl"},
    "no_stage1": {"emb", "feat", "ce", "kl"},
    "no_stage2": {"ce"},
    "no_augment": {"emb", "feat", "ce", "kl"},
    "no_feat": {"emb", "ce", "kl"},
    "no_emb": {"feat", "ce", "kl"},
    "no_kl": {"emb", "feat", "ce"},
    "no_ce": {"emb", "feat", "kl"},
}


def test_every_variant_has_expected_terms():
    assert set(VARIANT_NAMES) == set(EXPECTED_TERMS)


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_one_step_computes_exactly_the_variants_loss_terms(name, tokenizer):
    variant = get_variant(name)
    student = create_model("spikebert-tiny", **tiny_overrides(len(tokenizer)))
    teacher = make_tiny_teacher(len(tokenizer))
    exs = [Example("the movie is good", label=1), Example("a dull plot", label=0)]
    batch = next(
        iter(make_dataloader(encode_examples(exs, tokenizer), batch_size=2, shuffle=False))
    )
    if variant.stage2 == "finetune":
        objective = SupervisedObjective(student)
    else:
        objective = Distiller(student, teacher, variant.task_config(DistillConfig()))
    terms = objective(batch)
    terms["loss"].backward()
    assert set(terms) - {"loss"} == EXPECTED_TERMS[name]
    assert set(variant.expected_terms(DistillConfig())) == EXPECTED_TERMS[name]


def test_summary_gives_mean_and_sample_std_over_seeds():
    variants = [get_variant("full"), get_variant("no_ce")]
    records = [
        {
            "variant": "full",
            "seed": 0,
            "test": {"accuracy": 0.80},
            "validation": {},
            "train_seconds": 1,
        },
        {
            "variant": "full",
            "seed": 1,
            "test": {"accuracy": 0.84},
            "validation": {},
            "train_seconds": 3,
        },
        {
            "variant": "no_ce",
            "seed": 0,
            "test": {"accuracy": 0.78},
            "validation": {},
            "train_seconds": 2,
        },
    ]
    s = summarize(records, variants, metric="accuracy")
    assert s["full"]["test_mean"] == pytest.approx(82.0)
    assert s["full"]["test_std"] == pytest.approx(2.8284, abs=1e-4)  # sample std (n - 1)
    assert s["no_ce"]["test_std"] is None  # one seed: no spread to report
    assert s["no_ce"]["delta"] == pytest.approx(-4.0)
    assert s["full"]["seconds_mean"] == pytest.approx(2.0)  # training time kept per run
    assert s["no_ce"]["delta_paired_se"] is None  # one paired difference: no standard error


def test_paired_delta_standard_error_by_seed():
    variants = [get_variant("full"), get_variant("no_kl")]
    acc = {("full", 0): 0.70, ("full", 1): 0.80, ("full", 2): 0.75}
    acc |= {("no_kl", 0): 0.68, ("no_kl", 1): 0.79, ("no_kl", 2): 0.72}  # diffs -2, -1, -3
    records = [
        {"variant": v, "seed": k, "test": {"accuracy": a}, "validation": {}}
        for (v, k), a in acc.items()
    ]
    s = summarize(records, variants, metric="accuracy")["no_kl"]
    assert s["delta"] == pytest.approx(-2.0)
    # paired diffs -2, -1, -3: sample std 1, standard error 1 / sqrt(3); the unpaired std of
    # each variant's accuracies (about 5 points) would be far larger
    assert s["delta_paired_se"] == pytest.approx(1 / 3**0.5)


def _rows(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    pos, neg = ["good", "great", "fun"], ["bad", "awful", "dull"]
    out = []
    for i in range(n):
        words = rng.sample(["the", "a", "movie", "film", "plot", "actor", "story"], 3)
        words.insert(rng.randrange(4), rng.choice(pos if i % 2 else neg))
        out.append((" ".join(words), i % 2))
    return out


def _first_log_terms(run_dir) -> set[str]:
    for line in (run_dir / "train_log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            return set(rec) - {"step", "lr", "loss"}
    raise AssertionError(f"no training record in {run_dir}")


@pytest.mark.slow
def test_runner_switches_off_what_each_variant_names(tmp_path, tiny_teacher_dir):
    assert set(WORDS) >= {"the", "movie", "good", "dull"}
    files = {}
    for split, n, seed in (("train", 16, 0), ("dev", 6, 1), ("test", 6, 2)):
        path = tmp_path / f"{split}.csv"
        path.write_text("sentence,label\n" + "".join(f"{s},{y}\n" for s, y in _rows(n, seed)))
        files[split] = str(path)
    data = DataArgs(
        train_file=files["train"],
        validation_file=files["dev"],
        test_file=files["test"],
        max_length=16,
    )
    one_step = TrainConfig(epochs=1, max_steps=1, batch_size=8, eval_batch_size=16)
    cfg = AblationConfig(
        data=data,
        out_dir=str(tmp_path / "study"),
        teacher=str(tiny_teacher_dir),
        pretrained_teacher=str(tiny_teacher_dir),
        model="spikebert-tiny",
        model_overrides={"num_layers": 2, "hidden_size": 32, "num_heads": 4, "time_steps": 2},
        seeds=(0,),
        stage1_train=one_step,
        stage2_train=one_step,
        augment=AugmentConfig(n_iter=2),
    )
    doc = run_ablation(cfg, tagger=StubTagger(), show_progress=False)
    out = tmp_path / "study"
    work = out / "seed0"

    assert _first_log_terms(work / "stage1") == {"feat"}
    n_train, n_aug = 16, doc["augmentation"][0]["rows"]
    assert n_aug > n_train
    for name in VARIANT_NAMES:
        run_dir = work / name
        assert _first_log_terms(run_dir) == EXPECTED_TERMS[name], name
        rc = json.loads((run_dir / "run_config.json").read_text())
        variant = get_variant(name)
        # which stages ran
        if variant.stage2 == "finetune":
            assert rc["command"] == "train" and "distill" not in rc
        else:
            assert rc["command"] == "distill-task"
            for w in ("w_emb", "w_ce", "w_logit", "w_feat"):
                assert (rc["distill"][w] == 0) == (w in variant.zero_weights), (name, w)
        from_stage1 = rc["model"] == str(work / "stage1")
        assert from_stage1 == variant.stage1, name
        if not variant.stage1:
            assert rc["model"] == "spikebert-tiny"
        # which training data
        train_size = rc.get("data_info", {}).get("sizes", {}).get("train")
        assert train_size == (n_aug if variant.augment else n_train), name
        # scored on the same real validation/test examples
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["test"]["num_examples"] == 6 and metrics["validation"]["num_examples"] == 6

    assert set(doc["summary"]) == set(VARIANT_NAMES)
    md = (out / "ablation.md").read_text()
    assert md == markdown_table(doc)
    for name in VARIANT_NAMES:
        assert doc["summary"][name]["label"] in md
    assert json.loads((out / "ablation.json").read_text())["runs"][0]["variant"] == "full"

    # --resume reuses every finished run whose settings match, and only those
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")}
    again = run_ablation(
        dataclasses.replace(cfg, resume=True), tagger=StubTagger(), show_progress=False
    )
    assert [r["test"] for r in again["runs"]] == [r["test"] for r in doc["runs"]]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("model.safetensors")} == stamps
    full = get_variant("full")
    settings = _run_settings(full, cfg, 0)
    assert _done(work / "full", True, **settings) is not None
    lr_changed = {**settings, "train": dataclasses.replace(settings["train"], lr=0.5)}
    assert _done(work / "full", True, **lr_changed) is None
    assert _done(work / "full", False, **settings) is None
    # the transfer set is reused only for the same settings and the same labelling teacher
    aug, aug_cfg = work / "augmented.jsonl", dataclasses.replace(cfg.augment, seed=0, max_length=16)
    assert finished_transfer_set(aug, aug_cfg, str(tiny_teacher_dir))["rows"] == n_aug
    assert finished_transfer_set(aug, dataclasses.replace(aug_cfg, n_iter=3), cfg.teacher) is None
    assert finished_transfer_set(aug, aug_cfg, str(tmp_path / "other")) is None


def test_ablate_flags_build_the_study_config():
    import argparse

    from spikeformers.cli import ablate

    parser = argparse.ArgumentParser()
    ablate.build(parser)
    args = parser.parse_args(
        ["--task", "sst2", "--data-dir", "d", "--out", "o", "--seeds", "0", "1"]
        + ["--variants", "full", "no_kl", "--set", "num_layers=2", "--stage2-max-steps", "7"]
        + ["--n-iter", "3", "--p-ng", "0.5", "--tagger", "spacy", "--max-train-samples", "50"]
        + ["--unlabelled-file", "train", "--unlabelled-file", "wiki.txt"]
    )
    cfg = ablate.ablation_config(args)
    assert cfg.seeds == (0, 1) and cfg.variants == ("full", "no_kl")
    assert cfg.model_overrides == {"num_layers": 2}
    assert cfg.stage2_train.max_steps == 7 and cfg.stage1_train.max_steps is None
    assert cfg.augment.n_iter == 3 and cfg.augment.p_ng == 0.5 and cfg.tagger == "spacy"
    assert cfg.data.task == "sst2" and cfg.data.max_train_samples == 50
    assert cfg.teacher is None  # fine-tune one first
    assert cfg.unlabelled_file == ["train", "wiki.txt"]  # repeatable, as for distill
