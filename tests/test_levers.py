"""benchmarks/levers.py: recipe patches validated by the schema, stage-1 sharing, the paired
table by hand, and a tiny end-to-end run that never reads the test split."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


levers = _load("levers")


def test_merge_is_deep_and_does_not_touch_its_input():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 3}
    out = levers.merge(base, {"a": {"c": [9]}, "e": {"f": 1}})
    assert out == {"a": {"b": 1, "c": [9]}, "d": 3, "e": {"f": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 3}


def test_a_lever_patches_the_packaged_recipe():
    from spikeformers.recipes import load_recipe

    base = load_recipe("spikebert")
    wiki = levers.lever_recipe("spikebert", "wiki", {"{DATA}": "/d"})
    assert wiki.general_sources == (
        "train",
        "/d/unlabelled/wikitext-2.valid.txt",
        "/d/unlabelled/wikitext-2.test.txt",
    )
    assert wiki.task_steps == base.task_steps and wiki.overrides == base.overrides
    assert wiki.split_long_texts and not base.split_long_texts  # WikiText not truncated away
    t2 = levers.lever_recipe("spikebert", "T8")
    assert t2.overrides == {**base.overrides, "time_steps": 8}
    # each_step reaches every step of a two-step recipe (SpikingBERT), keeping the step's own keys
    kl = levers.lever_recipe("spikingbert", "kl-t2")
    steps = load_recipe("spikingbert").task_steps
    assert kl.task_steps == tuple({**s, "temperature": 2.0} for s in steps)


def test_a_lever_outside_its_families_or_the_schema_fails(monkeypatch):
    with pytest.raises(ValueError, match="applies to"):
        levers.lever_recipe("snnbert", "attn")
    from spikeformers.recipes import RecipeError

    monkeypatch.setitem(levers.LEVERS, "typo", {"about": "", "each_step": {"temprature": 2.0}})
    with pytest.raises(RecipeError, match="temprature"):
        levers.lever_recipe("spikebert", "typo")


def test_stage1_is_shared_only_when_its_settings_agree():
    key = lambda lever: levers.stage1_key(levers.lever_recipe("spikebert", lever), 0)  # noqa: E731
    assert key("kl-t2") == key("base")  # a task-stage lever reuses the base stage 1
    assert key("wiki") != key("base") and key("T8") != key("base")
    base = levers.lever_recipe("spikebert", "base")
    assert levers.stage1_key(base, 0) != levers.stage1_key(base, 1)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("mr:spikebert:wiki", "dataset:family:lever:seed"),
        ("xx:spikebert:wiki:0", "unknown dataset"),
        ("mr:spikebert:nope:0", "unknown lever"),
        ("mr:snnbert:attn:0", "applies to"),
    ],
)
def test_bad_run_specs_are_named(spec, match):
    with pytest.raises(ValueError, match=match):
        levers.parse_run(spec)


def _rec(ds: str, lever: str, seed: int, acc: float, teacher: float) -> dict:
    return {
        "dataset": ds,
        "family": "spikebert",
        "lever": lever,
        "seed": seed,
        "metric": "accuracy",
        "validation": {"accuracy": acc},
        "teacher": {"validation": {"accuracy": teacher}},
        "energy_validation": {"ratio_paper": 0.05},
        "stage1": {"tokens_seen": 1000},
        "seconds": {"stage1": 10.0, "task": [20.0]},
    }


def test_table_rows_pair_each_lever_with_base_by_hand():
    recs = [
        _rec("sst2", "base", 0, 0.80, 0.90),
        _rec("sst2", "base", 1, 0.78, 0.88),
        _rec("mr", "base", 0, 0.70, 0.80),
        _rec("sst2", "wiki", 0, 0.83, 0.90),
        _rec("sst2", "wiki", 1, 0.79, 0.88),
        _rec("mr", "wiki", 0, 0.70, 0.80),
        _rec("mr", "wiki", 1, 0.75, 0.80),  # no base on mr seed 1: not paired
    ]
    rows = {r["lever"]: r for r in levers.table_rows(recs)}
    wiki = rows["wiki"]
    # paired with base: sst2 seed 0 83 - 80, seed 1 79 - 78, mr seed 0 70 - 70 (mr seed 1 has none)
    assert wiki["delta"] == pytest.approx([3.0, 1.0, 0.0])
    assert wiki["scores"]["sst2"] == pytest.approx([83.0, 79.0])
    assert wiki["gap"] == pytest.approx([7.0, 9.0, 10.0, 5.0])
    assert rows["base"]["delta"] == [] and wiki["seconds"] == [30.0] * 4
    # columns in the suite's dataset order (MR, then SST-2); sd by hand: sqrt(8) = 2.83 etc.
    row = "| spikebert | wiki | 72.50 +- 3.54 (n=2) | 81.00 +- 2.83 (n=2) | 1.33 +- 1.53 (n=3) |"
    assert row in levers.markdown(recs)


@pytest.mark.slow
def test_a_tiny_lever_run_reuses_stages_and_never_reads_test(
    tmp_path, tokenizer, csv_data, monkeypatch
):
    import suite

    import spikeformers.recipes as recipes
    from spikeformers import pipeline
    from tests.conftest import make_tiny_teacher, tiny_overrides

    pre = tmp_path / "pretrained"
    make_tiny_teacher(len(tokenizer), num_labels=None).save_pretrained(pre)
    tokenizer.save_pretrained(pre)
    real = recipes.load_recipe

    def tiny(name):  # the packaged recipe with a tiny student, the tiny teacher, 4 priced texts
        r = real(name)
        small = tiny_overrides(len(tokenizer), name=r.variant)
        return dataclasses.replace(r, overrides=small, teacher=str(pre), energy_samples=4)

    monkeypatch.setattr(recipes, "load_recipe", tiny)
    evaluated = []
    real_eval = pipeline.evaluate_model
    monkeypatch.setattr(
        pipeline,
        "evaluate_model",
        lambda **kw: evaluated.append(kw.get("split")) or real_eval(**kw),
    )
    splits = (("train_file", "train"), ("validation_file", "dev"), ("test_file", "test"))
    files = {k: csv_data[v] for k, v in splits}
    datasets = {"tiny": suite.Dataset("tiny", "spikebert", "Tiny", data=files)}
    kw = dict(
        work=tmp_path / "levers",
        suite_work=tmp_path / "suite",
        results=tmp_path / "res",
        data_root=tmp_path,
        max_steps=1,
        datasets=datasets,
        budget=suite.Budget("tiny", "tiny", None, 16, 16),
    )
    base = levers.run_one("tiny", "spikebert", "base", 0, **kw)
    kl = levers.run_one("tiny", "spikebert", "kl-t2", 0, **kw)
    assert base.name == "spikebert-base_s0.json" and kl.name == "spikebert-kl-t2_s0.json"
    rb, rk = json.loads(base.read_text()), json.loads(kl.read_text())
    student = json.loads((tmp_path / "suite/tiny/spikebert_s0/student/metrics.json").read_text())
    assert rb["validation"]["accuracy"] == student["validation"]["accuracy"]
    assert rb["run_dir"] == str(tmp_path / "suite/tiny/spikebert_s0")  # the suite's cell folder
    # kl-t2 changes only the task stage: no stage 1 of its own, the base's is reused
    assert not list((tmp_path / "levers/tiny").glob("stage1-*"))
    assert rk["stage1"] == rb["stage1"] and rk["teacher"]["dir"] == rb["teacher"]["dir"]
    assert rk["config"]["recipe"]["task"]["steps"][0]["temperature"] == 2.0
    assert rb["energy_validation"]["samples"] == 4 and rk["validation"]["accuracy"] >= 0
    assert "test" not in evaluated and "test" not in json.dumps(rb["validation"])
    assert not list(tmp_path.rglob("test_metrics.json"))
    assert levers.run_one("tiny", "spikebert", "kl-t2", 0, **kw) is None  # finished: skipped
