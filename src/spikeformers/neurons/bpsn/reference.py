"""Token-by-token references of both reset modes (what the parallel paths are tested against)."""

from __future__ import annotations

import torch
from torch import nn

from spikeformers.neurons.bpsn.graded import GRADED_START
from spikeformers.neurons.bpsn.kernels import _prepare


def bpsn_graded_sequential_reference(
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
    """:func:`bpsn_graded` as a loop over time: an IF neuron with soft reset, step by step.

    ``v`` is the residual potential (:data:`GRADED_START` at the start); at token ``t``:
    ``u = (H[t] - θ)/β``, ``S[t] = m Θ(v + u - 1)``,
    ``v <- v + m clamp(u, 0, 1) - S[t]`` (the reset subtracts the hard spike, detached). For
    tests and as executable documentation; arguments and return as :func:`bpsn_graded`.
    """
    m, _ = _prepare(x, mask, weight_fwd, None)
    B, L, D = x.shape
    if m is None:
        m = x.new_ones(B, L)
    xm = x * m.unsqueeze(-1)
    h_f = _scan(xm, weight_fwd, reverse=False, offset=0)
    h_b = _scan(xm, weight_bwd, reverse=True, offset=0)
    v = x.new_full((B, D), GRADED_START)
    spikes = []
    for t in range(L):
        m_t = m[:, t : t + 1]  # (B, 1)
        h_t = fusion * h_f[:, t] + (1.0 - fusion) * h_b[:, t]  # (B, D)
        u = (h_t - threshold) / reset_strength
        pre = v + u - 1.0
        spikes.append(surrogate(pre) * m_t)
        v = v + u.clamp(0.0, 1.0) * m_t - (pre.detach() >= 0).to(x.dtype) * m_t
    return torch.stack(spikes, dim=1)  # (B, L, D)


def _scan(seq: torch.Tensor, taps: torch.Tensor, *, reverse: bool, offset: int) -> torch.Tensor:
    """Step-by-step causal / anti-causal ``n``-tap filter on ``[B, L, D]`` with a shift register.

    ``out[t] = Σ_i taps[:, i] · seq[t ∓ (i + offset)]`` (zero outside), computed one step at a
    time; ``reverse=False`` looks back in time, ``True`` looks ahead.

    The register holds the last ``n`` values seen in the scan direction (newest first); it is the
    neuron's finite memory. With ``offset = 1`` the output is read before the current value enters.
    """
    B, L, D = seq.shape
    n = taps.shape[1]
    taps_t = taps.t()  # (n, D)
    register = seq.new_zeros(B, n, D)
    out = [seq.new_zeros(B, D)] * L
    steps = range(L - 1, -1, -1) if reverse else range(L)
    for t in steps:
        if offset == 0:
            register = torch.cat([seq[:, t : t + 1], register[:, :-1]], dim=1)
            out[t] = (register * taps_t).sum(dim=1)
        else:
            out[t] = (register * taps_t).sum(dim=1)
            register = torch.cat([seq[:, t : t + 1], register[:, :-1]], dim=1)
    return torch.stack(out, dim=1)  # (B, L, D)


def bpsn_sequential_reference(
    x: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    weight_fwd: torch.Tensor,
    weight_bwd: torch.Tensor,
    fusion: torch.Tensor,
    threshold: torch.Tensor,
    reset_strength: torch.Tensor,
    reset_taps: torch.Tensor,
    reset_passes: int,
    detach_reset: bool,
    surrogate: nn.Module,
) -> torch.Tensor:
    """The same dynamics as :func:`bpsn_parallel`, as plain Python loops over time.

    For tests and as executable documentation; ``O(L)`` sequential steps, so slow. Each direction
    is a scan with a ``k``-slot shift register (the causal one runs ``t = 0 .. L-1``, the
    anti-causal one ``t = L-1 .. 0``); each pass fires step by step. Arguments, shapes and return
    value are those of :func:`bpsn_parallel`.
    """
    m, reset_taps = _prepare(x, mask, weight_fwd, reset_taps)
    L = x.shape[1]
    if m is None:
        m = x.new_ones(x.shape[:2])
    xm = x * m.unsqueeze(-1)  # (B, L, D)
    a = fusion  # (D,), broadcasts over (B, D)

    h_f = _scan(xm, weight_fwd, reverse=False, offset=0)
    h_b = _scan(xm, weight_bwd, reverse=True, offset=0)

    def fire(c: torch.Tensor | None) -> torch.Tensor:
        spikes = []
        for t in range(L):
            h_t = a * h_f[:, t] + (1.0 - a) * h_b[:, t]  # (B, D)
            v_t = h_t - threshold if c is None else h_t - reset_strength * c[:, t] - threshold
            spikes.append(surrogate(v_t) * m[:, t : t + 1])
        return torch.stack(spikes, dim=1)  # (B, L, D)

    s = fire(None)
    for _ in range(reset_passes):
        prev = s.detach() if detach_reset else s
        c_f = _scan(prev, reset_taps, reverse=False, offset=1)
        c_b = _scan(prev, reset_taps, reverse=True, offset=1)
        s = fire(a * c_f + (1.0 - a) * c_b)
    return s
