"""Pooling over the token axis that ignores padding."""

from __future__ import annotations

import torch


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean of ``h`` over its token axis ``dim``, over real tokens only.

    Args:
        h: Features with the batch axis at ``dim - 1`` and the token axis at ``dim``, e.g.
            ``[B, L, D]`` (``dim=1``) or ``[T, B, L, D]`` (``dim=2``).
        mask: ``[B, L]``, 1 for real tokens and 0 for padding, or ``None`` (a plain mean).
        dim: The token axis (``>= 1``).

    Returns:
        ``h`` with axis ``dim`` removed. A row without real tokens pools to 0 (not NaN).
    """
    if dim < 1:
        raise ValueError(f"masked_mean needs the batch axis before the token axis, got dim={dim}")
    if mask is None:
        return h.mean(dim)
    shape = [1] * h.dim()
    shape[dim - 1], shape[dim] = mask.shape
    w = mask.to(h.dtype).reshape(shape)  # e.g. (B, L, 1) or (1, B, L, 1)
    return (h * w).sum(dim) / w.sum(dim).clamp_min(1.0)
