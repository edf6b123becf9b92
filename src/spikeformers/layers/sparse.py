"""Event-driven Linear products: a spike input times a dense weight through its active entries.

A Linear layer fed by spikes multiplies mostly zeros. :func:`spike_linear` computes
``x @ W^T + b`` from the nonzero entries of ``x`` only: each output row is a weighted sum of the
rows of ``W^T`` its active inputs select, one ``embedding_bag(mode="sum")`` (a stock PyTorch
kernel) over the input's index lists, and the weight gradient ``grad^T @ x`` likewise sums rows
of ``grad`` per input feature from the same lists, sorted by feature. The input gradient
``grad @ W`` is dense (the surrogate gradient is) and runs the dense kernel. Products agree with
the dense ones within float rounding (the sums are taken in another order); the input may hold
any values (spike counts of a residual stream too), only its zeros are skipped.

Whether that is faster depends on the density and the shape: ``benchmarks/sparse_products.py``
measures it, and :data:`AUTO_MAX_DENSITY` holds the thresholds it supports (``docs/RESULTS.md``,
"Event-driven products"). Modes: ``"off"`` (dense, the default everywhere), ``"on"`` (always
event-driven), ``"auto"`` (event-driven when the input's density, estimated on a strided
sample, is at most the threshold for its width). Under
:func:`~spikeformers.utils.literal.literal_algorithm` (the energy counter) the dense product
always runs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from spikeformers.utils.literal import literal_algorithm

__all__ = [
    "AUTO_MAX_DENSITY",
    "AUTO_MAX_THREADS",
    "MODES",
    "SpikeIndex",
    "event_sum",
    "sample_density",
    "spike_index",
    "spike_linear",
    "transpose_index",
    "use_events",
]

MODES = ("off", "auto", "on")
"""Values of a model's ``sparse_spike_matmul`` switch."""

AUTO_MAX_DENSITY: tuple[tuple[int, float], ...] = ((0, 0.08),)
"""``(min input width K, max density)`` pairs, widest first: ``"auto"`` goes event-driven when
the input width is at least ``K`` and the estimated density at most the paired value."""

AUTO_MAX_THREADS = 1
"""``"auto"`` stays dense with more torch threads than this (the dense kernel scales with
threads, the event path's index building does not)."""

_SAMPLE = 65536  # elements looked at by sample_density


class SpikeIndex(NamedTuple):
    """The nonzero entries of an ``[M, K]`` matrix, grouped by row (CSR without the row ends).

    ``rows``, ``cols``, ``values``: ``[nnz]`` each, row-major order; ``offsets``: ``[M]``, where
    each row's entries start (a row without any has the next row's start).
    """

    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    offsets: torch.Tensor


def spike_index(x: torch.Tensor) -> SpikeIndex:
    """Index lists of the nonzero entries of ``x [M, K]`` (any values; zeros skipped)."""
    m, k = x.shape
    flat = x.contiguous().view(-1)  # (M * K,)
    idx = flat.ne(0).nonzero().squeeze(1)  # (nnz,) row-major, from a bool mask (faster)
    rows = torch.div(idx, k, rounding_mode="floor")
    starts = torch.searchsorted(rows, torch.arange(m, device=x.device))  # (M,)
    return SpikeIndex(rows, idx - rows * k, flat[idx], starts)


def transpose_index(index: SpikeIndex, k: int) -> SpikeIndex:
    """The same entries grouped by column: the index of ``x^T [K, M]`` from that of ``x``."""
    cols, perm = torch.sort(index.cols, stable=True)  # (nnz,), row order kept per column
    starts = torch.searchsorted(cols, torch.arange(k, device=cols.device))  # (K,)
    return SpikeIndex(cols, index.rows[perm], index.values[perm], starts)


def event_sum(index: SpikeIndex, table: torch.Tensor) -> torch.Tensor:
    """``A @ table`` for the sparse ``A [M, R]`` that ``index`` lists.

    Row ``m`` is the sum of ``table``'s rows ``index.cols`` of row ``m``, weighted by its values.

    Shapes: ``table [R, N]`` -> ``[M, N]``.
    """
    return F.embedding_bag(
        index.cols, table, index.offsets, mode="sum", per_sample_weights=index.values
    )


def sample_density(x: torch.Tensor) -> float:
    """Fraction of nonzero entries of ``x [..., K]``, from evenly spaced whole rows (about
    ``65536`` entries, or all): every column is seen, and an odd row step
    cycles through the positions of power-of-two sequence lengths (padding at the end)."""
    rows = x.reshape(-1, x.shape[-1])  # (M, K)
    step = max(1, rows.numel() // _SAMPLE) | 1  # odd: visits every token position mod 2^n
    sample = rows[::step]  # (about M / step = 65536 / K, K)
    return float(sample.count_nonzero()) / max(1, sample.numel())


def use_events(mode: str, x: torch.Tensor) -> bool:
    """Whether :func:`spike_linear` takes the event-driven path for ``x [..., K]`` in ``mode``."""
    if mode == "off" or literal_algorithm():
        return False
    if mode == "on":
        return True
    if mode != "auto":
        raise ValueError(f"sparse_spike_matmul must be one of {MODES}, got {mode!r}")
    if torch.get_num_threads() > AUTO_MAX_THREADS:
        return False
    width = x.shape[-1]
    limit = next((d for k, d in AUTO_MAX_DENSITY if width >= k), 0.0)
    return limit > 0 and sample_density(x) <= limit


class _EventLinear(torch.autograd.Function):
    """``x @ W^T + b`` and its gradients from ``x``'s index lists (``x`` itself is not kept)."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # noqa: D102
        index = spike_index(x.reshape(-1, x.shape[-1]))  # (M, K) entries
        y = event_sum(index, weight.t().contiguous())  # (M, N)
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(*index, weight)
        ctx.in_shape = x.shape
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: D102
        *index, weight = ctx.saved_tensors
        g = grad.reshape(-1, weight.shape[0])  # (M, N)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = (g @ weight).view(ctx.in_shape)  # dense: the gradient is not sparse
        if ctx.needs_input_grad[1]:
            by_col = transpose_index(SpikeIndex(*index), weight.shape[1])
            gw = event_sum(by_col, g.contiguous()).t()  # (K, N) -> (N, K)
        if ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


def spike_linear(x: torch.Tensor, linear: nn.Linear, mode: str = "off") -> torch.Tensor:
    """``linear(x)``, event-driven when ``mode`` (see :func:`use_events`) says so.

    Shapes: ``x [..., K]`` -> ``[..., N]`` (``linear`` maps ``K -> N``).
    """
    if not use_events(mode, x):
        return linear(x)
    return _EventLinear.apply(x, linear.weight, linear.bias)
