"""SNN-BERT's memory paths: packed spikes and recomputed neurons change no number."""

from __future__ import annotations

import pytest
import torch

from spikeformers import create_model
from spikeformers.models.snnbert import SnnBertLinear

VOCAB = 60


def _run(neuron: str, *, pack: bool, recompute: bool):
    torch.manual_seed(0)
    model = create_model(
        "snnbert-tiny", vocab_size=VOCAB, num_layers=2, hidden_size=32, num_heads=4,
        mlp_ratio=2.0, neuron=neuron,
    )  # fmt: skip
    for m in model.modules():
        if isinstance(m, SnnBertLinear):
            m.recompute = recompute
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (3, 10), generator=g)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0
    x = model.encode(model.embed(ids, mask), mask)
    for block in model.blocks:
        x, _ = block(x, mask, pack=pack)
    loss = model.norm(x).square().sum()
    loss.backward()
    return x.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("neuron", ["bpsn", "lif"])
def test_packing_and_recomputation_give_bitwise_equal_outputs_and_gradients(neuron):
    x0, g0 = _run(neuron, pack=False, recompute=False)
    assert x0.max() >= 2  # the residual stream holds counts, not only spikes
    for pack, recompute in ((True, False), (False, True), (True, True)):
        x, g = _run(neuron, pack=pack, recompute=recompute)
        assert torch.equal(x, x0)
        assert g.keys() == g0.keys()
        for name in g0:
            assert torch.equal(g[name], g0[name]), (pack, recompute, name)


@pytest.mark.parametrize("neuron", ["bpsn", "lif"])
def test_gradient_checkpointing_gives_bitwise_equal_loss_and_gradients(neuron):
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(1, VOCAB, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 5:] = 0
    out = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = create_model("snnbert-tiny", vocab_size=VOCAB, neuron=neuron)
        if ckpt:
            model.gradient_checkpointing_enable()
        loss = model(ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        out.append((loss.detach(), grads))
    (l0, g0), (l1, g1) = out
    assert torch.equal(l0, l1)
    assert g0.keys() == g1.keys() and any(n.startswith("blocks.0.attn.q") for n in g0)
    for name in g0:
        assert torch.equal(g0[name], g1[name]), name
