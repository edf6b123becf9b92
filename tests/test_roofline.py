"""benchmarks/roofline.py: the FLOP count against hand counts, the worker's result and table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from spikeformers import create_model
from spikeformers.models.base import ClassifierOutput

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load():
    spec = importlib.util.spec_from_file_location("roofline", BENCHMARKS / "roofline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class _TwoLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x, labels):
        loss = self.b(torch.relu(self.a(x))).square().mean()
        return ClassifierOutput(logits=x, loss=loss)


def test_flops_of_two_linears_match_the_hand_count():
    torch.manual_seed(0)
    fwd, bwd = _load().count_step_flops(_TwoLinear(), {"x": torch.randn(5, 8), "labels": None})
    assert fwd == 2 * 5 * 8 * 16 + 2 * 5 * 16 * 4
    # The input needs no gradient: layer a gets a weight gradient only, b both.
    assert bwd == 2 * 5 * 8 * 16 + 2 * (2 * 5 * 16 * 4)


def test_flops_of_a_tiny_spikebert_step_match_the_hand_count():
    t, b, n, d, heads, hidden, c = 2, 2, 6, 8, 2, 16, 2
    dh = d // heads
    model = create_model(
        "spikebert-tiny", vocab_size=50, num_layers=1, hidden_size=d, num_heads=heads,
        mlp_ratio=hidden / d, time_steps=t, num_labels=c,
    )  # fmt: skip
    batch = {
        "input_ids": torch.randint(1, 50, (b, n)),
        "attention_mask": torch.ones(b, n, dtype=torch.long),
        "labels": torch.tensor([0, 1]),
    }
    fwd, bwd = _load().count_step_flops(model, batch)
    qkv = 3 * 2 * (b * n) * d * d  # once: block 0's input is the same at every step
    attn = t * b * heads * 2 * (2 * n * dh * dh)  # K^T V, then Q (K^T V): L = 6 > dh = 4
    out = 2 * (t * b * n) * d * d
    mlp = 2 * (2 * (t * b * n) * d * hidden)
    head = 2 * (t * b) * d * c
    assert fwd == qkv + attn + out + mlp + head
    assert bwd == 2 * fwd  # every product's operands need gradients (input and weight)


def test_worker_reports_a_consistent_row_and_the_table_reads_it():
    roofline = _load()
    cfg = roofline.QUICK["spikebert-tiny"]
    row = roofline.run_worker(cfg, torch.device("cpu"), steps=2, infer_reps=1, warmup=2)
    assert row["flops_step"] == row["flops_forward"] * 3
    assert len(row["step_s_all"]) == 2 and len(row["losses"]) == 4  # 2 warm-up + 2 timed
    assert row["minor_faults_per_step"] >= 0
    t = row["time_s"]
    assert t["step"] > 0 and t["forward"] + t["backward"] + t["optimizer"] > 0.5 * t["step"]
    assert row["achieved_flops_per_s"] == row["flops_step"] / t["step"]
    assert row["peak_rss_MiB"] >= row["rss_after_setup_MiB"] > 0
    text = roofline.table([row], peak=row["achieved_flops_per_s"] * 4)
    assert "| spikebert-tiny |" in text and "| 25% of " in text and row["step_cpu_s"] > 0


@pytest.mark.parametrize("name", ["spikebert-tiny", "snnbert-tiny"])
def test_worker_with_gradient_checkpointing_trains_the_same(name):
    roofline = _load()
    cfg = roofline.QUICK[name]
    rows = [roofline.run_worker(cfg, torch.device("cpu"), 1, 1, ckpt=c) for c in (False, True)]
    assert rows[1]["gradient_checkpointing"] and not rows[0]["gradient_checkpointing"]
    assert rows[0]["losses"] == rows[1]["losses"]  # the recomputation is the forward, bitwise


def _row(name, flops, step, cpu, peak, setup, infer):
    return {
        "config": {"name": name},
        "flops_step": flops,
        "time_s": {"step": step},
        "step_cpu_s": cpu,
        "peak_rss_MiB": peak,
        "rss_after_setup_MiB": setup,
        "infer_latency_s": infer,
    }


def test_compare_states_speed_ups_and_memory_ratios_as_its_header_says():
    base = [_row("a", 100, 2.0, 4.0, 1000, 400, 0.3), _row("only-base", 1, 1, 1, 1, 0, 1)]
    new = [_row("a", 80, 1.0, 2.0, 700, 400, 0.2)]
    text = _load().compare(base, new)
    (line,) = [ln for ln in text.splitlines() if ln.startswith("| a |")]
    assert line == "| a | 0.80 | 2.00x | 2.00x | 0.70 | 0.50 | 1.50x |"
    assert "only-base" not in text
