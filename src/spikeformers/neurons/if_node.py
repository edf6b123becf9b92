r"""Integrate-and-fire neuron with subtraction reset (optionally leaky), as used by SpikingBERT.

Per time step, with input current ``I[t]`` and membrane ``u`` (starting at 0):

.. math::

    u &\leftarrow u + I[t] \\
    s[t] &= \Theta(u - V_{th}) \quad (\Theta(0) = 1) \\
    u &\leftarrow u - V_{th}\, s[t] \quad \text{(reset by subtraction)} \\
    u &\leftarrow \lambda\, u

``λ = 1`` is the IF neuron, ``λ < 1`` a LIF. For ``λ = 1`` summing the update over ``T`` steps
gives ``a[T] = Ī/V_th - u[T] / (T V_th)`` for the average rate ``a[T] = (1/T) Σ s[t]`` and the
mean current ``Ī``: as long as ``u`` stays bounded, ``a[T] -> clamp(Ī / V_th, 0, 1)`` with an
error ``O(1/T)`` (for a constant current in ``[0, V_th]``, ``0 <= u < V_th`` and the error is
below ``1/T``). That is the rate equilibrium SpikingBERT differentiates through
(Bal & Sengupta, AAAI 2024, https://arxiv.org/abs/2308.10873; Xiao et al., IDE-FSNN,
NeurIPS 2021, https://arxiv.org/abs/2109.14247).

There is no surrogate: the equilibrium family trains through the rate map, never through spikes.

The pure dynamics are :func:`if_step` (one step, explicit state) and :func:`if_multistep` (a whole
``[T, ...]`` sequence). :class:`IFNode` is the thin module the SpikingBERT simulation calls once
per step, so forward hooks (firing-rate and energy counters) see every step's spikes.
"""

from __future__ import annotations

import torch

from spikeformers.neurons.base import SpikingModule

__all__ = ["IFNode", "check_if_args", "if_multistep", "if_step"]


def check_if_args(*, v_threshold: float, leak: float) -> None:
    """Raise ``ValueError`` on a threshold ``<= 0`` or a leak outside ``(0, 1]``."""
    # `not (a > b)` rather than `a <= b` so that NaN is rejected too.
    if not v_threshold > 0.0:
        raise ValueError(f"v_threshold must be > 0, got {v_threshold}")
    if not 0.0 < leak <= 1.0:
        raise ValueError(f"leak must be in (0, 1], got {leak}")


def if_step(
    current: torch.Tensor, v: torch.Tensor, *, v_threshold: float = 1.0, leak: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the (leaky) IF neuron with subtraction reset.

    Args:
        current: Input current ``I[t]``, any shape.
        v: Membrane potential after the previous step (zeros before the first), same shape.
        v_threshold: Firing threshold ``V_th > 0``.
        leak: Multiplicative leak ``λ`` in ``(0, 1]`` applied after the reset (1: IF).

    Returns:
        ``(spikes, v_new)``: binary spikes (``current``'s dtype) and the new membrane potential.
    """
    h = v + current
    s = (h >= v_threshold).to(current.dtype)
    v_new = h - v_threshold * s
    if leak != 1.0:
        v_new = leak * v_new
    return s, v_new


def if_multistep(
    x_seq: torch.Tensor, *, v_threshold: float = 1.0, leak: float = 1.0
) -> torch.Tensor:
    """Run :func:`if_step` over ``x_seq [T, ...]`` from ``u = 0``; returns spikes ``[T, ...]``."""
    check_if_args(v_threshold=v_threshold, leak=leak)
    v = torch.zeros_like(x_seq[0])
    spikes = []
    for x in x_seq.unbind(0):
        s, v = if_step(x, v, v_threshold=v_threshold, leak=leak)
        spikes.append(s)
    return torch.stack(spikes)  # (T, ...)


class IFNode(SpikingModule):
    """One population of (leaky) IF neurons with subtraction reset, stepped by its caller.

    The equilibrium network interleaves all layers within each time step, so it cannot hand a
    neuron a whole ``[T, ...]`` sequence; instead the caller owns the membrane tensor and passes
    it in at every step (explicit state, nothing to reset between batches). ``forward`` updates
    that tensor in place, so the module's output is the spike tensor alone and forward hooks
    count one step's spikes per call. Use it under ``torch.no_grad()`` (the SpikingBERT
    simulation always does): the in-place update is not meant for autograd.

    Args:
        v_threshold: Firing threshold ``V_th > 0``. Default ``1.0``.
        leak: Leak factor ``λ`` in ``(0, 1]``; 1 is the IF neuron. Default ``1.0``.

    Inputs:
        - **current** of any shape, e.g. ``[B, L, D]``: this step's input current.
        - **v**: the membrane potential, same shape; start from zeros. Updated in place.

    Outputs:
        - **spikes**: binary, same shape and dtype as ``current``.
    """

    def __init__(self, *, v_threshold: float = 1.0, leak: float = 1.0) -> None:
        super().__init__()
        check_if_args(v_threshold=v_threshold, leak=leak)
        self.v_threshold = float(v_threshold)
        self.leak = float(leak)

    def forward(self, current: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        # if_step written in place: the simulation calls this 6 x layers x T times per batch.
        v.add_(current)
        s = (v >= self.v_threshold).to(current.dtype)
        v.sub_(s, alpha=self.v_threshold)
        if self.leak != 1.0:
            v.mul_(self.leak)
        return s

    def extra_repr(self) -> str:
        return f"v_threshold={self.v_threshold}, leak={self.leak}"
