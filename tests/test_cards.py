"""Model cards (README.md in the Hub's format) and ``spikeformers push``."""

from __future__ import annotations

import json
import shlex

import pytest

from spikeformers import cards
from spikeformers.cards import model_card, read_card_metadata, reproduce_command
from spikeformers.cli import build_parser, main
from spikeformers.cli.options import data_args, train_config
from spikeformers.pipeline import DataArgs
from spikeformers.trainer import TrainConfig

TINY = ["--set", "num_layers=2", "hidden_size=32", "num_heads=4", "time_steps=2"]


def _write_run(folder, *, command="distill-task", teacher="org/bert-sst2", energy=None):
    """A hand-written finished run: config, run_config, metrics (and energy) files."""
    folder.mkdir()
    config = {"model_type": "spikebert", "hidden_size": 32, "num_labels": 2}
    rc = {
        "command": command,
        "spikeformers_version": "0.1.0",
        "model": "spikebert-tiny",
        "teacher": teacher,
        "data": {"task": "sst2", "data_dir": "/data", "max_length": 16, "text_column": "sentence"},
        "train": {"epochs": 2.0, "batch_size": 8, "lr": 0.001, "grad_clip": None, "seed": 3},
        "distill": {"stage": "task", "w_logit": 1.0, "w_ce": 0.5, "temperature": 2.0},
        "model_overrides": {"time_steps": 4},
    }
    metrics = {
        "validation": {"accuracy": 0.8125, "f1": 0.8, "num_examples": 16, "firing_rate": 0.1},
        "test": {
            "accuracy": 0.75,
            "f1": 0.7,
            "num_examples": 16,
            "firing_rate": 0.2,
            "firing_rates": {"blocks.0.lif": 0.15, "blocks.1.lif": 0.25},
        },
        "task": "sst2",
        "steps": 12,
        "selected": {"step": 6},
        "sizes": {"train": 48},
    }
    for name, obj in (("config", config), ("run_config", rc), ("metrics", metrics)):
        (folder / f"{name}.json").write_text(json.dumps(obj))
    if energy is not None:
        (folder / "energy.json").write_text(json.dumps(energy))
    return folder


def test_card_metadata_parses_and_matches_metrics(tmp_path):
    run = _write_run(tmp_path / "my-run")
    cards.write_model_card(run)
    meta = read_card_metadata(run / "README.md")
    assert meta["library_name"] == "spikeformers"
    assert {"spiking-neural-network", "knowledge-distillation", "spikebert"} <= set(meta["tags"])
    assert meta["datasets"] == ["sst2"] and meta["metrics"] == ["accuracy", "f1"]
    assert meta["base_model"] == "org/bert-sst2" and meta["teacher"] == "org/bert-sst2"
    (index,) = meta["model-index"]
    assert index["name"] == "my-run"
    got = {(r["dataset"]["split"], m["type"]): m["value"] for r in index["results"]
           for m in r["metrics"]}  # fmt: skip
    assert got == {
        ("validation", "accuracy"): 0.8125,
        ("validation", "f1"): 0.8,
        ("test", "accuracy"): 0.75,
        ("test", "f1"): 0.7,
    }
    text = (run / "README.md").read_text()
    assert "| `blocks.1.lif` | 0.2500 |" in text and "Not measured yet" in text


def test_local_teacher_is_named_but_not_a_base_model(tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    run = _write_run(tmp_path / "r", teacher=str(teacher))
    meta = read_card_metadata(cards.write_model_card(run))
    assert meta["teacher"] == str(teacher) and "base_model" not in meta
    run2 = _write_run(tmp_path / "r2", teacher="minilm")
    assert read_card_metadata(cards.write_model_card(run2))["base_model"] == cards.MINILM_HUB_ID


def test_energy_section_has_every_convention_with_the_teacher(tmp_path):
    energy = {
        "num_samples": 3,
        "split": "test",
        "task": "sst2",
        "batch_size": 1,
        "constants": {"name": "45nm", "mac_pj": 4.6, "ac_pj": 0.9, "op_pj": 4.6},
        "conventions": {"paper": "P-MEANING", "full": "F-MEANING"},
        "totals": {"energy_pj_paper": 2.0e6, "energy_pj_full": 5.0e6, "macs": 1.0},
        "teacher": {"totals": {"energy_pj_paper": 8.0e6, "energy_pj_full": 1.0e7}},
    }
    run = _write_run(tmp_path / "r", energy=energy)
    text = model_card(run)
    assert "| paper | 2 µJ | 8 µJ | 25.00% | P-MEANING |" in text
    assert "| full | 5 µJ | 10 µJ | 50.00% | F-MEANING |" in text


def test_reproduce_command_parses_back_to_the_same_settings(tmp_path):
    run = _write_run(tmp_path / "r")
    rc = json.loads((run / "run_config.json").read_text())
    cmd = reproduce_command(rc, out="again")
    a = build_parser().parse_args(shlex.split(cmd)[1:])
    assert a.command == "distill" and a.stage == "task" and a.out == "again"
    assert a.model == "spikebert-tiny" and a.teacher == "org/bert-sst2"
    assert a.set == ["time_steps=4"]
    assert (a.w_logit, a.w_ce, a.temperature) == (1.0, 0.5, 2.0)
    assert data_args(a) == DataArgs(task="sst2", data_dir="/data", max_length=16)
    assert train_config(a) == TrainConfig(
        epochs=2.0, batch_size=8, lr=0.001, grad_clip=None, seed=3
    )


def test_push_offline_is_one_clean_line(tmp_path, monkeypatch, capsys):
    run = _write_run(tmp_path / "r")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", str(run), "--repo-id", "me/run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "HF_HUB_OFFLINE" in err and err.startswith("spikeformers push")
    assert (run / "README.md").is_file()  # the card is written anyway, ready to upload


def test_push_upload_failure_and_success(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    run = _write_run(tmp_path / "r")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create", repo_id, kw))

    def failing(self, **kw):
        raise ConnectionError("Max retries exceeded with url\nsecond line of noise")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", failing)
    assert main(["push", str(run), "--repo-id", "me/run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"spikeformers push: error: cannot push {run} to me/run: ConnectionError: "
        "Max retries exceeded with url"
    )

    def upload(self, **kw):
        calls.append(("upload", kw))
        return "https://hub/me/run/commit/1"

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload)
    assert main(["push", str(run), "--repo-id", "me/run", "--private"]) == 0
    assert capsys.readouterr().out.strip() == "https://hub/me/run/commit/1"
    upload_kw = calls[-1][1]
    assert upload_kw["folder_path"] == str(run) and upload_kw["repo_id"] == "me/run"
    assert "checkpoints/*" in upload_kw["ignore_patterns"]
    assert calls[-2] == ("create", "me/run", {"private": True, "exist_ok": True})


@pytest.mark.slow
def test_a_distilled_run_gets_a_card_refreshed_by_energy(tmp_path, tiny_teacher_dir, csv_data):
    data = ["--train-file", csv_data["train"], "--validation-file", csv_data["dev"],
            "--test-file", csv_data["test"], "--max-length", "16"]  # fmt: skip
    run = tmp_path / "s2"
    argv = ["distill", "--stage", "task", "--model", "spikebert-tiny", "--teacher",
            str(tiny_teacher_dir), *TINY, *data, "--epochs", "1", "--batch-size", "8",
            "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    meta = read_card_metadata(run / "README.md")
    (index,) = meta["model-index"]
    for result in index["results"]:
        split = result["dataset"]["split"]
        for m in result["metrics"]:
            assert m["value"] == pytest.approx(metrics[split][m["type"]], abs=1e-6)
    assert "accuracy" in meta["metrics"] and meta["teacher"] == str(tiny_teacher_dir)
    assert "Not measured yet" in (run / "README.md").read_text()
    energy_argv = ["energy", "--model", str(run), "--teacher", str(tiny_teacher_dir), *data,
                   "--max-samples", "2", "--device", "cpu"]  # fmt: skip
    assert main(energy_argv) == 0
    energy = json.loads((run / "energy.json").read_text())
    text = (run / "README.md").read_text()
    assert "Not measured yet" not in text
    for conv, s, _t, ratio, _m in cards.energy_rows(energy):
        assert f"| {conv} | {cards._pj(s)} |" in text and f"{100 * ratio:.2f}%" in text
    assert {"paper", "full"} <= {r[0] for r in cards.energy_rows(energy)}
