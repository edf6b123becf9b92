"""Distillation-only feature heads shared by the model families."""

from __future__ import annotations

import torch
from torch import nn


class FeatureTransform(nn.Module):
    """``LN(Linear(D, D) x)`` of a block's output, used only to align student features with a
    teacher's hidden states during distillation (left out of inference energy).

    Shapes: ``[..., D] -> [..., D]``.
    """

    def __init__(self, width: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.norm(self.linear(x))
