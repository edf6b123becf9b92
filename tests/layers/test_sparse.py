"""Event-driven Linear products (layers/sparse.py) against torch's dense Linear and its autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeformers.layers import sparse
from spikeformers.layers.sparse import (
    spike_index,
    spike_linear,
    transpose_index,
    use_events,
)
from spikeformers.models.spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
from spikeformers.utils.literal import LiteralAlgorithmMode


def test_index_lists_rows_columns_values_and_row_starts():
    x = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 3.0]])
    idx = spike_index(x)
    assert idx.rows.tolist() == [0, 2, 2]
    assert idx.cols.tolist() == [1, 0, 2]
    assert idx.values.tolist() == [2.0, 1.0, 3.0]
    assert idx.offsets.tolist() == [0, 1, 1]  # the empty row 1 starts where row 2 does
    by_col = transpose_index(idx, 3)  # x^T = [[0, 0, 1], [2, 0, 0], [0, 0, 3]]
    assert by_col.rows.tolist() == [0, 1, 2]
    assert by_col.cols.tolist() == [2, 0, 2]
    assert by_col.values.tolist() == [1.0, 2.0, 3.0]
    assert by_col.offsets.tolist() == [0, 1, 2]


def _spikes(shape: tuple[int, ...], rate: float, seed: int, counts: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=gen) < rate).double()
    if counts:  # small spike counts, as the residual stream holds
        x = x * torch.randint(1, 4, shape, generator=gen).double()
    x[0, 1] = 0.0  # an all-zero row
    return x


@pytest.mark.parametrize("counts", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_event_linear_matches_dense_autograd(counts, bias):
    torch.manual_seed(0)
    lin = nn.Linear(24, 10, bias=bias).double()
    x = _spikes((3, 5, 24), 0.15, seed=1, counts=counts).requires_grad_()
    grad = torch.randn(3, 5, 10, dtype=torch.float64)
    params = [x, lin.weight] + ([lin.bias] if bias else [])
    y = spike_linear(x, lin, "on")
    got = torch.autograd.grad(y, params, grad)
    want_y = lin(x)
    want = torch.autograd.grad(want_y, params, grad)
    torch.testing.assert_close(y, want_y, rtol=1e-12, atol=1e-12)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_event_linear_float32_within_rounding_and_empty_input():
    torch.manual_seed(0)
    lin = nn.Linear(300, 40)
    x = _spikes((64, 300), 0.05, seed=2, counts=False).float().requires_grad_()
    y = spike_linear(x, lin, "on")
    y.square().sum().backward()
    gw, gx = lin.weight.grad.clone(), x.grad.clone()
    lin.weight.grad = None
    x.grad = None
    lin(x).square().sum().backward()
    torch.testing.assert_close(gw, lin.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, x.grad, rtol=1e-5, atol=1e-5)
    zeros = torch.zeros(4, 300)
    assert torch.equal(spike_linear(zeros, lin, "on"), lin.bias.expand(4, 40))


def test_modes_choose_dense_or_events(monkeypatch):
    x = torch.zeros(10, 2048)
    x[:, :20] = 1.0  # density 20 / 2048 < 1%
    assert not use_events("off", x)
    assert use_events("on", x)
    monkeypatch.setattr(sparse, "AUTO_MAX_DENSITY", ((1024, 0.02), (0, 0.0)))
    monkeypatch.setattr(sparse, "AUTO_MAX_THREADS", torch.get_num_threads())
    assert use_events("auto", x)
    monkeypatch.setattr(sparse, "AUTO_MAX_THREADS", torch.get_num_threads() - 1)
    assert not use_events("auto", x)  # more threads than the benchmark supports
    monkeypatch.setattr(sparse, "AUTO_MAX_THREADS", torch.get_num_threads())
    assert not use_events("auto", x[:, :1000])  # narrower than 1024: never
    x[:, :100] = 1.0  # ~5% dense
    assert not use_events("auto", x)
    with LiteralAlgorithmMode():
        assert not use_events("on", x)  # the energy counter sees the dense product
    with pytest.raises(ValueError, match="sparse_spike_matmul"):
        use_events("sometimes", x)


def test_sample_density_of_a_strided_sample():
    x = torch.zeros(1000, 1000)
    x[:, ::10] = 1.0  # 10% of columns (a strided flat sample could alias)
    assert sparse.sample_density(x) == pytest.approx(0.1, abs=0.01)


def test_spikebert_switch_same_outputs_and_gradients():
    base = dict(SpikeBertForSequenceClassification.tiny_config(), vocab_size=50, num_labels=3)
    models = {}
    for mode in ("off", "on"):
        torch.manual_seed(0)
        models[mode] = SpikeBertForSequenceClassification(
            SpikeBertConfig(**base, sparse_spike_matmul=mode)
        )
    ids = torch.randint(1, 50, (3, 7), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, 5:] = 0
    labels = torch.tensor([0, 2, 1])
    grads = {}
    for mode, model in models.items():
        out = model(ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        grads[mode] = (out.logits.detach(), {n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(grads["on"][0], grads["off"][0], rtol=1e-5, atol=1e-5)
    for name, g in grads["off"][1].items():
        other = grads["on"][1][name]
        if g is None:
            assert other is None
        else:
            torch.testing.assert_close(other, g, rtol=1e-4, atol=1e-5, msg=name)
    with pytest.raises(ValueError, match="sparse_spike_matmul"):
        SpikeBertConfig(**base, sparse_spike_matmul="yes")


def test_sample_density_sees_padding_at_the_end_of_sequences():
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(4, 32, 64, 384, generator=gen) < 0.2).float()  # (T, B, L, D)
    x[:, :, 32:] = 0.0  # the second half of every sequence is padding: density 0.1
    assert sparse.sample_density(x) == pytest.approx(0.1, abs=0.01)
