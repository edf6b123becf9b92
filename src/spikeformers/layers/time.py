"""Helpers for the time-first layout of the spiking stack.

Layout convention: inside the spiking stack every tensor is **time-first**, ``[T, B, ...]``
(for text ``[T, B, L, D]``: ``T`` time steps, ``B`` batch, ``L`` tokens, ``D`` width). Neurons
consume the whole ``[T, ...]`` sequence at once. Stateless layers (``Linear``, ``LayerNorm``,
dropout, ...) do not care about time, so they run on the time axis folded into the batch,
``[T*B, ...]`` (time-major: row ``t*B + b`` holds time step ``t`` of sample ``b``), and the result
is unfolded back. This is SpikingJelly's ``seq_to_ann_forward`` / ``SeqToANNContainer``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TimeDistributed", "fold_time", "repeat_time", "unfold_time"]


def fold_time(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Merge the time axis into the batch axis.

    Args:
        x: Time-first tensor of shape ``[T, B, ...]``.

    Returns:
        ``(x_folded, T)``: ``x_folded`` of shape ``[T*B, ...]`` (a view when the memory layout
        allows), and ``T`` to pass to :func:`unfold_time`.
    """
    if x.dim() < 2:
        raise ValueError(f"fold_time needs [T, B, ...], got shape {tuple(x.shape)}")
    return x.flatten(0, 1), x.shape[0]  # (T*B, ...)


def unfold_time(x: torch.Tensor, T: int) -> torch.Tensor:
    """Split a folded ``[T*B, ...]`` tensor back into ``[T, B, ...]``; inverse of :func:`fold_time`.

    Args:
        x: Tensor of shape ``[T*B, ...]``.
        T: Number of time steps.

    Returns:
        A view of shape ``[T, B, ...]``.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if x.dim() < 1 or x.shape[0] % T != 0:
        raise ValueError(f"leading dim of shape {tuple(x.shape)} is not divisible by T={T}")
    return x.unflatten(0, (T, x.shape[0] // T))  # (T, B, ...)


def repeat_time(x: torch.Tensor, T: int, *, contiguous: bool = False) -> torch.Tensor:
    """Repeat a static input ``T`` times along a new leading time axis ("repeat coding").

    By default this is an ``expand``: no memory is copied and all ``T`` slices share ``x``'s
    storage, which is safe for read-only use (neurons, linear layers, autograd, which sums the
    gradient over ``T``). PyTorch refuses in-place writes to such a tensor; pass
    ``contiguous=True`` to get an independent copy when a consumer writes in place.

    Args:
        x: Tensor of shape ``[B, ...]``.
        T: Number of time steps, ``>= 1``.
        contiguous: Return a contiguous copy instead of an expanded view.

    Returns:
        Tensor of shape ``[T, B, ...]`` with ``out[t] == x`` for every ``t``.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    out = x.unsqueeze(0).expand(T, *x.shape)  # (T, B, ...), stride 0 on T
    return out.contiguous() if contiguous else out


class TimeDistributed(nn.Module):
    """Apply a stateless module to every time step at once by folding time into the batch.

    The wrapped module sees ``[T*B, ...]``, so it must treat rows independently or, like
    ``BatchNorm``, be meant to pool statistics over time and batch together.

    Args:
        module: The module to wrap, e.g. ``nn.Linear(D, D)``.

    Inputs:
        - **x_seq** of shape ``[T, B, ...]``.

    Outputs:
        - ``module``'s output for ``x_seq`` folded to ``[T*B, ...]``, unfolded to ``[T, B, ...]``.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x, T = fold_time(x_seq)  # (T*B, ...)
        return unfold_time(self.module(x), T)  # (T, B, ...)
