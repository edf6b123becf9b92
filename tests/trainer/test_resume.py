"""Kill a real CLI training with SIGKILL, or break a checkpoint write, then ``--resume``: the final
model, projections and training log equal those of an uninterrupted run, bit for bit (CPU)."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from spikeformers import checkpoint as ckpt
from spikeformers.cli import main
from tests.trainer.helpers import distill_argv, load_weights

# dropout on, so an exact resume needs the restored RNG state; 2 epochs of 4 steps
EXTRA = ["--epochs", "2", "--evals-per-epoch", "2"]


def _argv(ws, out: Path, *more: str) -> list[str]:
    return distill_argv(ws, out, *EXTRA, *more, sets=("dropout=0.2",))


@pytest.fixture(scope="module")
def reference(ws):
    out = Path(ws["root"]) / "reference"
    assert main(_argv(ws, out)) == 0
    return out


def _same_run(a: Path, b: Path) -> None:
    for name in ("model.safetensors", "distiller.safetensors"):
        wa, wb = load_weights(a / name), load_weights(b / name)
        assert wa.keys() == wb.keys()
        for k in wa:
            assert (wa[k] == wb[k]).all(), f"{name}:{k} differs"
    log_a = (a / "train_log.jsonl").read_text().splitlines()
    log_b = (b / "train_log.jsonl").read_text().splitlines()
    assert log_a == log_b  # same losses and validations, no duplicated or torn records


def _child(argv: list[str]) -> None:
    os._exit(main(argv))


def test_kill_9_at_a_random_step_then_resume(ws, reference, tmp_path):
    out = tmp_path / "run"
    argv = _argv(ws, out, "--save-every", "1")
    rng = random.Random()
    step = rng.randint(1, 6)
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(argv,))
    proc.start()
    deadline = time.monotonic() + 120
    while proc.is_alive() and not (out / "checkpoints" / f"step-{step}").is_dir():
        assert time.monotonic() < deadline, "training never reached the kill point"
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.05))  # land anywhere in the next step or checkpoint write
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL  # killed mid-run, not finished
    assert main([*argv, "--resume"]) == 0, f"resume after a kill past step {step}"
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    _same_run(reference, out)


def test_interrupted_checkpoint_write_keeps_the_previous_one(
    ws, reference, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    argv = _argv(ws, out, "--save-every", "1")
    real = ckpt._write_trainer_state

    def breaks_at_step_3(path: Path, state: dict) -> None:
        if state["step"] == 3:
            path.write_bytes(b"PK\x03\x04 half a file")
            raise OSError(28, "No space left on device (simulated)")
        real(path, state)

    monkeypatch.setattr(ckpt, "_write_trainer_state", breaks_at_step_3)
    assert main(argv) == 2
    monkeypatch.undo()
    assert "No space left on device" in capsys.readouterr().err
    assert [s for s, _ in ckpt.complete_checkpoints(out / "checkpoints")] == [1, 2]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert ckpt.load(out / "checkpoints" / "step-2").step == 2  # still loadable
    assert main([*argv, "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().err and "step-2" in (out / "run.log").read_text()
    _same_run(reference, out)


def test_checkpoints_of_an_earlier_run_need_resume_or_overwrite(ws, reference, tmp_path, capsys):
    out = tmp_path / "run"
    folder = out / "checkpoints" / "step-3"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"format": 1, "step": 3, "train_config": {"lr": 0.1}}')
    (out / "run_config.json").write_text('{"command": "distill-task"}')
    assert main(_argv(ws, out, "--save-every", "1")) == 2
    assert "pass --resume to continue it, or --overwrite" in capsys.readouterr().err
    assert main(_argv(ws, out, "--save-every", "1", "--resume")) == 2
    assert "training settings differ (lr: checkpoint 0.1, now 0.003)" in capsys.readouterr().err
