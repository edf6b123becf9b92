"""Two CPU processes (gloo) train the same model as one process with the same global batch.

The ranks are forked from the test process and set torchrun's environment variables (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``...) before calling the CLI, which is exactly what torchrun does
but without a fresh interpreter per rank (imports alone would cost ~10 s of CPU each).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikeformers.cli import main
from tests.trainer.helpers import distill_argv, free_port, load_weights, max_diff

# Losses that are means over examples (CE + logit KL), so the sharded step equals the full-batch
# step; 29 examples in global batches of 8: the last batch (5) splits 3 + 2 over the ranks.
ARGS = ("--epochs", "2", "--w-feat", "0", "--w-emb", "0", "--max-train-samples", "29")


def _rank(rank: int, world: int, port: int, argv: list[str]) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    os._exit(main(argv))


def _launch(world: int, argv: list[str]) -> list[int]:
    ctx = multiprocessing.get_context("fork")
    port = free_port()
    procs = [ctx.Process(target=_rank, args=(r, world, port, argv)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    return codes


def test_two_processes_equal_one_process(ws, tmp_path, capfd):
    """2 ranks x 2 accumulation steps x 2 examples = the 1-process global batch of 8."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(distill_argv(ws, one, *ARGS)) == 0
    assert _launch(2, distill_argv(ws, two, *ARGS, "--grad-accum", "2")) == [0, 0]
    for name in ("model.safetensors", "distiller.safetensors"):
        assert max_diff(load_weights(one / name), load_weights(two / name)) < 1e-5, name
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m1["steps"] == m2["steps"] == 8
    for key in ("accuracy", "f1", "mcc", "num_examples"):  # sharded eval, gathered logits
        assert m1["validation"][key] == m2["validation"][key]
    assert m1["selected"]["step"] == m2["selected"]["step"]
    # Firing rates over real tokens add up over the ranks' shards to the one-process figure
    # (batching differs: each rank buckets its own shard); the padded figure is reported too.
    for key in ("firing_rate", "spikes_per_token"):
        assert m2["validation"][key] == pytest.approx(m1["validation"][key], rel=1e-4), key
    assert 0 < m2["validation"]["firing_rate_padded"] <= m2["validation"]["firing_rate"]
    rc = json.loads((two / "run_config.json").read_text())
    assert rc["world_size"] == 2 and rc["train"]["batch_size"] == 8
    assert rc["train"]["grad_accum"] == 2
    out = capfd.readouterr().out
    assert out.count('"selected"') == 2  # the 1-process run and rank 0 print; rank 1 does not


def test_global_batch_not_divisible_by_world_size(ws, tmp_path, capfd):
    argv = distill_argv(ws, tmp_path / "o", *ARGS)
    argv[argv.index("--batch-size") + 1] = "7"
    assert _launch(2, argv) == [2, 2]
    err = capfd.readouterr().err
    assert "--batch-size 7 (the global batch) is not divisible by 2 process(es)" in err


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("SPIKEFORMERS_SKIP_TORCHRUN")),
    reason="SPIKEFORMERS_SKIP_TORCHRUN is set (this test takes ~40 s on 2 cores)",
)
def test_torchrun_command_line(ws, tmp_path):
    """The documented command, through torchrun itself."""
    out = tmp_path / "tr"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "spikeformers",
        *distill_argv(ws, out, "--max-steps", "2"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["steps"] == 2  # one JSON document: rank 0 only
    assert (Path(out) / "model.safetensors").is_file()
