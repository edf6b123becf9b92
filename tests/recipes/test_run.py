"""``spikeformers run`` end to end on tiny data with a tiny teacher, resuming, recipe files.

Tiny CSVs (``csv_data``: train 48, dev 16, test 16 rows) and BERT teachers built from a
BertConfig; students are the packaged recipes with tiny config overrides and 2 steps a stage.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from spikeformers import pipeline
from spikeformers.cards import read_card_metadata
from spikeformers.cli import main
from spikeformers.recipes import RecipeError, load_recipe, recipe_path
from spikeformers.recipes.runner import RunOptions, run_recipe
from tests.conftest import make_tiny_teacher, tiny_overrides


def tiny_recipe(tmp_path: Path, family: str, tokenizer, **top) -> Path:
    """The packaged ``family`` recipe with a tiny student and 8 priced texts, as a YAML file."""
    raw = yaml.safe_load(recipe_path(family).read_text())
    variant = raw["student"]["variant"]
    raw["student"]["overrides"] = tiny_overrides(len(tokenizer), name=variant)
    raw["energy"] = {"samples": 8}
    raw.update(top)
    path = tmp_path / f"{family}-tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _data(csv_data) -> pipeline.DataArgs:
    return pipeline.DataArgs(
        train_file=csv_data["train"],
        validation_file=csv_data["dev"],
        test_file=csv_data["test"],
        max_length=16,
    )


def _file_flags(csv_data) -> list[str]:
    return [
        "--train-file",
        csv_data["train"],
        "--validation-file",
        csv_data["dev"],
        "--test-file",
        csv_data["test"],
        "--max-length",
        "16",
    ]


@pytest.mark.slow
def test_run_writes_every_artefact(tmp_path, tokenizer, csv_data, capsys):
    # a pre-trained teacher without a classification head: the run fine-tunes it first
    pre = tmp_path / "pretrained"
    make_tiny_teacher(len(tokenizer), num_labels=None).save_pretrained(pre)
    tokenizer.save_pretrained(pre)
    recipe = tiny_recipe(tmp_path, "spikebert", tokenizer, direct=True)
    out = tmp_path / "run"
    argv = ["run", "--recipe", str(recipe), "--teacher", str(pre), "--out", str(out)]
    argv += [*_file_flags(csv_data), "--max-steps", "2", "--no-progress"]
    tracked = importlib.util.find_spec("tensorboard") is not None
    if tracked:
        argv += ["--report-to", "tensorboard"]
    assert main(argv) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(capsys.readouterr().out)
    stages = ("teacher", "stage1", "student", "direct")
    for stage in stages:
        assert (out / stage / "model.safetensors").is_file(), stage
        metrics = json.loads((out / stage / "metrics.json").read_text())
        assert "test" not in metrics, f"{stage} scored the test split during training"
    for stage in ("teacher", "student", "direct"):
        assert "validation" in json.loads((out / stage / "metrics.json").read_text())
    # the test split scored once at the end: 16 rows, the numbers the summary reports
    test = json.loads((out / "test_metrics.json").read_text())
    assert set(test) == {"teacher", "student", "direct"}
    for role in test:
        assert test[role]["num_examples"] == 16 and test[role]["split"] == "test"
        assert summary[role]["accuracy"] == test[role]["accuracy"]
    # ...and they are what scoring the saved student again gives
    again = pipeline.evaluate_model(model_dir=out / "student", data=_data(csv_data), split="test")
    assert again["accuracy"] == pytest.approx(summary["student"]["accuracy"])
    assert (
        summary["validation"]["student"]
        == json.loads((out / "student" / "metrics.json").read_text())["validation"]
    )
    # energy under both conventions, for the student and the direct twin, against the teacher
    for model, key in (("student", "energy"), ("direct", "direct_energy")):
        e = json.loads((out / model / "energy.json").read_text())
        assert e["num_samples"] == 8 and e["split"] == "test"
        assert e["teacher_dir"] == str(out / "teacher")
        for conv in ("energy_pj_paper", "energy_pj_full", "energy_pj_memory"):
            assert e["totals"][conv] > 0 and e["teacher"]["totals"][conv] > 0
        # the memory-aware convention adds traffic to the full accounting's arithmetic
        assert e["totals"]["energy_pj_memory"] > e["totals"]["energy_pj_full"]
        s = summary[key]
        assert s["ratio_paper"] == pytest.approx(s["student_uj_paper"] / s["teacher_uj_paper"])
        assert s["ratio_full"] == pytest.approx(s["student_uj_full"] / s["teacher_uj_full"])
    # stage 1 read the training texts without labels: one line per training row
    assert len((out / "unlabelled.txt").read_text().splitlines()) == 48
    # ...and the summary repeats its counts: 48 texts, all seen in 2 steps of batch 32 (32 + 16)
    s1 = summary["stage1"]
    assert (s1["texts"], s1["texts_seen"], s1["tokens_seen"]) == (48, 48, s1["tokens"])
    assert [x["source"] for x in s1["sources"]] == [str(out / "unlabelled.txt")]
    # the student's model card names its metrics and, rewritten after pricing, its energy
    meta = read_card_metadata(out / "student" / "README.md")
    assert meta["model-index"][0]["results"]
    assert "energy" in (out / "student" / "README.md").read_text().lower()
    if importlib.util.find_spec("matplotlib"):
        assert (out / "report" / "report.md").is_file()
        assert summary["report"] == str(out / "report" / "report.md")
    else:
        assert summary["report"] is None and "matplotlib" in summary["report_missing"]
    assert summary["config"]["recipe"]["source"] == str(recipe)
    if tracked:  # every training stage logged its losses into its own folder
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        for stage in stages:
            records = [
                json.loads(x) for x in (out / stage / "train_log.jsonl").read_text().splitlines()
            ]
            acc = EventAccumulator(str(out / stage / "tensorboard"))
            acc.Reload()
            loss = [(ev.step, ev.value) for ev in acc.Scalars("train/loss")]
            want = [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in records if "lr" in r]
            assert loss == want, stage


@pytest.mark.slow
def test_resume_after_an_interrupted_stage_skips_finished_ones(
    tmp_path, tokenizer, tiny_teacher_dir, csv_data, monkeypatch
):
    recipe = load_recipe(tiny_recipe(tmp_path, "spikingbert", tokenizer))
    out = tmp_path / "run"
    opts = RunOptions(teacher=str(tiny_teacher_dir), max_steps=2, show_progress=False, report=False)
    calls: list[tuple[str, str]] = []
    real_distill, real_ft = pipeline.distill, pipeline.finetune_teacher

    failed: list[bool] = []

    def distill(**kw):
        calls.append((kw["stage"], Path(kw["out_dir"]).name))
        if kw["stage"] == "task" and not failed:  # the first task step is interrupted, once
            failed.append(True)
            raise KeyboardInterrupt
        return real_distill(**kw)

    def finetune(**kw):
        calls.append(("teacher", Path(kw["out_dir"]).name))
        return real_ft(**kw)

    monkeypatch.setattr(pipeline, "distill", distill)
    monkeypatch.setattr(pipeline, "finetune_teacher", finetune)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out, _data(csv_data), opts)
    # the teacher already had a 2-class head: used as is, never fine-tuned
    assert calls == [("general", "stage1"), ("task", "student-step1")]
    assert not (out / "teacher").exists() and not (out / "summary.json").exists()

    with pytest.raises(pipeline.RunDirError, match="--resume"):
        run_recipe(recipe, out, _data(csv_data), opts)

    calls.clear()
    summary = run_recipe(recipe, out, _data(csv_data), RunOptions(**{**vars(opts), "resume": True}))
    assert calls == [("task", "student-step1"), ("task", "student")]
    assert summary["student"]["num_examples"] == 16
    assert (out / "student-step1" / "metrics.json").is_file()
    # a finished run resumes to its summary without training anything
    calls.clear()
    again = run_recipe(recipe, out, _data(csv_data), RunOptions(**{**vars(opts), "resume": True}))
    assert calls == [] and again == summary
    # another task setting: the finished task stages are not reused for it
    other = dataclasses.replace(
        recipe, task_steps=tuple({**s, "temperature": 2.0} for s in recipe.task_steps)
    )
    with pytest.raises(
        pipeline.RunDirError,
        match=r"student-step1 holds a run with other settings.*distill\.temperature: 1\.0 -> 2\.0",
    ):
        run_recipe(other, out, _data(csv_data), RunOptions(**{**vars(opts), "resume": True}))
    assert calls == []


def _recorded(tmp_path: Path, **settings) -> Path:
    from spikeformers.workflows.rundir import write_run_config

    write_run_config(tmp_path, "distill-task", **settings)
    return tmp_path


def test_stage_mismatches_compares_what_the_stage_computes(tmp_path):
    from spikeformers.distill.distiller import DistillConfig
    from spikeformers.recipes.runner import stage_mismatches
    from spikeformers.trainer import TrainConfig

    train, dcfg = TrainConfig(epochs=2.0, seed=1), DistillConfig.for_stage("task")
    d = _recorded(tmp_path, model="runs/stage1", distill=dcfg, train=train, cache_teacher=False)
    same = dict(stage="task", model="runs/stage1", distill_config=dcfg, train=train)
    assert stage_mismatches(d, same) == []
    assert stage_mismatches(d, {**same, "cache_teacher": True}) == []  # speed only
    assert stage_mismatches(d, {**same, "stage": "general"}) == [
        "command: distill-task -> distill-general"
    ]
    assert stage_mismatches(d, {**same, "model": Path("runs/other")}) == [
        "model: runs/stage1 -> runs/other"
    ]
    assert stage_mismatches(d, {**same, "train": TrainConfig(epochs=2.0, seed=2)}) == [
        "train.seed: 1 -> 2"
    ]
    # added to the code after the run: agrees at its default, not otherwise
    assert stage_mismatches(d, {**same, "split_long_texts": False}) == []
    assert stage_mismatches(d, {**same, "split_long_texts": ["wiki.txt"]}) == [
        "split_long_texts: (not recorded) -> ['wiki.txt']"
    ]
    rc = json.loads((d / "run_config.json").read_text())
    del rc["train"]["grad_clip"]  # a TrainConfig field the old run did not record
    (d / "run_config.json").write_text(json.dumps(rc))
    assert stage_mismatches(d, same) == []
    changed = TrainConfig(epochs=2.0, seed=1, grad_clip=TrainConfig.grad_clip + 1)
    assert stage_mismatches(d, {**same, "train": changed}) == [
        f"train.grad_clip: (not recorded) -> {TrainConfig.grad_clip + 1}"
    ]


# -- recipe files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["spikebert", "spikingbert", "snnbert"])
def test_packaged_recipes_load(family):
    r = load_recipe(family)
    assert r.family == family and r.variant == f"{family}-mini"
    assert r.source.endswith(f"{family}.yaml") and Path(r.source).is_file()


def test_spikingbert_recipe_has_two_task_steps_and_splits_the_epochs():
    r = load_recipe("spikingbert")
    assert len(r.task_steps) == 2
    assert r.task_steps[1] == {"w_emb": 0.0, "w_feat": 0.0, "w_attn": 0.0}
    # 5 epochs in all, 2.5 per step; the direct twin trains all 5
    assert r.train_config("task", seed=3).epochs == 2.5
    assert r.train_config("direct", seed=3).epochs == 5.0
    assert r.train_config("task", seed=3).seed == 3


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(recipe_path("spikebert").read_text())
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: r.update(epochs=3), r"unknown key 'epochs'"),
        (lambda r: r["task"].update(stepz=[{}]), r"unknown key 'task.stepz'"),
        (lambda r: r["task"]["steps"][0].update(w_kl=1.0), r"task.steps\[0\].w_kl"),
        (lambda r: r["teacher"]["train"].update(learning_rate=1.0), r"teacher.train.learning_rate"),
        (lambda r: r["general"]["train"].update(lr="fast"), r"general.train.lr = 'fast'"),
        (lambda r: r["student"].update(variant="bert-huge"), r"'bert-huge' is not a registered"),
        (lambda r: r["task"].update(steps=[]), r"task.steps is empty"),
        (lambda r: r.pop("student"), r"missing key"),
        (lambda r: r.update(direct="yes"), r"direct must be a bool"),
    ],
)
def test_recipe_errors_name_the_file_and_the_key(tmp_path, mutate, match):
    path = _write(tmp_path, mutate)
    with pytest.raises(RecipeError, match=match) as e:
        load_recipe(path)
    assert str(path) in str(e.value)


def test_recipe_that_is_not_yaml_or_not_a_file(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("family: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    assert main(["run", "--recipe", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "neither a packaged recipe" in capsys.readouterr().err
