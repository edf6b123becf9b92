"""Operation counts and prices checked against hand arithmetic on tiny modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeformers.energy import TABLES, OpCounter, describe_input, get_table, price
from spikeformers.neurons.lif import LIF

E_MAC, E_AC, E_OP = 4.6, 0.9, 4.6  # the default 45 nm table (Horowitz, ISSCC 2014)


def count(model: nn.Module, *inputs: torch.Tensor, samples: int = 1):
    """Run ``model(*inputs)`` inside an OpCounter and price it with the default table."""
    with torch.no_grad(), OpCounter(model) as counter:
        model(*inputs)
    counter.counts.num_samples = samples
    return counter.counts, price(counter.counts, "45nm")


def row(report, name: str, op: str):
    (r,) = [r for r in report.rows if r.name == name and r.op == op]
    return r


def test_one_layer_real_input_is_priced_as_macs():
    model = nn.Linear(3, 2)
    x = torch.randn(2, 3)  # 2 rows of real values
    counts, report = count(model, x)
    # addmm([2, 3] @ [3, 2]): MACs = 2*3*2 = 12; bias adds: one per output element = 2*2 = 4.
    r = row(report, "<root>", "addmm")
    assert r.macs == 12 and r.macs_priced == 12 and r.acs == 0 and r.other_ops == 4
    assert r.input_kind == "real" and r.input_rate is None
    # paper: 12 MACs * 4.6 pJ = 55.2 pJ; full: + 4 bias adds * 4.6 pJ = 18.4 -> 73.6 pJ.
    assert report.energy_pj_paper == pytest.approx(55.2)
    assert report.energy_pj_full == pytest.approx(73.6)
    assert report.macs == 12 and report.acs == 0 and report.other_ops == 4
    assert counts.uncounted == {}


def _two_layer() -> tuple[nn.Module, torch.Tensor]:
    """Linear(3->2) on real input -> LIF(tau=2, v_th=1) -> Linear(2->2) on the spikes."""
    fc1, fc2 = nn.Linear(3, 2), nn.Linear(2, 2)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[8.0, 0.0, 0.0], [0.0, 8.0, 0.0]]))
        fc1.bias.zero_()
        fc2.weight.fill_(0.5)
        fc2.bias.zero_()
    model = nn.Sequential(fc1, LIF(tau=2.0, v_threshold=1.0), fc2)
    x = torch.tensor([[[0.5, 0.0, 0.3]], [[0.5, 0.5, 0.3]]])  # [T=2, B=1, 3], real-valued
    return model, x


def test_two_layer_spiking_net_matches_hand_count():
    model, x = _two_layer()
    counts, report = count(model, x)
    # fc1: input currents t0 = (4, 0), t1 = (4, 4). [2, 1, 3] is folded to [2, 3] for addmm:
    #   MACs = 2*3*2 = 12 (real input), bias adds 2*2 = 4.
    # LIF (tau 2, decay_input): H = V + (X - V)/2; t0: H = (2, 0) -> spikes (1, 0), V -> (0, 0);
    #   t1: H = (2, 2) -> spikes (1, 1). Rate = 3 ones / 4 = 0.75. Membrane updates: 4 elements.
    # fc2 on the spikes: MACs = 2*2*2 = 8 (both time steps are in the rows: T already counted),
    #   ACs = 8 * 0.75 = 6, bias adds 4.
    fc1, lif, fc2 = (
        row(report, "0", "addmm"),
        row(report, "1", "membrane"),
        row(report, "2", "addmm"),
    )
    assert (fc1.macs, fc1.acs, fc1.other_ops, fc1.input_kind) == (12, 0, 4, "real")
    assert (lif.macs, lif.other_ops) == (0, 4)
    assert (fc2.macs, fc2.acs, fc2.acs_full, fc2.other_ops) == (8, 6, 6, 4)
    assert fc2.input_kind == "binary" and fc2.input_rate == 0.75
    assert counts.firing_rates() == {"1": 0.75}
    # paper: 12 * 4.6 + 6 * 0.9 = 55.2 + 5.4 = 60.6 pJ (nothing else).
    assert report.energy_pj_paper == pytest.approx(60.6)
    # full: 60.6 + (4 + 4 + 4 bias/membrane ops) * 4.6 = 60.6 + 55.2 = 115.8 pJ.
    assert report.energy_pj_full == pytest.approx(115.8)
    assert fc2.energy_pj_paper == pytest.approx(5.4)
    assert fc2.energy_pj_full == pytest.approx(5.4 + 4 * 4.6)
    assert counts.uncounted == {}


def test_per_sample_figures_divide_by_the_number_of_sequences():
    model, x = _two_layer()
    _, one = count(model, x, samples=1)
    _, two = count(model, x, samples=2)
    assert two.energy_pj_paper == pytest.approx(one.energy_pj_paper / 2)
    assert two.rows[0].macs == one.rows[0].macs / 2


def test_all_zero_spikes_cost_zero_acs():
    model = nn.Linear(4, 3)
    _, report = count(model, torch.zeros(5, 4))
    r = row(report, "<root>", "addmm")
    # MACs = 5*4*3 = 60 are dense work, but with no spike no accumulate happens.
    assert r.macs == 60 and r.acs == 0 and r.input_rate == 0.0 and r.input_kind == "binary"
    assert report.energy_pj_paper == 0.0
    assert report.energy_pj_full == pytest.approx(15 * E_OP)  # only the 5*3 bias adds


def test_input_rate_is_the_fraction_of_ones():
    model = nn.Linear(5, 2, bias=False)
    x = torch.zeros(4, 5)
    x[0, :3] = 1.0
    x[2, 1] = 1.0
    x[3, 4] = 1.0  # 5 ones out of 20 entries
    _, report = count(model, x)
    r = row(report, "<root>", "mm")
    assert r.input_rate == 5 / 20
    # MACs = 4*5*2 = 40, ACs = 40 * 0.25 = 10 -> 10 * 0.9 = 9 pJ.
    assert (r.macs, r.acs) == (40, 10)
    assert report.energy_pj_paper == pytest.approx(10 * E_AC)


def test_time_steps_are_counted_once():
    # SOPs = T * fr * MACs_per_step: a [T, B, D] input gives T times the rows of one step.
    model = nn.Linear(4, 3, bias=False)
    step = torch.tensor([[1.0, 0.0, 1.0, 0.0]])  # [B=1, D=4], rate 0.5
    _, one = count(model, step.unsqueeze(0))  # T = 1
    _, four = count(model, step.expand(4, 1, 4))  # T = 4, repeat coding
    # per step: MACs = 1*4*3 = 12, ACs = 12 * 0.5 = 6; with T = 4: 48 MACs and 4 * 0.5 * 12 = 24.
    assert (one.macs, one.acs) == (12, 6)
    assert (four.macs, four.acs) == (48, 24)


def test_integer_inputs_paper_counts_nonzeros_full_counts_magnitude():
    model = nn.Linear(2, 1, bias=False)
    x = torch.tensor([[2.0, 0.0], [1.0, 3.0]])  # counts: 3 of 4 non-zero, mean |x| = 6/4 = 1.5
    _, report = count(model, x)
    r = row(report, "<root>", "mm")
    # MACs = 2*2*1 = 4; paper ACs = 4 * 0.75 = 3 (2.7 pJ); full ACs = 4 * 1.5 = 6 (5.4 pJ).
    assert r.input_kind == "integer"
    assert (r.macs, r.acs, r.acs_full) == (4, 3, 6)
    assert (r.input_rate, r.input_mean_magnitude) == (0.75, 1.5)
    assert report.energy_pj_paper == pytest.approx(3 * E_AC)
    assert report.energy_pj_full == pytest.approx(6 * E_AC)


class QK(nn.Module):
    def forward(self, q, k):
        return q @ k.transpose(-2, -1)


def test_activation_times_activation_uses_the_sparser_binary_operand():
    q = torch.zeros(1, 2, 3)
    q[0, 0, 0] = q[0, 1, 2] = 1.0  # 2 ones of 6: rate 1/3
    k = torch.zeros(1, 4, 3)
    k[0, :, :2] = 1.0  # 8 ones of 12: rate 2/3
    _, report = count(QK(), q, k)
    r = row(report, "<root>", "bmm")
    # MACs = 1*2*3*4 = 24; the sparser spike operand is q: ACs = 24 / 3 = 8.
    assert (r.macs, r.acs) == (24, 8)
    # With a real-valued k, q (binary) still drives the accumulates.
    _, report = count(QK(), q, torch.randn(1, 4, 3))
    assert row(report, "<root>", "bmm").acs == 8


def test_weights_are_never_taken_for_spike_inputs():
    model = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]))  # binary weight
    _, report = count(model, torch.randn(4, 3))
    r = row(report, "<root>", "mm")
    assert r.input_kind == "real" and r.macs_priced == 4 * 3 * 2


def test_depthwise_conv_macs():
    conv = nn.Conv1d(2, 2, kernel_size=3, groups=2, bias=False)
    x = torch.tensor([[[1.0, 0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0, 0.0]]])  # 5 of 10 ones
    _, report = count(conv, x)
    r = row(report, "<root>", "convolution")
    # output [1, 2, 3]: 6 elements x (C_in/groups = 1) x (kernel 3) = 18 MACs; ACs = 18 * 0.5 = 9.
    assert (r.macs, r.acs, r.kind) == (18, 9, "conv")


class Block(nn.Module):
    """LayerNorm -> GELU -> softmax -> residual add, on [2, 4]."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        h = torch.nn.functional.gelu(self.norm(x))
        return x + h.softmax(-1)


def test_non_matmul_work_uses_the_stated_per_element_constants():
    _, report = count(Block(), torch.randn(2, 4))
    # 8 elements: LayerNorm 5/elem = 40, GELU 8/elem = 64, softmax 5/elem = 40, add 1/elem = 8.
    assert row(report, "norm", "layer_norm").other_ops == 40
    assert row(report, "<root>", "gelu").other_ops == 64
    assert row(report, "<root>", "softmax").other_ops == 40
    assert row(report, "<root>", "elementwise").other_ops == 8
    assert report.energy_pj_paper == 0.0
    assert report.energy_pj_full == pytest.approx(152 * E_OP)


def test_modules_called_twice_accumulate_and_matmul_occurrences_stay_apart():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2, bias=False)

        def forward(self, x):
            return self.fc(self.fc(x)) @ x.t()

    _, report = count(Twice(), torch.ones(3, 2))
    assert row(report, "fc", "mm").calls == 2 and row(report, "fc", "mm").macs == 2 * 3 * 2 * 2
    assert row(report, "<root>", "mm").macs == 3 * 2 * 3


def test_describe_input_classes():
    assert describe_input(torch.tensor([0.0, 1.0, 1.0, 0.0])).kind == "binary"
    s = describe_input(torch.tensor([0.0, 2.0, -1.0, 0.0]))
    assert (s.kind, s.rate, s.magnitude) == ("integer", 0.5, 0.75)
    assert describe_input(torch.tensor([0.5, 1.0])).kind == "real"
    assert describe_input(torch.tensor([float("inf"), 1.0])).kind == "real"
    assert describe_input(torch.tensor([True, False])).kind == "binary"


def test_tables_and_custom_prices():
    assert get_table() is TABLES["45nm"]
    t = TABLES["45nm"]
    assert (t.mac_pj, t.ac_pj, t.op_pj) == (E_MAC, E_AC, E_OP) and "Horowitz" in t.source
    custom = get_table("mac=1,ac=0.5")
    assert (custom.mac_pj, custom.ac_pj, custom.op_pj, custom.name) == (1.0, 0.5, 4.6, "custom")
    model, x = _two_layer()
    with torch.no_grad(), OpCounter(model) as counter:
        model(x)
    counter.counts.num_samples = 1
    # 12 MACs * 1 pJ + 6 ACs * 0.5 pJ = 15 pJ.
    assert price(counter.counts, custom).energy_pj_paper == pytest.approx(15.0)
    with pytest.raises(ValueError, match="unknown energy table"):
        get_table("7nm")
    with pytest.raises(ValueError, match=">= 0"):
        get_table({"mac": -1, "ac": 1, "op": 1})


def test_exclude_patterns_leave_rows_out_of_the_totals():
    model, x = _two_layer()
    with torch.no_grad(), OpCounter(model) as counter:
        model(x)
    counter.counts.num_samples = 1
    report = price(counter.counts, exclude=["2"])
    # Without fc2: 12 MACs * 4.6 = 55.2 pJ (paper); fc2's 5.4 pJ is reported as excluded.
    assert report.energy_pj_paper == pytest.approx(55.2)
    assert report.excluded_energy_pj_paper == pytest.approx(5.4)
    assert row(report, "2", "addmm").excluded


def test_counter_removes_its_hooks():
    model, x = _two_layer()
    with torch.no_grad(), OpCounter(model):
        model(x)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_neuron_internal_kernels_are_booked_by_their_input_like_any_layer():
    # One rule for every family: BPSN's temporal kernels convolve a real-valued input (MACs), its
    # reset count convolves spikes (ACs), whatever module runs them. Hand count on one BPSN.
    from spikeformers.neurons.bpsn import BPSN

    model = nn.Sequential(BPSN(2, kernel_size=3, tau=2.0, reset_passes=1))
    x = torch.zeros(1, 4, 2)  # [B=1, L=4 steps, D=2 neurons]
    x[0, 0, 0] = 4.5  # real-valued (not an integer count)
    _, report = count(model, x)
    # Taps w = (1/2)(1/2)^i = (0.5, 0.25, 0.125) each way, fused with a = 0.5 into one 5-tap
    # kernel (0.0625, 0.125, 0.5, 0.125, 0.0625). Charge H of channel 0 = (2.25, .5625, .28125, 0),
    # channel 1 = 0: one first-pass spike (t = 0, channel 0) out of 8, threshold 1.
    # Charge conv: 8 outputs x 5 taps = 40 MACs on real input.
    charge = row(report, "0", "convolution")
    assert (charge.macs, charge.macs_priced, charge.acs, charge.input_kind) == (40, 40, 0, "real")
    # Reset count: 2*3 + 1 = 7 taps on the spikes: 56 MACs at rate 1/8 -> 7 ACs.
    reset = row(report, "0", "convolution#1")
    assert (reset.macs, reset.macs_priced, reset.acs, reset.input_kind) == (56, 0, 7, "binary")
    assert reset.input_rate == pytest.approx(1 / 8)
    # Membrane update: 1 op per neuron per step = 8 (full accounting only).
    membrane = row(report, "0", "membrane")
    assert (membrane.macs, membrane.other_ops) == (0, 8)
    # paper: 40 * 4.6 + 7 * 0.9 = 184 + 6.3 = 190.3 pJ; full: + 8 * 4.6 = 36.8 -> 227.1 pJ.
    assert report.energy_pj_paper == pytest.approx(190.3)
    assert report.energy_pj_full == pytest.approx(227.1)
