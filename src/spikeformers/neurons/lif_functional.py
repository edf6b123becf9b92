"""Pure multi-step LIF dynamics (the functional core behind :class:`~spikeformers.neurons.LIF`).

Every function here takes a whole input sequence, time-first (``x_seq`` of shape ``[T, ...]``), and
keeps the membrane potential in a local variable, so there is no state to reset between batches.
The LIF module is a thin shell over these functions (the pattern of
SpikingJelly's ``functional/neuron.py`` refactor).

:func:`lif_multistep` runs a fused implementation by default (:class:`_LIFMultistep`, one autograd
node for the whole sequence with a hand-written reverse-time backward) and falls back to the plain
autograd graph of :func:`lif_multistep_reference` wherever the fused path is not exact.
"""

from __future__ import annotations

import math
from typing import Literal, overload

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from spikeformers.neurons.surrogate import ATan, Sigmoid, Surrogate

__all__ = ["check_lif_args", "lif_multistep", "lif_multistep_fusable", "lif_multistep_reference"]

_FUSED_DTYPES = (torch.float32, torch.float64)

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


def _check_input(x_seq: torch.Tensor) -> None:
    if x_seq.dim() < 1:
        raise ValueError("x_seq must have a leading time dimension [T, ...]")
    if not x_seq.is_floating_point():
        raise TypeError(f"x_seq must be floating point, got {x_seq.dtype}")


def lif_multistep_reference(
    x_seq: torch.Tensor,
    *,
    tau: float,
    v_threshold: float = 1.0,
    v_reset: float = 0.0,
    reset: Literal["hard", "soft"] = "hard",
    detach_reset: bool = True,
    decay_input: bool = True,
    surrogate: nn.Module,
    return_v: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The plain autograd implementation of :func:`lif_multistep` (same arguments and outputs).

    A Python loop over ``T`` whose every step is recorded by autograd, with ``surrogate`` called
    as a module. It is the reference the fused path is tested against, and the path taken for
    anything the fused one does not cover (any spike module, any dtype, higher-order gradients).

    Args:
        x_seq: Input currents ``[T, ...]``, time-first.
        tau, v_threshold, v_reset, reset, detach_reset, decay_input, surrogate, return_v: As in
            :func:`lif_multistep`.

    Returns:
        ``spikes`` ``[T, ...]``, or ``(spikes, v_seq)`` (both ``[T, ...]``) when ``return_v``.
    """
    check_lif_args(tau=tau, v_threshold=v_threshold, v_reset=v_reset, reset=reset)
    _check_input(x_seq)
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


# -- the fused path ---------------------------------------------------------------------------
#
# Forward: the reference's float arithmetic on preallocated buffers under no_grad, rewritten only
# where the rewrite rounds identically for every float (inf and NaN included), so spikes are bit
# for bit those of the reference and H and V are too, up to the sign of a zero (which cannot
# change a spike: +0 and -0 compare equal and stay zeros through the charge):
#   * ``a + b / tau`` as ``addcdiv(a, b, tau)`` (one rounded division, one rounded addition;
#     ``value=-1`` negates exactly);
#   * ``v - v_reset`` skipped when ``v_reset == 0``; at t = 0, ``V = v_reset`` is folded in;
#   * the spike ``(H - v_th) >= 0`` as ``H >= v_th`` (``v_th`` rounded to the dtype as in the
#     subtraction; a difference of two distinct floats is never rounded to zero, as long as
#     subnormals are not flushed, i.e. ``torch.set_flush_denormal(False)``, the default);
#   * the hard-reset blend ``S v_reset + (1 - S) H`` with ``S`` in {0, 1} as ``H - H S`` plus
#     ``v_reset S`` when ``v_reset != 0``; the soft reset ``H - S v_th`` as ``sub(H, S,
#     alpha=v_th)``: the products are exact, so a fused multiply-add rounds like mul then add.
# The last step's reset is skipped (that V is never used) unless V is returned.
#
# Backward (BPTT through the membrane). With u = H - v_th, g = surrogate'(u), k = 1 - 1/tau and
# G[t] = dL/dH[t]:
#   G[t] = dL/dS[t] * g[t] + k * G[t+1] * C[t],   C[t] = dV[t]/dH[t] + dV[t]/dS[t] * g[t]
# where dV/dH = 1 - S (hard) or 1 (soft) and dV/dS = v_reset - H (hard) or -v_th (soft); the
# dV/dS term is absent with detach_reset. Everything except the recurrence itself is computed
# for all T at once, in few fused passes; the recurrence is one in-place addcmul per step. As
# dL/dX = G / tau (decay_input) or G and G is linear in dL/dS, the 1 / tau is applied to dL/dS.


def lif_multistep_fusable(x_seq: torch.Tensor, surrogate: nn.Module) -> bool:
    """Whether :func:`lif_multistep` can take the fused path for this input and spike module.

    True for a float32/float64 ``x_seq`` and a spiking :class:`Surrogate` whose forward is the
    base class's Heaviside (so ``type(surrogate)._grad`` is exactly its backward) and that has no
    forward hooks (the fused path does not call the module).

    Args:
        x_seq: Input currents ``[T, ...]``.
        surrogate: The spike module.
    """
    if x_seq.dtype not in _FUSED_DTYPES or not isinstance(surrogate, Surrogate):
        return False
    if not surrogate.spiking or type(surrogate).forward is not Surrogate.forward:
        return False
    hooks = (surrogate._forward_hooks, surrogate._forward_pre_hooks)
    global_hooks = (nn.modules.module._global_forward_hooks,
                    nn.modules.module._global_forward_pre_hooks)  # fmt: skip
    return not any(hooks) and not any(global_hooks)


def _lif_fused_forward(
    x_seq: torch.Tensor,
    *,
    tau: float,
    v_threshold: float,
    v_reset: float,
    hard: bool,
    decay_input: bool,
    h_seq: torch.Tensor | None,
    v_seq: torch.Tensor | None,
) -> torch.Tensor:
    """Run the dynamics without autograd; returns spikes ``[T, ...]`` (``T >= 1``).

    Args:
        x_seq: Input currents ``[T, ...]``.
        tau, v_threshold, v_reset, hard, decay_input: The neuron (``hard``: hard reset).
        h_seq: If given, a ``[T, ...]`` buffer that receives the charged potentials ``H[t]``.
        v_seq: If given, a ``[T, ...]`` buffer that receives the post-reset potentials ``V[t]``.
    """
    steps = x_seq.shape[0]
    shape, opts = x_seq.shape[1:], dict(dtype=x_seq.dtype, device=x_seq.device)
    s_seq = torch.empty(x_seq.shape, **opts)  # [T, ...]
    tmp = torch.empty(shape, **opts)  # [...] scratch
    tau_t = torch.full((), tau, **opts)  # for addcdiv
    h_step = torch.empty(shape, **opts) if h_seq is None else None
    v_step = torch.empty(shape, **opts) if v_seq is None else None
    v = v_step  # V[t-1], only read for t >= 1
    for t in range(steps):
        x = x_seq[t]
        h = h_seq[t] if h_seq is not None else h_step
        if t == 0:
            # V[-1] = v_reset, so V - v_reset = +0 exactly and the charge reduces to this.
            if decay_input:  # v_reset + X / tau
                torch.div(x, tau, out=h)
                if v_reset != 0.0:
                    h.add_(v_reset)
            else:  # (v_reset - 0 / tau) + X
                torch.add(x, v_reset, out=h)
        else:
            dv = v if v_reset == 0.0 else torch.sub(v, v_reset, out=tmp)  # V - v_reset
            if decay_input:  # V + (X - (V - v_reset)) / tau
                torch.addcdiv(v, torch.sub(x, dv, out=tmp), tau_t, out=h)
            else:  # V - (V - v_reset) / tau + X
                torch.addcdiv(v, dv, tau_t, value=-1.0, out=h).add_(x)
        s = torch.ge(h, v_threshold, out=s_seq[t])  # Heaviside(H - v_th), H(0) = 1
        if t == steps - 1 and v_seq is None:
            break  # the last V is never used
        v = v_seq[t] if v_seq is not None else v_step
        if hard:  # S v_reset + (1 - S) H
            torch.addcmul(h, h, s, value=-1.0, out=v)  # H - H S
            if v_reset != 0.0:
                v.add_(s, alpha=v_reset)
        else:  # H - S v_th
            torch.sub(h, s, alpha=v_threshold, out=v)
    return s_seq


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """A 0-dim tensor with ``like``'s dtype and device (a broadcast operand)."""
    return torch.full((), value, dtype=like.dtype, device=like.device)


def _surrogate_grad(
    h_seq: torch.Tensor,
    v_threshold: float,
    surrogate: Surrogate,
    grad: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """``scale * surrogate'(H - v_th)``, times ``grad`` if given, in one new ``[T, ...]`` tensor.

    ATan and Sigmoid are evaluated in a few fused passes (``addcmul``/``addcdiv`` with 0-dim
    operands); they equal :func:`~spikeformers.neurons.surrogate.atan_grad` and
    :func:`~spikeformers.neurons.surrogate.sigmoid_grad` up to rounding (the argument is scaled
    as ``c H - c v_th``). Any other :class:`Surrogate` goes through its own ``_grad``.

    Args:
        h_seq: Charged potentials ``H`` ``[T, ...]``.
        v_threshold: Firing threshold.
        surrogate: The spike module (its class's ``_grad`` and its ``alpha``).
        grad: Optional factor broadcastable to ``[T, ...]`` (the upstream ``dL/dS``).
        scale: A constant factor.
    """
    grad_fn = type(surrogate)._grad.__func__
    alpha = surrogate.alpha
    if grad_fn is ATan._grad.__func__:  # alpha / (2 (1 + (pi/2 alpha u)^2))
        c = math.pi / 2.0 * alpha
        g = torch.addcmul(_scalar(-c * v_threshold, h_seq), h_seq, _scalar(c, h_seq))  # c u
        g = torch.addcmul(_scalar(1.0, g), g, g, out=g)  # 1 + (c u)^2
        if grad is None:
            return g.reciprocal_().mul_(scale * alpha / 2.0)
        return torch.addcdiv(_scalar(0.0, g), grad, g, value=scale * alpha / 2.0, out=g)
    if grad_fn is Sigmoid._grad.__func__:  # alpha s (1 - s), s = sigmoid(alpha u)
        g = torch.addcmul(_scalar(-alpha * v_threshold, h_seq), h_seq, _scalar(alpha, h_seq))
        g = g.sigmoid_()
        g = g.addcmul_(g, g, value=-1.0)  # s - s^2
        if grad is None:
            return g.mul_(scale * alpha)
        return torch.addcmul(_scalar(0.0, g), g, grad, value=scale * alpha, out=g)
    g = type(surrogate)._grad(torch.sub(h_seq, v_threshold), alpha)
    g = g if grad is None else g * grad
    return g if scale == 1.0 else g.mul_(scale)


class _LIFMultistep(torch.autograd.Function):
    """Fused LIF over a whole ``[T, ...]`` sequence; saves only ``H`` ``[T, ...]`` for backward."""

    @staticmethod
    def forward(  # noqa: D102
        ctx,
        x_seq: torch.Tensor,
        tau: float,
        v_threshold: float,
        v_reset: float,
        hard: bool,
        detach_reset: bool,
        decay_input: bool,
        surrogate: Surrogate,
    ) -> torch.Tensor:
        h_seq = torch.empty(x_seq.shape, dtype=x_seq.dtype, device=x_seq.device)
        s_seq = _lif_fused_forward(
            x_seq, tau=tau, v_threshold=v_threshold, v_reset=v_reset, hard=hard,
            decay_input=decay_input, h_seq=h_seq, v_seq=None,
        )  # fmt: skip
        ctx.save_for_backward(h_seq)
        ctx.params = (tau, v_threshold, v_reset, hard, detach_reset, decay_input, surrogate)
        return s_seq

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_s: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: D102
        (h_seq,) = ctx.saved_tensors  # H, [T, ...]
        tau, v_threshold, v_reset, hard, detach_reset, decay_input, surrogate = ctx.params
        nones = (None,) * 7
        if not ctx.needs_input_grad[0]:
            return (None, *nones)
        steps = h_seq.shape[0]
        k = 1.0 - 1.0 / tau  # dH[t+1] / dV[t]
        # The recurrence is linear in dL/dS, so dL/dX = G / tau comes from scaling dL/dS.
        scale = 1.0 / tau if decay_input else 1.0
        if steps > 1 and not detach_reset:
            sg = _surrogate_grad(h_seq, v_threshold, surrogate, None, 1.0)  # g, [T, ...]
            if hard:  # C = 1 - S + (v_reset - H) g, [T-1, ...]
                c = torch.lt(h_seq[:-1], v_threshold, out=torch.empty_like(h_seq[:-1]))
                c.addcmul_(torch.rsub(h_seq[:-1], v_reset), sg[:-1])
            else:  # C = 1 - v_th g
                c = torch.mul(sg[:-1], -v_threshold).add_(1.0)
            g = torch.addcmul(_scalar(0.0, sg), sg, grad_s, value=scale, out=sg)
            for t in range(steps - 2, -1, -1):  # G[t] += k G[t+1] C[t]
                g[t].addcmul_(g[t + 1], c[t], value=k)
            return (g, *nones)
        g = _surrogate_grad(h_seq, v_threshold, surrogate, grad_s, scale)  # dL/dS g, [T, ...]
        mask = torch.empty_like(h_seq[0]) if hard and steps > 1 else None  # 1 - S[t], [...]
        for t in range(steps - 2, -1, -1):  # G[t] += k G[t+1] C[t], C = 1 - S or 1
            if mask is None:
                g[t].add_(g[t + 1], alpha=k)
            else:
                g[t].addcmul_(g[t + 1], torch.lt(h_seq[t], v_threshold, out=mask), value=k)
        return (g, *nones)


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
    fused: bool = ...,
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
    fused: bool = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...


def lif_multistep(
    x_seq: torch.Tensor,
    *,
    tau: float,
    v_threshold: float = 1.0,
    v_reset: float = 0.0,
    reset: Literal["hard", "soft"] = "hard",
    detach_reset: bool = True,
    decay_input: bool = True,
    surrogate: nn.Module,
    return_v: bool = False,
    fused: bool = True,
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

    Implementation: with ``fused=True`` (the default) and a float32/float64 input and a built-in
    style spike module (a spiking :class:`~spikeformers.neurons.Surrogate`, see
    :func:`lif_multistep_fusable`), the whole sequence is one autograd node: the forward loop runs
    on preallocated buffers without recording a graph (spikes bit for bit those of
    :func:`lif_multistep_reference`, ``v_seq`` too up to the sign of a zero), only the charged
    potentials ``H`` ``[T, ...]`` are saved (one tensor of the input's size), and the backward
    runs the reverse-time recurrence by hand (same gradients up to rounding). Its
    backward is not differentiable again: pass ``fused=False`` for higher-order gradients. With
    ``return_v`` and a graph to record, and for anything else, the reference runs.

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
        fused: Use the fused implementation where it applies; ``False`` always runs
            :func:`lif_multistep_reference`.

    Returns:
        ``spikes`` of shape ``[T, ...]`` (same dtype and device as ``x_seq``), or
        ``(spikes, v_seq)`` when ``return_v``, where ``v_seq[t]`` is ``V[t]`` after the reset.

    Raises:
        ValueError: On invalid hyperparameters or a 0-dimensional ``x_seq``.
        TypeError: If ``x_seq`` is not floating point.
    """
    check_lif_args(tau=tau, v_threshold=v_threshold, v_reset=v_reset, reset=reset)
    _check_input(x_seq)
    if not (fused and x_seq.shape[0] > 0 and lif_multistep_fusable(x_seq, surrogate)):
        return lif_multistep_reference(
            x_seq, tau=tau, v_threshold=v_threshold, v_reset=v_reset, reset=reset,
            detach_reset=detach_reset, decay_input=decay_input, surrogate=surrogate,
            return_v=return_v,
        )  # fmt: skip
    hard = reset == "hard"
    if not (torch.is_grad_enabled() and x_seq.requires_grad):  # nothing to differentiate
        with torch.no_grad():
            v_seq = (
                torch.empty_like(x_seq, memory_format=torch.contiguous_format) if return_v else None
            )
            s_seq = _lif_fused_forward(
                x_seq, tau=tau, v_threshold=v_threshold, v_reset=v_reset, hard=hard,
                decay_input=decay_input, h_seq=None, v_seq=v_seq,
            )  # fmt: skip
        return (s_seq, v_seq) if return_v else s_seq
    if return_v:  # V with a graph: the reference records it
        return lif_multistep_reference(
            x_seq, tau=tau, v_threshold=v_threshold, v_reset=v_reset, reset=reset,
            detach_reset=detach_reset, decay_input=decay_input, surrogate=surrogate,
            return_v=True,
        )  # fmt: skip
    return _LIFMultistep.apply(
        x_seq, tau, v_threshold, v_reset, hard, detach_reset, decay_input, surrogate
    )
