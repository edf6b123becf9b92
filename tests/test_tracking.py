"""Experiment tracking: the callback interface of the loop, tag names, and each backend offline."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import pytest
import torch

from spikeformers import tracking
from spikeformers.cli import main
from spikeformers.tracking import (
    MlflowTracker,
    TrackingCallback,
    WandbTracker,
    record_scalars,
    resolve_report_to,
)
from spikeformers.trainer import TrainConfig
from tests.trainer.test_loop import Toy, run_fit, toy_data


class Recorder:
    """A fake callback: remembers every record and how often it was closed."""

    def __init__(self):
        self.records: list[dict] = []
        self.ended = 0

    def on_log(self, record: dict) -> None:
        self.records.append(json.loads(json.dumps(record)))

    def on_train_end(self) -> None:
        self.ended += 1


def test_fit_hands_every_log_record_to_its_callbacks(tmp_path):
    rec = Recorder()
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, log_every=1)
    log = tmp_path / "log.jsonl"
    model = Toy()
    run_fit(cfg, model, log_path=log, callbacks=[rec], evaluate_fn=lambda: {"accuracy": 0.5})
    written = [json.loads(line) for line in log.read_text().splitlines()]
    # the callbacks get the training records with their interval (timing) on top
    assert [{k: v for k, v in r.items() if k != "interval"} for r in rec.records] == written
    assert all(("interval" in r) == ("lr" in r) for r in rec.records)
    # 21 examples, batch 8: 3 steps per epoch, 6 training records and 2 validation records
    assert [r["step"] for r in rec.records if "lr" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in rec.records if "validation" in r] == [3, 6]
    assert {"loss", "ce", "lr"} <= set(rec.records[0])
    assert rec.ended == 1


def test_callbacks_are_closed_when_training_fails():
    rec = Recorder()
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-2, log_every=1)
    with pytest.raises(FloatingPointError):
        run_fit(cfg, Toy(nan_at=2), callbacks=[rec])
    assert rec.ended == 1 and [r["step"] for r in rec.records] == [1]


def test_record_scalars_tags():
    step, s = record_scalars({"step": 7, "lr": 1e-3, "loss": 2.0, "ce": 0.5, "note": "x"})
    assert step == 7 and s == {"train/lr": 1e-3, "train/loss": 2.0, "train/ce": 0.5}
    val = {
        "accuracy": 0.75,
        "num_examples": 16,
        "firing_rate": 0.2,
        "firing_rates": {"layers.0.lif": 0.1, "layers.1.lif": 0.3},
        "flag": True,
        "nan": float("nan"),
    }
    step, s = record_scalars({"step": 9, "epoch": 1.0, "validation": val})
    assert step == 9
    assert s == {
        "validation/accuracy": 0.75,
        "validation/num_examples": 16.0,
        "validation/firing_rate": 0.2,
        "firing_rate/layers.0.lif": 0.1,
        "firing_rate/layers.1.lif": 0.3,
    }


def test_resolve_report_to(monkeypatch):
    assert resolve_report_to(None) == [] and resolve_report_to(["none"]) == []
    with pytest.raises(ValueError, match="cannot be combined"):
        resolve_report_to(["none", "wandb"])
    with pytest.raises(ValueError, match="choose from"):
        resolve_report_to(["comet"])
    monkeypatch.setitem(tracking._PACKAGES, "mlflow", ("no_such_module_x", "mlflow-skinny"))
    with pytest.raises(ImportError, match=r"pip install mlflow-skinny .*spikeformers\[track\]"):
        resolve_report_to(["mlflow"])


def test_missing_package_is_a_clean_cli_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(tracking._PACKAGES, "tensorboard", ("no_such_module_x", "tensorboard"))
    argv = ["train", "--out", str(tmp_path / "r"), "--report-to", "tensorboard", "wandb"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--report-to tensorboard needs the 'tensorboard' package" in err
    assert not (tmp_path / "r").exists()  # refused before any work


class _FakeWandbRun:
    def __init__(self, calls):
        self.calls = calls

    def log(self, scalars, step):
        self.calls.append(("log", step, dict(scalars)))

    def finish(self):
        self.calls.append(("finish",))


def test_wandb_runs_offline_in_the_run_folder(monkeypatch, tmp_path):
    calls: list = []
    fake = types.SimpleNamespace(
        init=lambda **kw: calls.append(("init", kw)) or _FakeWandbRun(calls)
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cb = TrackingCallback([WandbTracker(tmp_path, {"train/lr": 0.1})])
    cb.on_log({"step": 2, "lr": 0.1, "loss": 1.5})
    cb.on_log({"step": 2, "epoch": 1.0, "validation": {"accuracy": 0.5}})
    cb.on_train_end()
    init = calls[0][1]
    assert init["mode"] == "offline" and init["dir"] == str(tmp_path)
    assert init["config"] == {"train/lr": 0.1}
    assert calls[1:] == [
        ("log", 2, {"train/lr": 0.1, "train/loss": 1.5}),
        ("log", 2, {"validation/accuracy": 0.5}),
        ("finish",),
    ]


def test_mlflow_uses_a_local_file_store(monkeypatch, tmp_path):
    calls: list = []
    fake = types.SimpleNamespace(
        set_tracking_uri=lambda uri: calls.append(("uri", uri)),
        set_experiment=lambda name: calls.append(("experiment", name)),
        start_run=lambda run_name: calls.append(("start", run_name)),
        log_params=lambda p: calls.append(("params", p)),
        log_metrics=lambda m, step: calls.append(("metrics", step, m)),
        end_run=lambda: calls.append(("end",)),
    )
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    cb = TrackingCallback([MlflowTracker(tmp_path, {"seed": 0})])
    cb.on_log({"step": 1, "epoch": 1.0, "validation": {"firing_rates": {"enc[0]:lif": 0.25}}})
    cb.on_train_end()
    assert calls == [
        ("uri", (tmp_path / "mlruns").resolve().as_uri()),
        ("experiment", "spikeformers"),
        ("start", tmp_path.name),
        ("params", {"seed": "0"}),
        ("metrics", 1, {"firing_rate/enc_0__lif": 0.25}),
        ("end",),
    ]


def test_steps_per_second_between_training_records(monkeypatch):
    got: list = []

    class Fake(tracking.Tracker):
        def _start(self, first_step):
            pass

        def _log(self, step, scalars):
            got.append((step, scalars))

    clock = iter([10.0, 12.0])
    monkeypatch.setattr(tracking.time, "perf_counter", lambda: next(clock))
    cb = TrackingCallback([Fake(".", {})])
    cb.on_log({"step": 4, "lr": 0.1, "loss": 1.0})
    cb.on_log({"step": 8, "lr": 0.1, "loss": 0.5})
    assert "train/steps_per_s" not in got[0][1]
    assert got[1][1]["train/steps_per_s"] == pytest.approx(4 / 2.0)


def test_training_records_carry_examples_tokens_and_training_seconds():
    # 21 examples, batch 8, log every 3 steps = once per epoch: each interval is one whole epoch.
    rec = Recorder()
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, log_every=3)
    run_fit(cfg, callbacks=[rec], evaluate_fn=lambda: {"accuracy": 0.5})
    real_tokens = sum(len(item["input_ids"]) for item in toy_data())  # padding never counted
    intervals = [r["interval"] for r in rec.records if "lr" in r]
    assert [(i["steps"], i["examples"], i["tokens"]) for i in intervals] == [
        (3, 21, real_tokens)
    ] * 2
    assert all(i["seconds"] > 0 for i in intervals)


def test_throughput_scalars_from_a_record_interval():
    interval = {"steps": 4, "examples": 32, "tokens": 400, "seconds": 2.5}
    _, s = record_scalars({"step": 8, "lr": 0.1, "loss": 0.5, "interval": interval})
    assert s == {
        "train/lr": 0.1,
        "train/loss": 0.5,
        "train/examples_per_s": 32 / 2.5,  # 12.8
        "train/tokens_per_s": 400 / 2.5,  # 160
    }
    # batches without a host-side attention mask: tokens unknown, only examples/s is logged
    _, s = record_scalars({"step": 8, "lr": 0.1, "interval": {**interval, "tokens": None}})
    assert s == {"train/lr": 0.1, "train/examples_per_s": 12.8}
    # spikes per token comes with the validation metrics, under its own name
    val = {"accuracy": 0.5, "spikes_per_token": 96.0, "firing_rates": {"a": 0.25}}
    _, s = record_scalars({"step": 8, "epoch": 1.0, "validation": val})
    assert s["validation/spikes_per_token"] == 96.0 and s["firing_rate/a"] == 0.25


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_logged_scalars(tmp_path, tiny_teacher_dir, csv_data):
    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed (pip install 'spikeformers[track]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    data = ["--train-file", csv_data["train"], "--validation-file", csv_data["dev"]]
    argv = [
        "train", "--model", "spikebert-tiny", "--tokenizer", str(tiny_teacher_dir),
        "--set", "num_layers=2", "hidden_size=32", "num_heads=4", "time_steps=2",
        *data, "--max-length", "16", "--epochs", "2", "--batch-size", "8", "--no-progress",
        "--report-to", "tensorboard", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    records = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    train = [r for r in records if "lr" in r]
    val = [r for r in records if "validation" in r]
    loss = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert loss == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in train]
    got = [(e.step, e.value) for e in acc.Scalars("validation/accuracy")]
    assert got == [(r["step"], pytest.approx(r["validation"]["accuracy"])) for r in val]
    layers = val[-1]["validation"]["firing_rates"]
    assert layers and {f"firing_rate/{k}" for k in layers} <= tags
    assert {"train/lr", "train/ce", "validation/firing_rate"} <= tags
    assert torch.tensor([e.value for e in acc.Scalars("train/lr")]).ge(0).all()
