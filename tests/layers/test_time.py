"""Time-first layout helpers: fold/unfold, TimeDistributed and repeat coding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeformers.layers import TimeDistributed, fold_time, repeat_time, unfold_time


def test_fold_unfold_round_trip() -> None:
    T, B, L, D = 3, 2, 4, 5
    x = torch.randn(T, B, L, D)
    folded, t = fold_time(x)
    assert folded.shape == (T * B, L, D) and t == T
    assert torch.equal(unfold_time(folded, t), x)


def test_fold_is_time_major() -> None:
    # Row t*B + b of the folded tensor is time step t of sample b.
    T, B = 3, 2
    x = torch.arange(T * B * 4.0).reshape(T, B, 4)
    folded, _ = fold_time(x)
    for t in range(T):
        for b in range(B):
            assert torch.equal(folded[t * B + b], x[t, b])


def test_fold_and_unfold_are_views_for_contiguous_input() -> None:
    x = torch.randn(3, 2, 4)
    folded, T = fold_time(x)
    assert folded.data_ptr() == x.data_ptr() and folded._base is x
    assert unfold_time(folded, T)._base is x


def test_fold_time_requires_two_dims() -> None:
    with pytest.raises(ValueError, match=r"\[T, B"):
        fold_time(torch.randn(5))


def test_unfold_time_rejects_indivisible_length_and_bad_t() -> None:
    with pytest.raises(ValueError, match="divisible"):
        unfold_time(torch.randn(7, 3), 2)
    with pytest.raises(ValueError, match="T must be"):
        unfold_time(torch.randn(6, 3), 0)


def test_time_distributed_equals_per_step_application() -> None:
    torch.manual_seed(0)
    T, B, L, D = 4, 2, 3, 6
    block = nn.Sequential(nn.Linear(D, 8), nn.LayerNorm(8))
    td = TimeDistributed(block)
    x = torch.randn(T, B, L, D)
    y = td(x)
    assert y.shape == (T, B, L, 8)
    expected = torch.stack([block(x[t]) for t in range(T)])
    torch.testing.assert_close(y, expected)


def test_time_distributed_passes_gradients_and_registers_module() -> None:
    lin = nn.Linear(3, 2)
    td = TimeDistributed(lin)
    assert list(td.parameters()) == list(lin.parameters())
    x = torch.randn(2, 4, 3, requires_grad=True)
    td(x).sum().backward()
    assert x.grad is not None and lin.weight.grad is not None
    assert "Linear(in_features=3, out_features=2" in repr(td)


def test_repeat_time_is_an_expand_without_copy() -> None:
    x = torch.randn(2, 3, 4)
    y = repeat_time(x, 5)
    assert y.shape == (5, 2, 3, 4)
    assert y.data_ptr() == x.data_ptr() and y.stride(0) == 0
    for t in range(5):
        assert torch.equal(y[t], x)


def test_repeat_time_contiguous_copy_is_independent() -> None:
    x = torch.randn(2, 3)
    y = repeat_time(x, 4, contiguous=True)
    assert y.is_contiguous() and y.data_ptr() != x.data_ptr()
    y[0] += 1.0  # in-place writes are fine on the copy ...
    assert torch.equal(y[1], x)  # ... and touch only that step
    with pytest.raises(RuntimeError):
        repeat_time(x, 4).add_(1.0)  # PyTorch refuses writes to the shared expand


def test_repeat_time_gradient_sums_over_time() -> None:
    x = torch.randn(2, 3, requires_grad=True)
    w = torch.randn(4, 2, 3)
    (repeat_time(x, 4) * w).sum().backward()
    torch.testing.assert_close(x.grad, w.sum(0))


def test_repeat_then_fold_then_unfold_round_trip() -> None:
    x = torch.randn(2, 3, 4)
    folded, T = fold_time(repeat_time(x, 3))
    assert folded.shape == (6, 3, 4)
    assert torch.equal(unfold_time(folded, T), repeat_time(x, 3))


def test_repeat_time_rejects_nonpositive_t() -> None:
    with pytest.raises(ValueError, match="T must be"):
        repeat_time(torch.randn(2), 0)
