"""The glibc allocator setting: freed blocks go back to the OS; the trainer applies it (opt-in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import spikeformers
from spikeformers.trainer import TrainConfig
from spikeformers.utils import allocator
from spikeformers.utils.allocator import LOW_MEMORY_MMAP_THRESHOLD, set_malloc_mmap_threshold
from tests.trainer.test_loop import run_fit, weights

MiB = 2**20


_FRESH = """
import os, sys, torch
from spikeformers.utils.allocator import LOW_MEMORY_MMAP_THRESHOLD, set_malloc_mmap_threshold
if not set_malloc_mmap_threshold(LOW_MEMORY_MMAP_THRESHOLD):
    sys.exit(3)  # not glibc
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
blocks = [torch.ones(2**20) for _ in range(48)]  # 48 x 4 MiB, every page touched
last = torch.ones(2**20)  # allocated after them: a heap could not trim below it
before = rss()
del blocks
print(before - rss(), int(last.sum().item()))
"""


def test_freed_blocks_leave_resident_memory_once_the_threshold_is_set():
    """In a fresh process (the setting is process-wide and must precede the heap's growth)."""
    src = str(Path(spikeformers.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH], capture_output=True, text=True, env=env, timeout=120
    )
    if proc.returncode == 3:
        pytest.skip("not glibc")
    assert proc.returncode == 0, proc.stderr[-2000:]
    freed, last = map(int, proc.stdout.split())
    # Each 4 MiB block was its own mapping, unmapped by free(): about 192 MiB leave RSS.
    assert freed > 150 * MiB
    assert last == MiB


@pytest.mark.parametrize("bad", [-1, 0, 32 * MiB + 1])
def test_out_of_range_thresholds_are_refused(bad):
    with pytest.raises(ValueError, match="threshold"):
        set_malloc_mmap_threshold(bad)


def test_train_config_default_is_off_and_a_threshold_opts_in():
    assert TrainConfig().malloc_mmap_threshold == 0
    assert (
        TrainConfig(malloc_mmap_threshold=LOW_MEMORY_MMAP_THRESHOLD).malloc_mmap_threshold == 65536
    )
    with pytest.raises(ValueError, match="malloc_mmap_threshold"):
        TrainConfig(malloc_mmap_threshold=-5)


def test_fit_sets_the_threshold_on_cpu_unless_zero_and_learns_the_same(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr("spikeformers.trainer.set_malloc_mmap_threshold", calls.append)
    base = TrainConfig(epochs=1, batch_size=8, lr=1e-2, log_every=1)
    off, _ = run_fit(base)  # the default leaves the allocator alone
    assert calls == []
    on, _ = run_fit(TrainConfig(**{**base.__dict__, "malloc_mmap_threshold": 65536}))
    assert calls == [65536]
    for k, v in weights(on).items():
        assert torch.equal(weights(off)[k], v), k


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert set_malloc_mmap_threshold(LOW_MEMORY_MMAP_THRESHOLD) is False


def test_flag_reaches_the_train_config():
    from spikeformers.cli import build_parser
    from spikeformers.cli.options import train_config

    base = ["train", "--model", "spikebert-tiny", "--task", "sst2", "--out", "x"]
    args = build_parser().parse_args([*base, "--malloc-mmap-threshold", "65536"])
    assert train_config(args).malloc_mmap_threshold == 65536
    assert train_config(build_parser().parse_args(base)).malloc_mmap_threshold == 0
