"""benchmarks/suite.py: the table writer (hand-computed cells), resume-skip, the dataset table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _suite():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("suite", BENCHMARKS / "suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["suite"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


suite = _suite()


def _rec(dataset: str, seed: int, acc: float, teacher_acc: float, ratio: float) -> dict:
    return {
        "dataset": dataset,
        "table": "spikebert",
        "metric": "accuracy",
        "family": "spikebert",
        "model": "student",
        "seed": seed,
        "config": {"budget": {"name": "30min"}, "max_steps": None},
        "teacher": {"name": "minilm", "test": {"accuracy": teacher_acc}},
        "test": {"accuracy": acc},
        "energy": {"ratio_paper": ratio, "ratio_full": 2 * ratio},
    }


def synthetic() -> list[dict]:
    return [
        _rec("sst2", 0, 0.80, 0.90, 0.1),
        _rec("sst2", 1, 0.82, 0.90, 0.2),
        _rec("sst2", 2, 0.84, 0.90, 0.3),
        _rec("mr", 0, 0.70, 0.80, 0.1),
        _rec("mr", 1, 0.74, 0.82, 0.3),
    ]


def test_table_rows_by_hand():
    twin = {**_rec("mr", 0, 0.60, 0.80, 0.5), "model": "direct"}
    rows = {r["row"]: r for r in suite.table_rows([*synthetic(), twin], "spikebert")}
    # the directly trained twin has a row of its own: MR 60; the MR teacher is the mean over
    # seeds 0 and 1 (80, 82: one teacher per dataset x seed), so the gap is 81 - 60
    assert rows["spikebert-direct"]["avg"] == pytest.approx(60.0)
    assert rows["spikebert-direct"]["gap"] == pytest.approx(21.0)
    t, s = rows["teacher: minilm"], rows["spikebert"]
    # teacher: SST-2 90 (3 seeds), MR (80 + 82) / 2 = 81; average (90 + 81) / 2
    assert t["avg"] == pytest.approx(85.5) and t["gap"] is None
    # student: SST-2 (80 + 82 + 84) / 3 = 82, MR (70 + 74) / 2 = 72; average 77
    assert s["avg"] == pytest.approx(77.0)
    # gap: mean over the two sets of teacher - student = ((90 - 82) + (81 - 72)) / 2
    assert s["gap"] == pytest.approx(8.5)
    assert s["n_datasets"] == 2


def test_markdown_cells_by_hand():
    text = suite.markdown(synthetic())
    row = next(ln for ln in text.splitlines() if ln.startswith("| spikebert |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # columns: model, MR, SST-2, Subj, SST-5, ChnSenti, Waimai, avg, gap, energy paper, full
    assert cells[1] == "72.00 +- 2.83 (n=2)"  # sd of 70, 74: sqrt(8) = 2.83
    assert cells[2] == "82.00 +- 2.00 (n=3)"  # sd of 80, 82, 84: 2
    assert cells[3:7] == ["-"] * 4
    assert cells[7] == "77.00 (2/6 sets)" and cells[8] == "8.50"
    # paper-convention ratios 0.1, 0.2, 0.3, 0.1, 0.3: mean 0.2, sd sqrt(0.04 / 4) = 0.1
    assert cells[9] == "20.0% +- 10.0%" and cells[10] == "40.0% +- 20.0%"
    teacher = next(ln for ln in text.splitlines() if ln.startswith("| teacher: minilm |"))
    assert "81.00 +- 1.41 (n=2)" in teacher and "90.00 +- 0.00 (n=3)" in teacher
    # the papers' rows beside, with their averages (84.33 and 80.20 in the paper)
    assert "| SpikeBERT (paper) | 80.69 | 85.39 | 93.00 | 46.11 | 86.36 | 89.66 | 80.20 |" in text
    assert "| 84.33 |" in text
    assert "cut against the papers" in text and "4,000" in text


def test_finished_cells_are_skipped(tmp_path):
    res = tmp_path / "results"
    ds = suite.DATASETS["mr"]
    assert suite.pending(res, "mr", "spikebert", 0, direct=True)
    path = suite.result_path(res, "mr", "spikebert", 0)
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    assert not suite.pending(res, "mr", "spikebert", 0, direct=False)
    assert suite.pending(res, "mr", "spikebert", 0, direct=True)  # the twin is still missing
    suite.result_path(res, "mr", "spikebert", 0, direct=True).write_text("{}")
    # nothing is loaded or trained for a finished cell (the data root does not even exist)
    written = suite.run_cell(
        ds,
        "spikebert",
        0,
        budget=suite.BUDGETS["30min"],
        work=tmp_path / "work",
        results=res,
        teacher="minilm",
        data_root=tmp_path / "no-data",
        direct=True,
    )
    assert written == [] and not (tmp_path / "work").exists()


@pytest.mark.slow
def test_a_cell_writes_its_json_and_is_skipped_after(tmp_path, tokenizer, csv_data, monkeypatch):
    from tests.conftest import make_tiny_teacher

    pre = tmp_path / "pretrained"
    make_tiny_teacher(len(tokenizer), num_labels=None).save_pretrained(pre)
    tokenizer.save_pretrained(pre)
    files = {"train_file": csv_data["train"], "test_file": csv_data["test"]}
    ds = suite.Dataset("tiny", "spikebert", "Tiny", data=files)
    budget = suite.Budget("tiny", "tiny", None, 16, 16)
    kw = dict(
        budget=budget,
        work=tmp_path / "work",
        results=tmp_path / "res",
        teacher=str(pre),
        data_root=tmp_path,
        direct=True,
        max_steps=1,
    )
    import dataclasses

    import spikeformers.recipes as recipes
    from tests.conftest import tiny_overrides

    real = recipes.load_recipe

    def tiny(name):  # the packaged recipe with a tiny student and 4 priced texts
        r = real(name)
        small = tiny_overrides(len(tokenizer), name=r.variant)
        return dataclasses.replace(r, overrides=small, energy_samples=4)

    monkeypatch.setattr(recipes, "load_recipe", tiny)
    written = suite.run_cell(ds, "snnbert", 0, **kw)
    assert [p.name for p in written] == ["snnbert_s0.json", "snnbert-direct_s0.json"]
    rec = json.loads(written[0].read_text())
    test = json.loads((tmp_path / "work" / "tiny" / "snnbert_s0" / "test_metrics.json").read_text())
    assert rec["test"]["accuracy"] == test["student"]["accuracy"]
    assert rec["test"]["num_examples"] == 16 and rec["teacher"]["test"]["num_examples"] == 16
    assert rec["teacher"]["name"] == str(pre) and rec["validation"]["num_examples"] > 0
    assert set(rec["energy"]) >= {"ratio_paper", "ratio_full", "student_uj_paper"}
    assert rec["firing_rate"] == test["student"]["firing_rate"]
    assert rec["machine"]["cpu_count"] and rec["wall_seconds"] > 0
    assert rec["config"]["recipe"]["family"] == "snnbert" and rec["config"]["max_steps"] == 1
    direct = json.loads(written[1].read_text())
    assert direct["test"]["accuracy"] == test["direct"]["accuracy"]
    # a second invocation finds both JSONs and skips the cell
    assert suite.run_cell(ds, "snnbert", 0, **kw) == []


@pytest.mark.skipif(not suite.DATA.is_dir(), reason="../shared/data is not on this machine")
@pytest.mark.parametrize("name", sorted(suite.DATASETS))
def test_every_dataset_resolves_to_files_that_load(name, tmp_path):
    from spikeformers.pipeline import load_data

    ds = suite.DATASETS[name]
    data = suite.data_args(ds, suite.BUDGETS["30min"], suite.DATA, tmp_path)
    for path in data.files().values():
        assert Path(path).is_file(), path
    if data.data_dir:
        assert Path(data.data_dir).is_dir()
    splits = load_data(data)
    assert min(splits.sizes().values()) > 0
    assert (splits.task.num_labels == 1) == (ds.metric == "pearson")
