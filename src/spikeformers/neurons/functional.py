"""Pure multi-step neuron dynamics (the functional core behind the neuron modules).

Every function here takes a whole input sequence, time-first (``x_seq`` of shape ``[T, ...]``), and
keeps the membrane potential in a local variable, so there is no state to reset between batches.
The modules in :mod:`spikeformers.neurons` are thin shells over these functions (the pattern of
SpikingJelly's ``functional/neuron.py`` refactor).
"""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import nn

__all__ = ["check_lif_args", "lif_multistep"]

_RESETS = ("hard", "soft")


def check_lif_args(*, tau: float, v_threshold: float, v_reset: float, reset: str) -> None:
    """Raise ``ValueError`` on LIF hyperparameters that make no sense.

    Args:
        tau: Membrane time constant; must be ``>= 1`` (``tau = 1`` means no memory).
        v_threshold: Firing threshold; must be ``> 0``.
        v_reset: Reset (and resting) potential; must be below ``v_threshold``, otherwise a
            hard-reset neuron would fire at every step after its first spike.
        reset: ``"hard"`` or ``"soft"``.
    """
    # `not (a >= b)` rather than `a < b` so that NaN is rejected too.
    if not tau >= 1.0:
        raise ValueError(f"tau must be >= 1, got {tau}")
    if not v_threshold > 0.0:
        raise ValueError(f"v_threshold must be > 0, got {v_threshold}")
    if not v_reset < v_threshold:
        raise ValueError(f"v_reset must be below v_threshold, got {v_reset} >= {v_threshold}")
    if reset not in _RESETS:
        raise ValueError(f"reset must be one of {_RESETS}, got {reset!r}")


@overload
def lif_multistep(
    x_seq: torch.Tensor,
    *,
    tau: float,
    v_threshold: float = ...,
    v_reset: float = ...,
    reset: Literal["hard", "soft"] = ...,
    detach_reset: bool = ...,
    decay_input: bool = ...,
    surrogate: nn.Module,
    return_v: Literal[False] = ...,
) -> torch.Tensor: ...


@overload
def lif_multistep(
    x_seq: torch.Tensor,
    *,
    tau: float,
    v_threshold: float = ...,
    v_reset: float = ...,
    reset: Literal["hard", "soft"] = ...,
    detach_reset: bool = ...,
    decay_input: bool = ...,
    surrogate: nn.Module,
    return_v: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor]: ...


def lif_multistep(
    x_seq: torch.Tensor,
    *,
    tau: float,
    v_threshold: float = 1.0,
    v_reset: float = 0.0,
    reset: Literal["hard", "soft"] = "hard",
    detach_reset: bool = False,
    decay_input: bool = True,
    surrogate: nn.Module,
    return_v: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Run a leaky integrate-and-fire neuron over a whole input sequence.

    SpikingJelly ``LIFNode`` semantics. Starting from ``V[-1] = v_reset``, each step ``t`` does

    * charge, with ``decay_input=True``:  ``H[t] = V[t-1] + (X[t] - (V[t-1] - v_reset)) / tau``;
      with ``decay_input=False``: ``H[t] = V[t-1] - (V[t-1] - v_reset) / tau + X[t]``;
    * fire: ``S[t] = surrogate(H[t] - v_threshold)``, a Heaviside step forward (``H(0) = 1``) and
      the surrogate's smooth derivative backward;
    * reset, hard: ``V[t] = S[t] * v_reset + (1 - S[t]) * H[t]``; soft: ``V[t] = H[t] - S[t] *
      v_threshold``. With ``detach_reset`` the ``S[t]`` in the reset is ``S[t].detach()``, so no
      gradient flows through the reset path (only through the charge).

    The membrane potential lives only inside this call.

    Args:
        x_seq: Input currents, time-first.
        tau: Membrane time constant, ``>= 1``.
        v_threshold: Firing threshold, ``> 0``.
        v_reset: Reset potential of the hard reset, and the resting potential the leak decays
            towards (for both resets).
        reset: ``"hard"`` (set to ``v_reset``) or ``"soft"`` (subtract ``v_threshold``).
        detach_reset: Detach the spike used in the reset from the autograd graph.
        decay_input: Whether the input is scaled by ``1 / tau`` as well as the leak.
        surrogate: Spike function, e.g. :class:`~spikeformers.neurons.ATan`.
        return_v: Also return the membrane potential after each step's reset.

    Returns:
        ``spikes`` of shape ``[T, ...]`` (same dtype and device as ``x_seq``), or
        ``(spikes, v_seq)`` when ``return_v``, where ``v_seq[t]`` is ``V[t]`` after the reset.

    Raises:
        ValueError: On invalid hyperparameters or a 0-dimensional ``x_seq``.
        TypeError: If ``x_seq`` is not floating point.
    """
    check_lif_args(tau=tau, v_threshold=v_threshold, v_reset=v_reset, reset=reset)
    if x_seq.dim() < 1:
        raise ValueError("x_seq must have a leading time dimension [T, ...]")
    if not x_seq.is_floating_point():
        raise TypeError(f"x_seq must be floating point, got {x_seq.dtype}")
    if x_seq.shape[0] == 0:
        empty = torch.zeros_like(x_seq)
        return (empty, empty.clone()) if return_v else empty

    v = torch.full_like(x_seq[0], v_reset)  # [...]
    spikes: list[torch.Tensor] = []
    vs: list[torch.Tensor] = []
    for x in x_seq.unbind(0):  # x: [...]
        # charge; decay_input=False leaks towards v_reset but adds the input unscaled
        h = v + (x - (v - v_reset)) / tau if decay_input else v - (v - v_reset) / tau + x
        s = surrogate(h - v_threshold)
        s_reset = s.detach() if detach_reset else s
        if reset == "hard":
            # Written as a blend rather than `h + s * (v_reset - h)` so that a spiking element lands
            # exactly on v_reset and a silent one keeps h bit for bit.
            v = s_reset * v_reset + (1.0 - s_reset) * h
        else:
            v = h - s_reset * v_threshold
        spikes.append(s)
        if return_v:
            vs.append(v)
    spike_seq = torch.stack(spikes)  # [T, ...]
    if return_v:
        return spike_seq, torch.stack(vs)
    return spike_seq
