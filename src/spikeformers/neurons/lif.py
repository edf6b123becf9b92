"""Leaky integrate-and-fire neuron module (a thin shell over :func:`lif_multistep`)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from spikeformers.neurons.base import SpikingModule
from spikeformers.neurons.lif_functional import check_lif_args, lif_multistep
from spikeformers.neurons.surrogate import ATan, build_surrogate

__all__ = ["LIF"]


class LIF(SpikingModule):
    r"""Multi-step leaky integrate-and-fire neuron with a surrogate gradient.

    The membrane potential starts at ``v_reset`` at the beginning of every call and evolves over
    the leading time axis (SpikingJelly ``LIFNode`` semantics, as used by SpikeBERT):

    .. math::

        H[t] &= V[t-1] + \frac{1}{\tau}\bigl(X[t] - (V[t-1] - V_{reset})\bigr)
            \quad\text{(decay\_input=True)} \\
        H[t] &= V[t-1] - \frac{1}{\tau}\bigl(V[t-1] - V_{reset}\bigr) + X[t]
            \quad\text{(decay\_input=False)} \\
        S[t] &= \Theta\bigl(H[t] - V_{th}\bigr) \\
        V[t] &= S[t]\,V_{reset} + (1 - S[t])\,H[t] \quad\text{(hard reset)} \\
        V[t] &= H[t] - S[t]\,V_{th} \quad\text{(soft reset)}

    where :math:`\Theta` is the Heaviside step (:math:`\Theta(0) = 1`) in the forward pass and the
    surrogate's smooth derivative in the backward pass. With ``detach_reset=True`` the
    :math:`S[t]` in the reset is detached, so gradients flow only through the charge path.

    The neuron keeps no state between calls (nothing to reset between batches) and behaves
    identically in train and eval mode.

    By default the sequence runs through the fused implementation of :func:`lif_multistep` (one
    autograd node for all ``T`` steps with a hand-written backward; same spikes bit for bit and
    same gradients up to rounding as the plain autograd reference). Its backward cannot be
    differentiated again; set ``fused=False`` (or the attribute ``lif.fused = False``) for
    higher-order gradients.

    References: Fang et al., "Incorporating Learnable Membrane Time Constant to Enhance Learning of
    Spiking Neural Networks", ICCV 2021 (https://arxiv.org/abs/2007.05785); SpikingJelly
    (https://github.com/fangwei123456/spikingjelly); Lv et al., SpikeBERT
    (https://arxiv.org/abs/2308.15122).

    Example::

        >>> lif = LIF(tau=2.0, v_threshold=0.5)
        >>> x_seq = torch.full((8, 1), 0.8)  # [T, B]: a constant input current
        >>> lif(x_seq).flatten().tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]

    Args:
        tau: Membrane time constant, ``>= 1``. Default ``2.0``.
        v_threshold: Firing threshold, ``> 0``. Default ``1.0``.
        v_reset: Reset potential of the hard reset and resting potential of the leak; must be below
            ``v_threshold``. Default ``0.0``.
        reset: ``"hard"`` (set to ``v_reset``) or ``"soft"`` (subtract ``v_threshold``).
            Default ``"hard"``.
        detach_reset: Detach the reset path from the autograd graph. Default ``True``.
        decay_input: Scale the input by ``1 / tau`` as well as the leak. Default ``True``.
        surrogate: Spike function module, or a name for
            :func:`~spikeformers.neurons.build_surrogate` (``"atan"``, ``"sigmoid"``). ``None``
            builds a fresh :class:`~spikeformers.neurons.ATan` for this neuron. Default ``None``.
        surrogate_alpha: Sharpness for a surrogate built from ``None`` or a name; ``None`` keeps
            that surrogate's default (2.0 for ATan). Must not be given with a surrogate module.
        fused: Use the fused implementation where it applies (see :func:`lif_multistep`).
            Default ``True``.

    Inputs:
        - **x_seq** of shape ``[T, ...]``, e.g. ``[T, B, L, D]``: input currents, time-first,
          floating point.

    Outputs:
        - **spikes** of shape ``[T, ...]``: binary spikes (0. or 1.) with ``x_seq``'s dtype.
    """

    def __init__(
        self,
        *,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        reset: Literal["hard", "soft"] = "hard",
        detach_reset: bool = True,
        decay_input: bool = True,
        surrogate: nn.Module | str | None = None,
        surrogate_alpha: float | None = None,
        fused: bool = True,
    ) -> None:
        super().__init__()
        check_lif_args(tau=tau, v_threshold=v_threshold, v_reset=v_reset, reset=reset)
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.v_reset = float(v_reset)
        self.reset = reset
        self.detach_reset = bool(detach_reset)
        self.decay_input = bool(decay_input)
        self.fused = bool(fused)
        if surrogate is None:
            surrogate = ATan(alpha=surrogate_alpha)  # a fresh instance per neuron, never shared
        elif isinstance(surrogate, str):
            surrogate = build_surrogate(surrogate, alpha=surrogate_alpha)
        elif isinstance(surrogate, nn.Module):
            if surrogate_alpha is not None:
                raise ValueError("surrogate_alpha only applies when surrogate is None or a name")
        else:
            raise TypeError(
                f"surrogate must be an nn.Module, a name or None, got {type(surrogate).__name__}"
            )
        self.surrogate = surrogate

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Run the neuron over ``x_seq`` ``[T, ...]``; returns spikes ``[T, ...]``."""
        return lif_multistep(
            x_seq,
            tau=self.tau,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            reset=self.reset,
            detach_reset=self.detach_reset,
            decay_input=self.decay_input,
            surrogate=self.surrogate,
            fused=getattr(self, "fused", True),  # instances pickled before the flag existed
        )

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
            f"reset={self.reset!r}, detach_reset={self.detach_reset}, "
            f"decay_input={self.decay_input}"
        )
