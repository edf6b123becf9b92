"""Padding, for every registered variant: padded positions never spike, and do not change the
logits of real tokens, unless the paper's model lets padding in (then that is tested instead)."""

from __future__ import annotations

import pytest
import torch

from spikeformers import create_model, list_models
from spikeformers.evaluation import spike_layouts, spiking_modules, token_weights
from tests.conftest import tiny_overrides

IDS = torch.tensor([[5, 9, 13, 7, 21], [8, 30, 0, 0, 0], [11, 4, 17, 0, 0]])  # pad id 0
MASK = (IDS != 0).long()


def _padding_fires(name: str) -> str | None:
    """Why the paper's model of this variant lets padded positions spike, or ``None``."""
    if name.endswith("-paper"):
        return "the paper's SpikeBERT has no padding mask: [PAD] is an ordinary learned token"
    if name.startswith("spikingbert"):
        # TinyBERT-derived, as BERT: padded keys are masked out of attention only, so padded
        # positions spike but never reach a real token.
        return "the paper's SpikingBERT simulates every position, as BERT computes them"
    return None


# Every registered variant, plus config choices that change which modules spike.
CASES = [(n, {}) for n in list_models()] + [
    ("snnbert-tiny", {"encoder": "heaviside"}),
    ("snnbert-tiny", {"encoder": "heaviside", "neuron": "lif"}),
]


def _model(name: str, extra: dict | None = None):
    torch.manual_seed(0)
    return create_model(name, **tiny_overrides(50, name=name), **(extra or {})).eval()


def _padded_spikes(model) -> dict[str, float]:
    """Spikes at padded positions of every spiking module, for one forward on ``IDS``."""
    layouts = spike_layouts(model)
    found: dict[str, float] = {}
    handles = []
    for name, m in spiking_modules(model):

        def hook(_m, _i, out, name=name):
            w = token_weights(out.detach(), 1 - MASK, layouts[name], name)
            found[name] = found.get(name, 0.0) + float((out.detach() * w).sum())

        handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(IDS, attention_mask=MASK)
    finally:
        for h in handles:
            h.remove()
    return found


@pytest.mark.parametrize(("name", "extra"), [c for c in CASES if not _padding_fires(c[0])])
def test_padded_positions_never_spike(name, extra):
    found = _padded_spikes(_model(name, extra))
    assert found, "no spiking module seen"
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize(("name", "extra"), [c for c in CASES if not c[0].endswith("-paper")])
def test_padding_does_not_change_the_logits_of_real_tokens(name, extra):
    model = _model(name, extra)
    with torch.no_grad():
        padded = model(IDS, attention_mask=MASK).logits
        for i, row in enumerate(IDS):
            n = int(MASK[i].sum())
            alone = model(row[None, :n], attention_mask=MASK[i, None, :n]).logits
            torch.testing.assert_close(padded[i], alone[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in list_models() if n.endswith("-paper")])
def test_paper_spikebert_pad_is_a_learned_token_not_an_all_ones_vector(name):
    # As in the public code (nn.Embedding without padding_idx), [PAD] has a learned, random-
    # initialised row; a zero row would encode to all ones (the encoder fires at exactly 0).
    model = _model(name)
    assert model.embeddings.padding_idx is None
    with torch.no_grad():
        pad = model.encode(model.embed(torch.zeros(1, 1, dtype=torch.long)))
    assert 0.0 < float(pad.mean()) < 1.0
    pad_row = model.embeddings.weight[0]
    assert pad_row.requires_grad and bool(pad_row.ne(0).any())
