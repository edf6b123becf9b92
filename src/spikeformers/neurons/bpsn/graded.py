"""``reset_mode="graded"`` (the default): a soft-reset integrate-and-fire spike generator on the
excess charge, computed in parallel as the floor of a cumulative sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spikeformers.neurons.bpsn.kernels import (
    _charge_backward,
    _correlate,
    _fire,
    _prepare,
    _RecomputingFunction,
    _surrogate_grad_,
    merged_charge_kernel,
)
from spikeformers.neurons.surrogate import Surrogate

# -- reset_mode="graded": a sigma-delta (soft-reset integrate-and-fire) spike generator --------
#
# The charge H is the same bidirectional convolution; the spikes come from an IF neuron with
# soft reset that integrates the clamped excess z = clamp((H - θ)/β, 0, 1). Its count is a floor
# of a cumulative sum, so the whole sequence is one scan (see the module docstring).


GRADED_START = 0.5
"""Initial residual potential of the graded mode's IF neuron, in units of its threshold 1."""


def _phase(z: torch.Tensor) -> torch.Tensor:
    """``φ[t] = frac(φ₀ + Σ_{s<t} z[s])`` along the token axis, ``φ₀ =`` :data:`GRADED_START`.

    ``z >= 0``, ``[B, L, D]``. The residual potential of a soft-reset IF neuron with threshold 1
    just before token ``t`` (its spike count so far is the floor that ``frac`` removes).
    Differentiable: ``frac`` passes the gradient through and the floor it removes has derivative
    0 (the detached reset).
    """
    total = F.pad(z[:, :-1].cumsum(1), (0, 0, 1, 0))  # exclusive cumulative sum, (B, L, D)
    return torch.frac(total.add_(GRADED_START))


def _graded_potential(
    h: torch.Tensor, mask: torch.Tensor | None, threshold: torch.Tensor, beta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w, u)``: the IF potential ``w = φ + u`` (spike where ``w >= 1``) and the normalised
    excess ``u = (H - θ) / β``, both ``[B, L, D]`` in at least float32 (the cumulative sum of a
    bf16 ``H`` would lose the phase). Shared by forward and the backward recomputation.

    Args:
        h: Charge ``H``, ``[B, L, D]``.
        mask: ``[B, L, 1]`` or ``None``.
        threshold: ``θ``, ``[D]``; beta: ``β > 0``, ``[D]``.
    """
    acc = _integrator_dtype(h.dtype)
    u = (h.to(acc) - threshold.to(acc)) / beta.to(acc)
    z = u.clamp(0.0, 1.0)
    if mask is not None:
        z.mul_(mask)
    return _phase(z).add_(u), u


def _integrator_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; anything else (bf16, fp16, float32) integrates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _graded_spikes(
    xm: torch.Tensor,
    mask: torch.Tensor | None,
    kernel: torch.Tensor,
    threshold: torch.Tensor,
    reset_strength: torch.Tensor,
) -> torch.Tensor:
    """Graded BPSN spikes ``[B, L, D]`` of the masked input ``xm [B, L, D]`` (``mask [B, L, 1]``
    or ``None``) with the merged charge kernel ``[D, 2k-1]``: the forward of
    :class:`_GradedFunction`, shared with the no-grad path."""
    h = _correlate(xm, kernel)
    w, _ = _graded_potential(h, mask, threshold, reset_strength)
    return _fire(w, 1.0, mask, inplace=True).to(h.dtype)  # w >= 1 iff w - 1 >= 0, exactly


def _graded_forward(
    x: torch.Tensor,
    mask: torch.Tensor | None,
    weight_fwd: torch.Tensor,
    weight_bwd: torch.Tensor,
    fusion: torch.Tensor,
    threshold: torch.Tensor,
    reset_strength: torch.Tensor,
) -> torch.Tensor:
    """:class:`_GradedFunction`'s forward without autograd (grad mode off); same ops, so the
    same spikes bit for bit."""
    xm = x if mask is None else x * mask
    kernel = merged_charge_kernel(weight_fwd, weight_bwd, fusion)
    return _graded_spikes(xm, mask, kernel, threshold, reset_strength)


class _GradedFunction(_RecomputingFunction):
    """Fused graded BPSN: saves only ``x̃ = m ⊙ x`` (and the mask); recomputes ``H``, ``u`` and
    ``v`` in backward bit for bit (same ops, same autocast state, as :class:`_BPSNFunction`).

    Gradients (``Θ`` backward is the surrogate derivative ``g'(v)``; the reset is the floor of
    the count, derivative 0): with ``gᵤ[t] = m g'(v[t]) dL/dS[t]``,
    ``dL/du[t] = gᵤ[t] + [0 <= u[t] <= 1] m Σ_{t' > t} gᵤ[t']`` (the direct term and the phase
    of every later token), ``dL/dH = (dL/du) / β``, ``dL/dθ = -Σ dL/dH``,
    ``dL/dβ = -Σ (dL/dH) u``; ``H``'s own gradients as in the passes mode.
    """

    @staticmethod
    def forward(  # noqa: D102
        ctx,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        weight_fwd: torch.Tensor,
        weight_bwd: torch.Tensor,
        fusion: torch.Tensor,
        threshold: torch.Tensor,
        reset_strength: torch.Tensor,
        surrogate: Surrogate,
    ) -> torch.Tensor:
        xm = x if mask is None else x * mask
        kernel = merged_charge_kernel(weight_fwd, weight_bwd, fusion)
        s = _graded_spikes(xm, mask, kernel, threshold, reset_strength)
        ctx.save_for_backward(
            xm, mask, kernel, weight_fwd, weight_bwd, fusion, threshold, reset_strength
        )
        _RecomputingFunction.remember(ctx, x, surrogate, _GradedFunction._backward)
        return s

    @staticmethod
    def _backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xm, mask, kernel, w_f, w_b, fusion, threshold, beta = ctx.saved_tensors
        need = ctx.needs_input_grad  # x, mask, w_f, w_b, fusion, threshold, beta, surrogate
        w, u = _graded_potential(_correlate(xm, kernel), mask, threshold, beta)
        gu = _surrogate_grad_(w.sub_(1.0), ctx.surrogate).mul_(grad_out)  # dL/dv, v = w - 1
        if mask is not None:
            gu.mul_(mask)
        # Σ_{t' > t} gᵤ[t'] (the later tokens whose phase includes z[t]), where 0 <= u <= 1.
        later = gu.cumsum(1).neg_().add_(gu.sum(1, keepdim=True))
        in_range = u.clamp(0.0, 1.0).eq_(u)  # 1. where 0 <= u <= 1 (the clamp's gradient)
        if mask is not None:
            in_range.mul_(mask)
        dh = gu.add_(later.mul_(in_range)).div_(beta)  # dL/dH, (B, L, D)
        del later, in_range
        d_theta = dh.sum((0, 1)).neg_() if need[5] else None
        d_beta = (dh * u).sum((0, 1)).neg_() if need[6] else None
        del u
        dx, d_w_f, d_w_b, d_fusion = _charge_backward(dh, xm, mask, kernel, w_f, w_b, fusion, need)
        return dx, None, d_w_f, d_w_b, d_fusion, d_theta, d_beta, None


def bpsn_graded(
    x: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    weight_fwd: torch.Tensor,
    weight_bwd: torch.Tensor,
    fusion: torch.Tensor,
    threshold: torch.Tensor,
    reset_strength: torch.Tensor,
    surrogate: nn.Module,
) -> torch.Tensor:
    """Graded BPSN (``reset_mode="graded"``, the default) for all time steps at once.

    The charge ``H`` as in :func:`bpsn_parallel`; the spikes of a soft-reset IF neuron that
    integrates ``z = m ⊙ clamp((H - θ)/β, 0, 1)``, computed as the floor of a cumulative sum
    (see the module docstring). With a spiking :class:`~spikeformers.neurons.surrogate.Surrogate`
    a fused autograd Function that saves only the masked input; any other spike module takes a
    plain autograd graph of the same operations.

    Args:
        x: Input current, ``[B, L, D]`` (token axis = time axis).
        mask: ``[B, L]``, 1 for real tokens and 0 for padding (bool, int or float), or ``None``.
        weight_fwd: Causal kernel ``w_f``, ``[D, k]``; weight_bwd: anti-causal ``w_b``, ``[D, k]``.
        fusion: Per-channel weight ``a`` of the causal direction, ``[D]``.
        threshold: Per-channel threshold ``θ``, ``[D]`` (the charge at which firing starts).
        reset_strength: Per-channel ``β > 0``, ``[D]``: the charge above ``θ`` that one spike
            per step costs (the rate on a constant charge ``c`` is ``clamp((c - θ)/β, 0, 1)``).
        surrogate: Heaviside with a surrogate gradient.

    Returns:
        Spikes ``[B, L, D]`` in the charge's dtype (``x``'s, or autocast's); padded positions 0.
    """
    m, _ = _prepare(x, mask, weight_fwd, None)
    if x.shape[1] == 0:
        return torch.zeros_like(x)
    m = None if m is None else m.unsqueeze(-1)  # (B, L, 1)
    w_f, w_b, a = weight_fwd.to(x.dtype), weight_bwd.to(x.dtype), fusion.to(x.dtype)
    theta, beta = threshold.to(x.dtype), reset_strength.to(x.dtype)
    if isinstance(surrogate, Surrogate) and surrogate.spiking:
        if not torch.is_grad_enabled():  # inference: the Function's forward ops, no ctx
            return _graded_forward(x, m, w_f, w_b, a, theta, beta)
        return _GradedFunction.apply(x, m, w_f, w_b, a, theta, beta, surrogate)
    # Generic spike module: the same operations under plain autograd.
    xm = x if m is None else x * m
    h = _correlate(xm, merged_charge_kernel(w_f, w_b, a))
    acc = _integrator_dtype(h.dtype)
    u = (h.to(acc) - theta.to(acc)) / beta.to(acc)
    z = u.clamp(0.0, 1.0)
    z = z if m is None else z * m
    s = surrogate(_phase(z) + u - 1.0).to(h.dtype)
    return s if m is None else s * m
