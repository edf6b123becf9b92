"""The glibc allocator setting: freed blocks go back to the OS; the trainer applies it (opt-out)."""

from __future__ import annotations

import os

import pytest
import torch

from spikeformers.trainer import TrainConfig
from spikeformers.utils import allocator
from spikeformers.utils.allocator import DEFAULT_MMAP_THRESHOLD, set_malloc_mmap_threshold
from tests.trainer.test_loop import run_fit, weights

MiB = 2**20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_freed_blocks_leave_resident_memory_once_the_threshold_is_set():
    if not set_malloc_mmap_threshold(DEFAULT_MMAP_THRESHOLD):
        pytest.skip("not glibc")
    blocks = [torch.ones(MiB) for _ in range(48)]  # 48 x 4 MiB, every page touched
    last = torch.ones(MiB)  # allocated after them: a heap could not trim below it
    before = _rss()
    del blocks
    # Each 4 MiB block was its own mapping, unmapped by free(): about 192 MiB leave RSS.
    assert before - _rss() > 150 * MiB
    assert last.sum().item() == MiB


@pytest.mark.parametrize("bad", [-1, 0, 32 * MiB + 1])
def test_out_of_range_thresholds_are_refused(bad):
    with pytest.raises(ValueError, match="threshold"):
        set_malloc_mmap_threshold(bad)


def test_train_config_default_is_on_and_zero_opts_out():
    assert TrainConfig().malloc_mmap_threshold == DEFAULT_MMAP_THRESHOLD == 65536
    TrainConfig(malloc_mmap_threshold=0)
    with pytest.raises(ValueError, match="malloc_mmap_threshold"):
        TrainConfig(malloc_mmap_threshold=-5)


def test_fit_sets_the_threshold_on_cpu_unless_zero_and_learns_the_same(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr("spikeformers.trainer.set_malloc_mmap_threshold", calls.append)
    base = TrainConfig(epochs=1, batch_size=8, lr=1e-2, log_every=1)
    on, _ = run_fit(base)
    assert calls == [65536]
    off, _ = run_fit(TrainConfig(**{**base.__dict__, "malloc_mmap_threshold": 0}))
    assert calls == [65536]
    for k, v in weights(on).items():
        assert torch.equal(weights(off)[k], v), k


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert set_malloc_mmap_threshold(DEFAULT_MMAP_THRESHOLD) is False


def test_flag_reaches_the_train_config():
    from spikeformers.cli import build_parser
    from spikeformers.cli.options import train_config

    base = ["train", "--model", "spikebert-tiny", "--task", "sst2", "--out", "x"]
    args = build_parser().parse_args([*base, "--malloc-mmap-threshold", "0"])
    assert train_config(args).malloc_mmap_threshold == 0
    assert train_config(build_parser().parse_args(base)).malloc_mmap_threshold == 65536
