"""Firing rates over real tokens: hand-computed on stub layouts; padding-free on every family."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from spikeformers import create_model, list_models
from spikeformers.evaluation import record_firing_rates
from spikeformers.neurons import ATan
from spikeformers.registry import model_class
from tests.conftest import tiny_overrides

MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])  # B = 2, L = 3: 4 real tokens, 2 padded


class _Stub(nn.Module):
    """Spiking modules at a family's module names, fed hand-set currents (Θ(x) = 1 iff x >= 0).

    ``currents`` maps a module path to its input; the output layout is the input's.
    """

    def __init__(self, family: str, currents: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.config = SimpleNamespace(model_type=family)
        self.spike_layouts = model_class(family).spike_layouts  # the family's declared layouts
        self.currents = currents
        self.mods = nn.ModuleDict({k.replace(".", "_"): ATan() for k in currents})

    def named_modules(self, *args, **kwargs):  # the family's names, not ModuleDict's keys
        yield "", self
        for k in self.currents:
            yield k, self.mods[k.replace(".", "_")]

    def forward(self, input_ids: torch.Tensor, *, attention_mask=None) -> None:
        for k, x in self.currents.items():
            self.mods[k.replace(".", "_")](x)


def _pattern(shape: tuple[int, ...], fire: list[tuple[int, ...]]) -> torch.Tensor:
    """Currents of ``shape``: +1 (a spike) at the ``fire`` indices, -1 elsewhere."""
    x = -torch.ones(shape)
    for idx in fire:
        x[idx] = 1.0
    return x


def test_spikebert_layouts_count_real_tokens_only():
    # encode [B, L, D=2]; attention LIF [T=2, B, H=1, L, dh=2]; a LIF [T=2, B, L, D=2].
    currents = {
        # Spikes at (b0, l0, d0), (b1, l0, d1) [real] and (b1, l2, d0), (b1, l1, d1) [padded].
        "encode": _pattern((2, 3, 2), [(0, 0, 0), (1, 0, 1), (1, 2, 0), (1, 1, 1)]),
        # Real: (t0, b0, l2, d1), (t1, b1, l0, d0); padded: (t0, b1, l1, d0).
        "blocks.0.attn.attn_lif": _pattern(
            (2, 2, 1, 3, 2), [(0, 0, 0, 2, 1), (1, 1, 0, 0, 0), (0, 1, 0, 1, 0)]
        ),
        # Real: none; padded: every element of (b1, l1) and (b1, l2) at both steps (8 spikes).
        "blocks.0.attn.q.lif": _pattern(
            (2, 2, 3, 2), [(t, 1, pos, d) for t in range(2) for pos in (1, 2) for d in range(2)]
        ),
    }
    model = _Stub("spikebert", currents)
    with record_firing_rates(model) as rates:
        model(torch.zeros(2, 3, dtype=torch.long), attention_mask=MASK)
    # Real elements: encode 4 tokens x 2 = 8; attention 2 x 4 x 1 x 2 = 16; LIF 2 x 4 x 2 = 16.
    assert rates.layers() == {
        "encode": 2 / 8,
        "blocks.0.attn.attn_lif": 2 / 16,
        "blocks.0.attn.q.lif": 0 / 16,
    }
    assert rates.mean() == pytest.approx(4 / 40)
    # Padded figure: all 4 + 3 + 8 = 15 spikes over 12 + 24 + 24 = 60 elements.
    assert rates.mean_padded() == pytest.approx(15 / 60)


def test_spikes_per_token_counts_every_layer_and_step_over_real_tokens():
    # 4 real tokens. encode [B, L, D=2]: 2 real spikes; LIF [T=2, B, L, D=2]: 3 real spikes
    # (at both steps of (b0, l1, d0) and at t1 of (b1, l0, d1)), 1 padded spike (b1, l2).
    currents = {
        "encode": _pattern((2, 3, 2), [(0, 0, 0), (0, 2, 1), (1, 1, 0)]),
        "blocks.0.attn.q.lif": _pattern(
            (2, 2, 3, 2), [(0, 0, 1, 0), (1, 0, 1, 0), (1, 1, 0, 1), (0, 1, 2, 1)]
        ),
    }
    model = _Stub("spikebert", currents)
    with record_firing_rates(model) as rates:
        model(torch.zeros(2, 3, dtype=torch.long), attention_mask=MASK)
    assert rates.tokens == 4
    assert rates.spikes_per_token() == pytest.approx((2 + 3) / 4)
    # the same as sum over layers of rate x (neurons x time steps) per token: 2 x 1 and 4 x 2
    assert rates.spikes_per_token() == pytest.approx(2 / 8 * 2 + 3 / 16 * 4)


def test_snnbert_layouts_token_axis_is_time_and_lif_baseline_runs_time_first():
    currents = {
        # BPSN [B, L, D=2]: real (b0, l1, d0); padded (b1, l2, d1).
        "blocks.0.attn.q.neuron": _pattern((2, 3, 2), [(0, 1, 0), (1, 2, 1)]),
        # TokenLIF's inner LIF [L, B, D=2]: real (l0, b1, d0), (l2, b0, d1); padded (l1, b1, d1).
        "blocks.0.mlp.fc1.neuron.lif": _pattern((3, 2, 2), [(0, 1, 0), (2, 0, 1), (1, 1, 1)]),
    }
    model = _Stub("snnbert", currents)
    with record_firing_rates(model) as rates:
        model(torch.zeros(2, 3, dtype=torch.long), attention_mask=MASK)
    assert rates.layers() == {
        "blocks.0.attn.q.neuron": 1 / 8,
        "blocks.0.mlp.fc1.neuron.lif": 2 / 8,
    }
    assert rates.mean_padded() == pytest.approx(5 / 24)


def test_spikingbert_layout_sums_every_simulation_step():
    x = _pattern((2, 3, 4), [(0, 0, 0), (1, 0, 3), (1, 2, 2), (1, 1, 0)])  # 2 real, 2 padded
    model = _Stub("spikingbert", {"layers.0.neurons.k": x})
    with record_firing_rates(model) as rates:
        for _ in range(3):  # three steps of a simulation: three calls
            model(torch.zeros(2, 3, dtype=torch.long), attention_mask=MASK)
    assert rates.layers() == {"layers.0.neurons.k": (3 * 2) / (3 * 4 * 4)}


def test_a_layout_that_does_not_match_the_output_is_an_error():
    model = _Stub("spikebert", {"blocks.0.attn.q.lif": torch.zeros(2, 3, 2)})  # not [T, B, L, D]
    with (
        pytest.raises(ValueError, match=r"blocks\.0\.attn\.q\.lif.*TBLD"),
        record_firing_rates(model),
    ):
        model(torch.zeros(2, 3, dtype=torch.long), attention_mask=MASK)


def _padding_invariant(name: str) -> bool:
    return not name.endswith("-paper")  # the paper's SpikeBERT lets [PAD] into attention


@pytest.mark.parametrize("name", [n for n in list_models() if _padding_invariant(n)])
def test_rates_of_a_padded_batch_equal_those_of_its_texts_run_alone(name):
    # Padding changes no real token of these models, so the real-token rate of a padded batch
    # must be the rate over the same texts run one at a time without padding.
    torch.manual_seed(0)
    model = create_model(name, **tiny_overrides(50, name=name)).eval()
    ids = torch.tensor([[5, 9, 13, 7, 21], [8, 30, 0, 0, 0], [11, 4, 17, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        with record_firing_rates(model) as padded:
            model(ids, attention_mask=mask)
        with record_firing_rates(model) as alone:
            for row, m in zip(ids, mask, strict=True):
                n = int(m.sum())
                model(row[None, :n], attention_mask=m[None, :n])
    assert padded.elements == alone.elements
    for k, v in alone.layers().items():
        assert padded.layers()[k] == pytest.approx(v, abs=1e-12), k


@pytest.mark.parametrize("name", ["spikebert-tiny", "snnbert-tiny", "spikingbert-tiny"])
def test_energy_report_rates_are_over_real_tokens_too(name):
    from spikeformers.energy import estimate

    torch.manual_seed(0)
    model = create_model(name, **tiny_overrides(50, name=name)).eval()
    ids = torch.tensor([[5, 9, 13, 7, 21], [8, 30, 0, 0, 0]])
    mask = (ids != 0).long()
    padded = estimate(model, [{"input_ids": ids, "attention_mask": mask}])
    alone = estimate(
        model,
        [
            {"input_ids": ids[:1], "attention_mask": mask[:1]},
            {"input_ids": ids[1:, :2], "attention_mask": mask[1:, :2]},
        ],
    )
    assert padded.firing_rates.keys() == alone.firing_rates.keys()
    for k, v in alone.firing_rates.items():
        assert padded.firing_rates[k] == pytest.approx(v, abs=1e-12), k


def test_merged_counts_give_the_rates_of_the_union():
    """Two shards' counts (hand-made): rates of the sum, not the mean of the rates."""
    from spikeformers.evaluation import FiringRates

    a = FiringRates({"l1": 2.0}, {"l1": 10}, {"l1": 2.0}, {"l1": 20}, tokens=5)
    b = FiringRates({"l1": 6.0, "l2": 1.0}, {"l1": 30, "l2": 4}, {"l1": 6.0, "l2": 1.0},
                    {"l1": 30, "l2": 8}, tokens=15)  # fmt: skip
    m = a.merge(b).metrics()
    assert m["firing_rates"] == {"l1": 8 / 40, "l2": 1 / 4}
    assert m["firing_rate"] == pytest.approx(9 / 44)  # (2 + 6 + 1) / (10 + 30 + 4)
    assert m["firing_rate_padded"] == pytest.approx(9 / 58)  # over 20 + 30 + 8 positions
    assert m["spikes_per_token"] == pytest.approx(9 / 20)
    assert a.merge(FiringRates(tokens=None)).metrics().get("spikes_per_token") is None
