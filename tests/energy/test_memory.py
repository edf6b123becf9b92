"""The memory-aware convention against a hand count, and the break-even rate by construction."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch import nn

from spikeformers.energy import OpCounter, price
from spikeformers.energy.memory import (
    FULL,
    MEMORY,
    PAPER,
    MemoryTable,
    break_even,
    convention_totals,
    memory_rows,
    precision_tables,
    scale_activity,
)
from spikeformers.neurons.lif import LIF

SRAM = 20.0 / 64  # Horowitz 2014: 20 pJ per 64-bit access of a 32 KB SRAM
DRAM = 1300.0 / 64


class TinySNN(nn.Module):
    """x [T=2, 1, 4] real -> Linear(4, 3) -> LIF -> Linear(3, 2) on the spikes."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3, bias=False)
        self.lif = LIF(tau=2.0, v_threshold=1.0)
        self.fc2 = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            # x = [0.5, 0, 0, 0] -> currents [10, -10, 10]: neurons 0 and 2 fire every step
            self.fc1.weight.zero_()
            self.fc1.weight[:, 0] = torch.tensor([20.0, -20.0, 20.0])
            self.fc2.weight.fill_(0.5)

    def forward(self, x):
        return self.fc2(self.lif(self.fc1(x)))


class TinyANN(nn.Module):
    """The teacher: Linear(4, 8) -> Linear(8, 2) on the same real input."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8, bias=False)
        self.fc2 = nn.Linear(8, 2, bias=False)

    def forward(self, x):
        return self.fc2(self.fc1(x))


X = torch.tensor([[[0.5, 0.0, 0.0, 0.0]], [[0.5, 0.0, 0.0, 0.0]]])  # [T=2, B=1, 4]


def count(model):
    with torch.no_grad(), OpCounter(model) as c:
        model(X)
    c.counts.num_samples = 1
    return c.counts


def test_the_toy_fires_as_designed():
    counts = count(TinySNN())
    assert counts.spikes == {"lif": 4.0} and counts.spike_elements == {"lif": 6}


def test_memory_traffic_matches_a_hand_count():
    model = TinySNN()
    counts = count(model)
    rows = {(r.name, r.kind): r for r in memory_rows(counts, model)}
    fc1, fc2 = rows[("fc1", "matmul")], rows[("fc2", "matmul")]
    # fc1: 2 rows x 4 inputs x 3 outputs = 24 real MACs: a weight read each, each input read once
    # (8 = 2 x 4), each output written once (6 = 2 x 3)
    assert (fc1.weight_reads, fc1.input_reads, fc1.output_writes) == (24, 8, 6)
    assert fc1.membrane_accesses == 0
    # fc2: 4 spikes x 2 outputs = 8 synaptic events: 8 weight reads, 16 membrane reads + writes
    assert (fc2.weight_reads, fc2.input_reads, fc2.output_writes) == (8, 0, 0)
    assert fc2.membrane_accesses == 16
    # the LIF: 3 neurons x 2 steps, each potential read and written; 4 spikes written and read
    assert rows[("lif", "membrane")].membrane_accesses == 12
    assert rows[("lif", "spikes")].spike_events == 8
    traffic = SRAM * (32 * (24 + 8 + 6 + 8 + 16 + 12) + 16 * 8)  # = 780 pJ
    assert sum(r.energy_pj_traffic for r in rows.values()) == pytest.approx(traffic)
    totals = convention_totals(counts, model)
    full = price(counts).energy_pj_full
    assert totals[MEMORY] == pytest.approx(full + traffic)
    # paper and full are the existing conventions, unchanged: 24 MACs + 8 ACs for paper
    assert totals[PAPER] == pytest.approx(24 * 4.6 + 8 * 0.9)
    assert totals[FULL] == pytest.approx(full)


def test_weights_in_dram_and_int8_widths():
    model = TinySNN()
    counts = count(model)
    base = convention_totals(counts, model)[MEMORY]
    dram = convention_totals(counts, model, memory=MemoryTable(weights_in="dram"))[MEMORY]
    assert dram - base == pytest.approx(32 * (24 + 8) * (DRAM - SRAM))
    table, mem = precision_tables("int8")
    assert (table.name, mem.bits) == ("45nm-int8", 8)
    int8 = convention_totals(counts, model, table, mem)
    assert int8[PAPER] == pytest.approx(24 * 0.23 + 8 * 0.03)
    traffic = SRAM * (8 * (24 + 8 + 6 + 8 + 16 + 12) + 16 * 8)
    assert int8[MEMORY] == pytest.approx(price(counts, table).energy_pj_full + traffic)
    with pytest.raises(ValueError, match="choose from"):
        precision_tables("fp8")


def test_break_even_rate_by_construction():
    student, teacher = TinySNN(), TinyANN()
    s_counts, t_counts = count(student), count(teacher)
    t_totals = convention_totals(t_counts, teacher)
    be = break_even(s_counts, student, t_totals)
    # by hand for the paper convention: 24 x 4.6 + s x 8 x 0.9 = teacher's 96 MACs x 4.6
    assert be[PAPER]["scale"] == pytest.approx((96 * 4.6 - 24 * 4.6) / (8 * 0.9))
    assert be[PAPER]["measured_rate"] == pytest.approx(4 / 6)
    for conv in (PAPER, FULL, MEMORY):
        s = be[conv]["scale"]
        assert s is not None and be[conv]["rate"] == pytest.approx(s * 4 / 6)
        at_rate = convention_totals(scale_activity(s_counts, s), student)[conv]
        assert at_rate == pytest.approx(t_totals[conv], rel=1e-9)
    # a teacher cheaper than the student's spike-free floor: no break-even
    cheap = {k: 1.0 for k in t_totals}
    assert all(v["rate"] is None for v in break_even(s_counts, student, cheap).values())


def test_energy_cli_precision_convention_and_plot(tmp_path, tokenizer, tiny_teacher_dir, capsys):
    from spikeformers.cli import energy as energy_cli
    from tests.energy.helpers import save_student, write_csv_data

    data = write_csv_data(tmp_path)
    student = save_student(tmp_path / "student", tokenizer)
    p = argparse.ArgumentParser()
    energy_cli.build(p)
    argv = ["--model", str(student), "--teacher", str(tiny_teacher_dir), "--train-file",
            data["train"], "--test-file", data["test"], "--max-length", "16", "--max-samples",
            "2", "--device", "cpu", "--precision", "int8", "--convention", "memory",
            "--plot", str(tmp_path / "be.png")]  # fmt: skip
    assert energy_cli.run(p.parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert "memory-aware convention, per layer" in out and "break-even firing rate" in out
    assert "paper   convention: student" in out and "8-bit data" in out
    energy = json.loads((student / "energy.json").read_text())
    assert energy["constants"]["name"] == "45nm-int8" and energy["memory"]["memory_table"]["bits"]
    totals, teacher = energy["totals"], energy["teacher"]["totals"]
    assert totals["energy_pj_memory"] > totals["energy_pj_full"] >= totals["energy_pj_paper"]
    assert teacher["energy_pj_memory"] > teacher["energy_pj_full"]
    assert energy["ratio_memory"] == pytest.approx(
        totals["energy_pj_memory"] / teacher["energy_pj_memory"]
    )
    assert set(energy["break_even"]) == {"paper", "full", "memory"}
    assert (tmp_path / "be.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="not both"):
        energy_cli.run(p.parse_args([*argv, "--table", "45nm-fp16"]))
