"""Tables of the benchmark scripts: ratios and summaries computed as their headers state."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str = "bpsn_vs_lif"):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(neuron: str, step: float, saved: float) -> dict:
    return {
        "neuron": neuron,
        "L": 64,
        "step_s_median": step,
        "step_s_min": step,
        "fwd_bwd_s_median": step / 2,
        "saved_MB": saved,
        "step_peak_MB": saved + 10,
        "total_peak_MB": None,
    }


def test_bpsn_against_repeat_coding_reads_as_speed_up_and_memory_saved():
    bench = _load()
    result = {
        "config": {"neurons": ["lif", "bpsn", "repeat"], "lengths": [64], "time_steps": 4},
        "training": [_row("lif", 1.0, 50.0), _row("bpsn", 0.5, 40.0), _row("repeat", 1.5, 160.0)],
    }
    *_, row = bench._coding_table(result)
    # repeat takes 3x BPSN's time (1.5 / 0.5) and saves 4x its activations (160 / 40);
    # step peaks 170 / 50 = 3.4x; no total peak recorded.
    assert row == "| 64 | | 3.00x | 3.00x | 4.00x | 3.40x | n/a |"
    result["config"]["neurons"] = ["lif", "bpsn"]
    assert bench._coding_table(result) == []


def test_markdown_has_no_neuron_layer_row_for_repeat_coding():
    bench = _load()
    layer = {"shape": [2, 64, 8], "saved_MB": 1.0, "peak_MB": 2.0, "firing_rate": 0.1}
    result = {
        "config": {"neurons": ["lif", "bpsn", "repeat"], "lengths": [64], "time_steps": 4},
        "training": [_row("lif", 1.0, 50.0), _row("bpsn", 0.5, 40.0), _row("repeat", 1.5, 160.0)],
        "neuron_only": [
            layer | {"neuron": "lif", "L": 64, "fwd_bwd_ms_median": 8.0, "fwd_bwd_ms_min": 6.0},
            layer | {"neuron": "bpsn", "L": 64, "fwd_bwd_ms_median": 4.0, "fwd_bwd_ms_min": 4.0},
        ],
        "synops": [],
    }
    rows = [ln for ln in bench.markdown(result).splitlines() if "[2, 64, 8]" in ln]
    assert [r.split(" | ")[1].split()[0] for r in rows] == ["lif", "bpsn"]
    assert rows[1].split(" | ")[3] == "2.00x"  # 8 ms / 4 ms


def test_count_ops_counts_computing_operators_forward_and_backward():
    bench = _load()
    x = torch.ones(4, 3, requires_grad=True)
    assert bench.count_ops(lambda: (x.view(12) * 2.0).sum()) == 2  # mul, sum; the view is free
    # backward: the seed gradient (ones_like), sum's backward (an expand: a view) and mul's
    # (one mul); the first gradient of x is stored as a detached alias (a view)
    assert bench.count_ops(lambda: (x.view(12) * 2.0).sum().backward()) == 4


def _summary(student: float) -> dict:
    return {
        "teacher": {"accuracy": 0.8},
        "student": {"accuracy": student, "f1": 0.5, "firing_rate": 0.05},
        "energy": {"ratio_paper": 0.044, "ratio_full": 0.062},
        "seconds": 500.0,
    }


def test_quickstart_runs_table_gives_mean_and_sample_sd_per_family():
    bench = _load("quickstart_runs")
    rows = [
        {"family": "spikebert", "seed": s, "summary": _summary(acc)}
        for s, acc in enumerate([0.70, 0.74, 0.78])
    ] + [{"family": "snnbert", "seed": 0, "summary": _summary(0.8)}]
    lines = bench.markdown(rows).splitlines()
    assert "| spikebert | 0 | 0.8000 | 0.7000 | 0.5000 | 0.050 | 4.4% | 6.2% | 500 |" in lines
    # mean 0.74; sample sd sqrt((0.04^2 + 0 + 0.04^2) / 2) = 0.04; snnbert has one seed: no row
    assert lines[-1] == "| spikebert | 3 | 0.7400 | 0.0400 | 0.7000 | 0.7800 |"


def test_quickstart_runs_parses_explicit_family_seed_pairs():
    bench = _load("quickstart_runs")
    args = bench.parse_args(["--runs", "snnbert:3", "spikebert:0"])
    assert bench.runs(args) == [("snnbert", 3), ("spikebert", 0)]
    args = bench.parse_args(["--families", "spikebert", "snnbert", "--seeds", "0", "1"])
    assert bench.runs(args)[1] == ("spikebert", 1) and len(bench.runs(args)) == 4
    with pytest.raises(SystemExit, match="FAMILY:SEED"):
        bench.runs(bench.parse_args(["--runs", "bert:0"]))


def _recipe(candidate: str, seed: int, best: float, final: float, seconds: float) -> dict:
    return {
        "candidate": candidate,
        "seed": seed,
        "teacher": {"validation_best": 0.80, "seconds": 60.0},
        "stage1": {"seconds": 40.0},
        "stage2": {
            "validation_best": best,
            "validation_final": final,
            "seconds": seconds,
            "loadavg": [seed + 1.0, 2.5],
        },
        "seconds": 100.0 + seconds,
    }


def test_quickstart_recipes_table_gives_mean_and_sample_sd_per_candidate(tmp_path):
    import json

    bench = _load("quickstart_recipes")
    recs = [
        _recipe("baseline", 2, 0.78, 0.76, 300.0),
        _recipe("baseline", 0, 0.70, 0.70, 300.0),
        _recipe("baseline", 1, 0.74, 0.73, 300.0),
        _recipe("fast", 0, 0.75, 0.75, 100.0),
    ]
    for r in recs:
        (tmp_path / f"{r['candidate']}-seed{r['seed']}.json").write_text(json.dumps(r))
    lines = bench.markdown(bench.load_records(tmp_path)).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[1].count("|") == 10
    # baseline: best mean 0.74, sample sd sqrt((0.04^2 + 0 + 0.04^2) / 2) = 0.04; final mean
    # 0.73, sd sqrt((0.03^2 + 0 + 0.03^2) / 2) = 0.03; seeds in order; load range over seeds
    assert lines[2] == (
        "| baseline | 0,1,2 | 0.8000 +- 0.0000 | 0.7400 +- 0.0400 | 0.7300 +- 0.0300 | 0.7000 "
        "| 300 +- 0 | 400 +- 0 | 1.0-3.0 |"
    )
    assert lines[3] == "| fast | 0 | 0.8000 | 0.7500 | 0.7500 | 0.7500 | 100 | 200 | 1.0-2.5 |"


def test_quickstart_recipes_strip_every_test_entry():
    bench = _load("quickstart_recipes")
    metrics = {
        "validation": {"accuracy": 0.7},
        "test": {"accuracy": 0.9},
        "sizes": {"train": 3, "validation": 1, "test": 1},
        "runs": [{"test_accuracy": 0.9, "seconds": 1.0}],
    }
    assert bench.strip_test(metrics) == {
        "validation": {"accuracy": 0.7},
        "sizes": {"train": 3, "validation": 1},
        "runs": [{"seconds": 1.0}],
    }


def test_quickstart_recipes_resolve_candidates_and_runs():
    bench = _load("quickstart_recipes")
    assert bench.parse_runs(["baseline:0", "cache:2"]) == [("baseline", 0), ("cache", 2)]
    with pytest.raises(SystemExit, match="CANDIDATE:SEED"):
        bench.parse_runs(["nope:0"])
    cfg, spec = bench.resolve("kl-t2", 1)
    assert cfg.seed == 1 and cfg.cache_teacher
    assert all(step["temperature"] == 2.0 for step in spec.task_steps)
    # candidates keep the epochs they were run with when the quickstart's default moves
    from spikeformers.quickstart import QuickstartConfig

    assert bench.resolve("cache", 0)[0].task_epochs == 5.0
    assert bench.resolve("stage2-4ep", 2)[0] == QuickstartConfig(seed=2)  # today's default


def _product_row(method: str, ms: float, samples: int = 3, threads: int = 1) -> dict:
    return dict(
        config="paper", layer="mlp fc2", M=4096, K=3072, N=768, rate=0.05, threads=threads,
        product="forward", method=method, ms=ms, samples=samples, load=1.0,
    )  # fmt: skip


def test_sparse_products_table_reads_time_over_dense_and_marks_the_fastest():
    bench = _load("sparse_products")
    rows = [
        _product_row("dense", 400.0),
        _product_row("csr", 300.0),
        _product_row("csr, conversion excluded", 100.0),  # never "fastest": not end to end
        _product_row("event (embedding_bag)", 200.0, samples=1),
        _product_row("dense", 100.0, threads=2),
        _product_row("csr", 150.0, threads=2),  # slower than dense: nothing bold
        {**_product_row("dense", 1.0), "product": "dW"},  # another product: left out
    ]
    head, rule, one, two = bench.ratio_table(rows, "forward")
    assert head.split(" | ")[5:] == [
        "dense ms", "csr", "csr, conversion excluded", "event (embedding_bag) |"
    ]  # fmt: skip
    # 300 / 400, 100 / 400, 200 / 400 (timed once)
    assert one.endswith("| 400.0 | 0.75x | 0.25x | **0.50x (n=1)** |")
    assert two.endswith("| 2 | 100.0 | 1.50x |  |  |")


def test_sparse_products_step_table_reads_speed_up_against_the_first_mode():
    bench = _load("sparse_products")
    run = dict(
        config="paper", threads=1, load=2.0, step_s={"off": 30.0, "auto": 24.0},
        infer_s={"off": 5.0, "auto": 5.0},
    )  # fmt: skip
    *_, auto = bench.step_table([run])
    assert auto == "| paper | 1 | 2.0 | auto | 24.000 | 1.25x | 5.000 | 1.00x |"


def test_quickstart_runs_wall_time_names_the_load_it_ran_under():
    bench = _load("quickstart_runs")
    assembled = {
        "assembled_from": {"stage_loadavg": {"teacher": [0.9, 5.7], "stage2": [4.9, 3.0]}},
        "loadavg": [[2.5, 2.0, 1.0], [3.0, 2.0, 1.0]],
    }
    assert bench._load(assembled) == " (load 0.9-5.7, 1 thread, stages from the recipe sweep)"
    assert bench._load({"loadavg": [[0.2, 0.1, 0.1], [1.4, 0.5, 0.2]]}) == " (load 0.2-1.4)"
    assert bench._load({}) == ""
