"""report.write_report: valid PNGs and a report.md from run folders (tiny models, no network)."""

from __future__ import annotations

import json

import pytest
import torch

from spikeformers import create_model
from spikeformers.report import find_runs, layer_group, load_run, spike_raster, write_report
from tests.conftest import make_tiny_teacher, tiny_overrides
from tests.energy.helpers import make_runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runs(tmp_path, tokenizer):
    root = tmp_path / "runs"
    teacher = tmp_path / "teacher"  # outside the runs folder: found through energy.json
    make_tiny_teacher(len(tokenizer)).save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    make_runs(root, tokenizer, teacher)
    return root


def _check_png(path):
    from matplotlib.image import imread
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50


def test_write_report_makes_valid_pngs_and_markdown(runs, tmp_path):
    out = tmp_path / "report"
    paths = write_report(runs, out)
    names = {p.name for p in paths}
    assert {
        "accuracy_vs_energy.png",
        "student_firing_rates.png",
        "student_raster.png",
        "student_energy_layers.png",
        "report.md",
    } <= names
    for p in paths:
        assert p.parent == out and p.is_file()
        if p.suffix == ".png":
            _check_png(p)
    md = (out / "report.md").read_text()
    for p in paths[:-1]:
        assert f"]({p.name})" in md
    assert "teacher" in md and "Horowitz" in md and "0.6250" in md


def test_report_without_energy_or_model_keeps_what_it_can(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    metrics = {"validation": {"accuracy": 0.5, "firing_rates": {"blocks.0.lif": 0.1, "x": 0.2}}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    paths = write_report(run, tmp_path / "out")
    assert [p.name for p in paths] == ["run_firing_rates.png", "report.md"]
    _check_png(paths[0])
    assert "No run has both an accuracy" in paths[1].read_text()


@pytest.mark.parametrize(
    ("extra", "scope"),
    [({"firing_rate_padded": 0.3}, "real tokens"), ({}, "all positions, padding included")],
)
def test_report_names_what_the_firing_rates_are_averaged_over(tmp_path, extra, scope):
    # Rates written since they are taken over real tokens come with firing_rate_padded; older
    # metrics files (rates averaged over padding too) are labelled as such, never passed off.
    run = tmp_path / "run"
    run.mkdir()
    metrics = {"test": {"accuracy": 0.5, "firing_rates": {"a": 0.1, "b": 0.3}, **extra}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert load_run(run).firing_rates_scope == scope
    md = write_report(run, tmp_path / "out")[-1].read_text()
    assert "| firing rate (real tokens) |" in md
    assert ("| 0.2000 (padding included) |" in md) == (scope != "real tokens")


def test_find_runs_and_load_run(runs, tmp_path):
    assert find_runs(runs) == [(runs / "student").resolve()]
    assert find_runs(runs / "student") == [(runs / "student").resolve()]
    run = load_run(runs / "student")
    assert run.accuracy == 0.625 and run.firing_rates and run.energy_pj("full") > 0
    with pytest.raises(FileNotFoundError):
        find_runs(tmp_path / "missing")


def test_spike_raster_is_binary_neurons_by_steps():
    model = create_model("spikebert-tiny", **tiny_overrides(50))  # T = 2, D = 32
    ids = torch.randint(5, 50, (1, 6))
    rasters = spike_raster(model, ids, max_layers=3, max_neurons=16)
    assert 1 <= len(rasters) <= 3
    first = rasters[0]
    assert first.name == "encode" and first.spikes.shape == (16, 6)  # [B, L, D] -> L steps
    lif = rasters[-1]
    assert lif.spikes.shape[0] <= 16 and set(lif.spikes.ravel().tolist()) <= {0.0, 1.0}
    assert spike_raster(make_tiny_teacher(50), ids) == []


def test_layer_group():
    assert layer_group("blocks.0.attn.q.linear") == "blocks.0"
    assert layer_group("bert.encoder.layer.3.output.dense") == "bert.encoder.layer.3"
    assert layer_group("bert.embeddings.LayerNorm") == "bert.embeddings"
    assert layer_group("classifier") == "classifier"


def test_teacher_passed_as_a_run_gets_the_energy_its_student_measured(tmp_path, tokenizer):
    # `spikeformers report runs/student runs/teacher`: the teacher folder has no energy.json of
    # its own, but the student's energy.json counted it on the same texts.
    teacher = tmp_path / "teacher"
    make_tiny_teacher(len(tokenizer)).save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    student = make_runs(tmp_path / "runs", tokenizer, teacher)
    energy = json.loads((student / "energy.json").read_text())
    expected = energy["teacher"]["totals"]["energy_pj_paper"]

    out = tmp_path / "report"
    write_report([student, teacher], out, raster=False)
    md = (out / "report.md").read_text()
    (row,) = [ln for ln in md.splitlines() if ln.startswith("| teacher |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "0.8750" and cells[3] != "-"
    # the table prints the teacher's paper-convention energy the student's report holds
    value, unit = cells[3].split()
    scale = {"pJ": 1, "nJ": 1e3, "µJ": 1e6, "mJ": 1e9}[unit]
    assert float(value) * scale == pytest.approx(expected, rel=0.01)


def _synthetic_energy(memory: bool) -> dict:
    """An energy.json by hand: three counted layer groups (one row excluded), per sample."""
    row = {"kind": "matmul", "macs_priced": 0.0, "acs": 0.0, "acs_full": 0.0, "other_ops": 0.0}
    layers = [
        {**row, "name": "blocks.0.attn.q.linear", "acs": 100.0, "acs_full": 100.0,
         "energy_pj_paper": 90.0, "energy_pj_full": 90.0},
        {**row, "name": "blocks.0.lif", "kind": "membrane", "other_ops": 10.0,
         "energy_pj_paper": 0.0, "energy_pj_full": 9.0},
        {**row, "name": "classifier", "macs_priced": 10.0,
         "energy_pj_paper": 46.0, "energy_pj_full": 46.0},
        {**row, "name": "blocks.1.attn.k.linear", "acs": 999.0, "acs_full": 999.0,
         "energy_pj_paper": 899.1, "energy_pj_full": 899.1, "excluded": True},
    ]  # fmt: skip
    energy = {
        "num_samples": 2,
        "task": "toy",
        "split": "test",
        "mean_tokens": 5.0,
        "constants": {"name": "45nm", "source": "Horowitz", "mac_pj": 4.6, "ac_pj": 0.9,
                      "op_pj": 0.9},
        "layers": layers,
        "totals": {"energy_pj_paper": 136.0, "energy_pj_full": 145.0},
        "ratio_paper": 0.136,
        "ratio_full": 145 / 1100,
        "firing_rates": {"blocks.0.lif": 0.2},
        "firing_rate_padded": 0.2,
    }  # fmt: skip
    if not memory:
        return energy
    # memory-aware rows: traffic + arithmetic; the spikes row falls in the emitter's group
    mem_layers = [
        {"name": "blocks.0.attn.q.linear", "op": "linear", "energy_pj_memory": 300.0},
        {"name": "blocks.0.lif", "op": "lif", "energy_pj_memory": 109.0},
        {"name": "blocks.0.lif", "op": "spikes", "energy_pj_memory": 36.0},
        {"name": "classifier", "op": "linear", "energy_pj_memory": 200.0},
        {"name": "blocks.1.attn.k.linear", "op": "linear", "energy_pj_memory": 5000.0,
         "excluded": True},
    ]  # fmt: skip
    totals = {"paper": 136.0, "full": 145.0, "memory": 645.0}
    teacher = {"paper": 1000.0, "full": 1100.0, "memory": 2580.0}
    # paper: E(0) = 46 pJ, E(0.2) = 136 pJ -> 450 pJ per unit of rate; 1000 pJ at 954 / 450
    be = {
        "paper": {"scale": 954 / 90, "rate": 954 / 450, "measured_rate": 0.2,
                  "floor_pj": 46.0, "teacher_pj": 1000.0},
        "full": {"scale": 1045 / 99, "rate": 0.2 * 1045 / 99, "measured_rate": 0.2,
                 "floor_pj": 55.0, "teacher_pj": 1100.0},
        "memory": {"scale": None, "rate": None, "measured_rate": 0.2,
                   "floor_pj": 2600.0, "teacher_pj": 2580.0},
    }  # fmt: skip
    energy["totals"]["energy_pj_memory"] = 645.0
    energy["ratio_memory"] = 0.25
    energy["break_even"] = be
    energy["memory"] = {
        "memory_table": {"name": "45nm-sram32k", "bits": 32, "spike_bits": 16,
                         "sram_pj_per_bit": 0.3125, "dram_pj_per_bit": 20.3125,
                         "weights_in": "sram", "source": "Horowitz 2014"},
        "totals": totals,
        "teacher_totals": teacher,
        "layers": mem_layers,
        "break_even": be,
    }  # fmt: skip
    return energy


def _synthetic_run(tmp_path, memory: bool):
    run = tmp_path / "student"
    run.mkdir()
    (run / "energy.json").write_text(json.dumps(_synthetic_energy(memory)))
    metrics = {"test": {"accuracy": 0.8, "firing_rates": {"blocks.0.lif": 0.2},
                        "firing_rate_padded": 0.2}}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    paths = write_report(run, tmp_path / "out", raster=False)
    return {p.name: p for p in paths}, paths[-1].read_text().splitlines()


def _row(lines, first_cell):
    (row,) = [ln for ln in lines if ln.startswith(f"| {first_cell} |")]
    return [c.strip() for c in row.strip("|").split("|")]


def test_report_shows_the_memory_aware_convention_and_break_even_rates(tmp_path):
    files, md = _synthetic_run(tmp_path, memory=True)
    for name in (
        "accuracy_vs_energy.png",
        "student_energy_conventions.png",
        "student_break_even.png",
    ):
        _check_png(files[name])
    head = _row(md, "run")
    assert head[3:] == [
        *(f"energy/sample, {c} convention" for c in ("paper", "full", "memory")),
        *(f"student/teacher, {c} convention" for c in ("paper", "full", "memory")),
    ]
    assert _row(md, "student")[3:] == ["136 pJ", "145 pJ", "645 pJ", "13.60%", "13.18%", "25.00%"]
    # per layer: excluded rows left out; memory = traffic + arithmetic of each group's rows
    assert _row(md, "layer") == [
        "layer",
        *(f"{c} convention, energy/sample" for c in ("paper", "full", "memory")),
    ]
    assert _row(md, "`blocks.0`") == ["`blocks.0`", "90 pJ", "99 pJ", "445 pJ"]
    assert _row(md, "`classifier`") == ["`classifier`", "46 pJ", "46 pJ", "200 pJ"]
    assert not [ln for ln in md if ln.startswith("| `blocks.1` |")]
    total = _row(md, "**total** (excluded rows left out)")
    assert total[1:] == ["136 pJ", "145 pJ", "645 pJ"]  # the energy.json totals
    assert _row(md, "paper convention") == [
        "paper convention", "136 pJ", "1 nJ", "46 pJ", "0.2000",
        f"{954 / 450:.4f} (above 1: saves at every possible rate)",
    ]  # fmt: skip
    assert _row(md, "memory convention")[-1] == "none (never saves, or no spikes)"
    assert any("Memory-aware convention prices `45nm-sram32k`: 32-bit data" in ln for ln in md)


def test_report_of_an_energy_json_without_the_memory_convention(tmp_path):
    files, md = _synthetic_run(tmp_path, memory=False)
    assert "student_break_even.png" not in files
    _check_png(files["student_energy_conventions.png"])
    assert _row(md, "run")[3:] == [
        "energy/sample, paper convention",
        "energy/sample, full convention",
        "student/teacher, paper convention",
        "student/teacher, full convention",
    ]
    assert _row(md, "`blocks.0`") == ["`blocks.0`", "90 pJ", "99 pJ"]
    assert not any(ln.startswith("Break-even firing rates (") for ln in md)
