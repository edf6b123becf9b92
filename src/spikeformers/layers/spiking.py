"""Spiking layers shared by families, whatever their tensor layout."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from spikeformers.layers.packed import save_packed


class SpikingMLP(nn.Module):
    """Two spiking linear layers ``fc2(fc1(x))``: ``D -> hidden -> D``.

    The family supplies its spiking linear layer (``Linear -> LayerNorm -> neuron``, any layout)
    as ``make_linear(d_in, d_out)``, called for ``fc1`` then ``fc2``. Each layer is called as
    ``layer(x, mask)``.

    Shapes: ``x [..., D]`` in the family's layout (``[T, B, L, D]`` or ``[B, L, D]``),
    ``mask [B, L]`` or ``None`` -> spikes of ``x``'s shape.
    """

    def __init__(
        self, make_linear: Callable[[int, int], nn.Module], width: int, hidden: int
    ) -> None:
        super().__init__()
        self.fc1 = make_linear(width, hidden)
        self.fc2 = make_linear(hidden, width)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, *, pack: bool = False
    ) -> torch.Tensor:
        """Padding (``mask`` 0) gets no current; ``pack`` saves the spike inputs for backward as
        bytes (:func:`~spikeformers.layers.packed.save_packed`)."""
        with save_packed(x, enabled=pack):
            h = self.fc1(x, mask)  # hidden-width spikes
        with save_packed(h, enabled=pack):
            return self.fc2(h, mask)
