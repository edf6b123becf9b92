"""Bidirectional Parallel Spiking Neuron (BPSN) for individual coding (SNN-BERT).

Paper: Su et al., "SNN-BERT: Training-efficient Spiking Neural Networks for energy-efficient
BERT", Neural Networks 180 (2024) 106630, https://doi.org/10.1016/j.neunet.2024.106630.
Background: Fang et al., "Parallel Spiking Neurons with High Efficiency and Ability to Learn
Long-term Dependencies" (PSN), NeurIPS 2023, https://arxiv.org/abs/2304.12760.

Under *individual coding* token ``t`` enters the network once, at time step ``t``, so the neuron's
time axis is the token axis: inputs are ``[B, L, D]`` and there is no separate ``T`` axis. The
paper states only that BPSN (a) computes all time steps in parallel while avoiding "uninterrupted
firing", (b) handles variable sequence lengths and (c) fuses both directions in time.

DESIGN (this project's reconstruction, NOT the paper's equations, which are not public; see
``shared/spec/snnbert.md``). Everything below can be swapped by replacing :func:`bpsn_parallel`
and :func:`bpsn_sequential_reference` (the module is a thin shell over them). With ``x̃ = m ⊙ x``
(``m`` the padding mask, so padded inputs are zero), per channel ``d``::

    H_f[t] = Σ_{i=0}^{k-1} w_f[i] · x̃[t-i]          causal potential      (x̃[s<0] = 0)
    H_b[t] = Σ_{i=0}^{k-1} w_b[i] · x̃[t+i]          anti-causal potential (x̃[s>=L] = 0)
    H      = a ⊙ H_f + (1 - a) ⊙ H_b,   a = sigmoid(a_raw)       (per-channel fusion)
    S⁰     = m ⊙ Θ(H - θ)                                        (first pass: a reset-free PSN)
    for p = 1 .. P:                                              (parallel reset passes)
        C_f[t] = Σ_{i=1}^{k} λ^i · Sᵖ⁻¹[t-i],   C_b[t] = Σ_{i=1}^{k} λ^i · Sᵖ⁻¹[t+i]
        C      = a ⊙ C_f + (1 - a) ⊙ C_b
        Sᵖ     = m ⊙ Θ(H - β ⊙ C - θ)
    output Sᴾ

- ``w_f, w_b``: learnable *per-channel* ``k``-tap kernels (``[D, k]``; depthwise, so each of the
  ``D`` neurons learns its own time constant at a cost of ``2kD`` parameters), initialised to the
  truncated reset-free LIF kernel ``w[i] = (1/τ)(1 - 1/τ)^i``. They are length-independent: any
  ``L`` (also ``L < k``) works, and the ``L×L`` matrix of a masked PSN is never formed.
- ``θ``: learnable per-channel threshold (unconstrained, as the PSN bias).
- ``β = softplus(β_raw) >= 0``: learnable per-channel reset strength; ``λ = 1 - 1/τ`` is fixed.
- ``Θ``: Heaviside forward, surrogate gradient backward (default a fresh ``ATan(alpha=2)``).

Why the reset term: a LIF with soft reset unrolls to
``V[t] = Σ_i (1/τ)λ^i x[t-i] - θ Σ_{i>=1} λ^i S[t-i]``. The reset sum depends on the output
spikes, which forces a sequential loop; here it is approximated by the decayed count of the spikes
of the previous pass, which is again a parallel convolution. In the anti-causal direction "earlier"
means later tokens, hence ``C_b`` counts spikes at ``t+1 .. t+k``; both counts are fused with the
same ``a`` as the potentials. With the default ``β = θ`` the neuron saturates (fires at every step
of a long constant input ``c``) at the same input as a soft-reset LIF, ``c ≈ θτ``; for
``θ < c < θτ``, where a reset-free neuron fires at every step, it stays silent instead.
Limitation: every pass is shift-equivariant, so on a long constant input the response away from
the two ends is constant, i.e. the rate is 0 or 1 there, never graded as a LIF's; a graded rate
would need a non-shift-equivariant part (e.g. a cumulative-sum sigma-delta stage). ``P = 1`` is the
default; ``P = 0`` is a plain bidirectional PSN (no reset); more passes are a Jacobi-style
refinement that need not converge: on constant input they alternate between silence and firing,
so an even ``P`` brings the uninterrupted firing back there. Prefer ``P = 1`` (or an odd ``P``).

Padding: padded inputs are zeroed before the convolutions, so the anti-causal potential of each
sample starts at its last real token and a real token's output does not depend on how far the
batch is padded; padded positions never spike (the mask multiplies every pass, which also keeps
padded first-pass spikes out of the reset counts). Masks need not be right-padded.

Determinism: the parallel path is a depthwise ``conv1d``; it is deterministic on CPU, and on CUDA
under ``torch.use_deterministic_algorithms(True)`` (cuDNN may otherwise pick a non-deterministic
weight-gradient kernel).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spikeformers.neurons.surrogate import ATan, Surrogate

__all__ = ["BPSN", "bpsn_parallel", "bpsn_sequential_reference", "lif_kernel"]


def lif_kernel(tau: float, kernel_size: int, *, start: int = 0) -> torch.Tensor:
    """Taps of the truncated reset-free LIF kernel, ``w[i] = (1/τ)(1 - 1/τ)^i``.

    Args:
        tau: Membrane time constant, ``>= 1``.
        kernel_size: Number of taps ``k``.
        start: First tap index (taps ``i = start .. start + k - 1``).

    Returns:
        A float64 tensor of shape ``[k]``; cast it where it is used.
    """
    i = torch.arange(start, start + kernel_size, dtype=torch.float64)
    return (1.0 / tau) * (1.0 - 1.0 / tau) ** i


def _prepare(
    x: torch.Tensor, mask: torch.Tensor | None, taps: torch.Tensor, reset_taps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes; return the mask ``[B, L]`` in ``x``'s dtype and the reset taps ``[D, k_r]``."""
    if x.dim() != 3:
        raise ValueError(f"x must be [B, L, D], got shape {tuple(x.shape)}")
    B, L, D = x.shape
    if taps.shape[0] != D:
        raise ValueError(f"kernels have {taps.shape[0]} channels but x has D={D}")
    if mask is None:
        m = x.new_ones(B, L)
    else:
        if tuple(mask.shape) != (B, L):
            raise ValueError(f"mask must be [B, L] = {(B, L)}, got {tuple(mask.shape)}")
        m = mask.to(dtype=x.dtype)
    reset_taps = reset_taps.to(dtype=x.dtype, device=x.device)
    if reset_taps.dim() == 1:
        reset_taps = reset_taps.expand(D, -1)
    return m, reset_taps


def _depthwise_conv(
    seq: torch.Tensor, taps: torch.Tensor, *, reverse: bool, offset: int
) -> torch.Tensor:
    """``out[t] = Σ_i taps[:, i] · seq[t ∓ (i + offset)]`` along the last axis, zero outside.

    Args:
        seq: ``[B, D, L]``.
        taps: ``[D, n]``.
        reverse: ``False`` looks back in time (causal, ``-``), ``True`` looks ahead (``+``).
        offset: ``0`` includes the current step, ``1`` starts at the neighbouring step.

    Returns:
        ``[B, D, L]``.
    """
    D, n = taps.shape
    if offset:
        taps = torch.cat([taps.new_zeros(D, offset), taps], dim=1)  # (D, n + offset)
    size = taps.shape[1]
    # conv1d is a cross-correlation, out[t] = Σ_j W[j] seq_pad[t + j]: for the causal direction the
    # kernel is flipped and the padding goes on the left, for the anti-causal one neither.
    if reverse:
        seq = F.pad(seq, (0, size - 1))
        weight = taps
    else:
        seq = F.pad(seq, (size - 1, 0))
        weight = taps.flip(-1)
    return F.conv1d(seq, weight.unsqueeze(1), groups=D)  # (B, D, L)


def bpsn_parallel(
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
    """BPSN dynamics computed for all time steps at once (see the module docstring).

    Args:
        x: Input current, ``[B, L, D]`` (token axis = time axis).
        mask: ``[B, L]``, 1 for real tokens and 0 for padding (bool, int or float), or ``None``.
        weight_fwd: Causal kernel ``w_f``, ``[D, k]``; tap ``i`` weighs ``x[t - i]``.
        weight_bwd: Anti-causal kernel ``w_b``, ``[D, k]``; tap ``i`` weighs ``x[t + i]``.
        fusion: Per-channel weight ``a`` of the causal direction, ``[D]`` (in ``(0, 1)``).
        threshold: Per-channel threshold ``θ``, ``[D]``.
        reset_strength: Per-channel ``β >= 0``, ``[D]``.
        reset_taps: ``[k_r]`` or ``[D, k_r]``; tap ``j`` weighs the spike ``j + 1`` steps away.
        reset_passes: Number ``P >= 0`` of reset passes.
        detach_reset: Stop the gradient through the previous pass's spikes in the reset count.
        surrogate: Heaviside with a surrogate gradient.

    Returns:
        Spikes ``[B, L, D]`` in ``x``'s dtype; padded positions are 0.
    """
    m, reset_taps = _prepare(x, mask, weight_fwd, reset_taps)
    m = m.unsqueeze(1)  # (B, 1, L)
    xm = x.transpose(1, 2) * m  # (B, D, L)
    a = fusion.view(-1, 1)  # (D, 1), broadcasts over (B, D, L)
    theta = threshold.view(-1, 1)
    beta = reset_strength.view(-1, 1)

    h_f = _depthwise_conv(xm, weight_fwd, reverse=False, offset=0)
    h_b = _depthwise_conv(xm, weight_bwd, reverse=True, offset=0)
    h = a * h_f + (1.0 - a) * h_b  # (B, D, L)

    s = surrogate(h - theta) * m
    for _ in range(reset_passes):  # a loop over passes, not over time
        prev = s.detach() if detach_reset else s
        c_f = _depthwise_conv(prev, reset_taps, reverse=False, offset=1)
        c_b = _depthwise_conv(prev, reset_taps, reverse=True, offset=1)
        c = a * c_f + (1.0 - a) * c_b
        s = surrogate(h - beta * c - theta) * m
    return s.transpose(1, 2).contiguous()  # (B, L, D)


def _scan(seq: torch.Tensor, taps: torch.Tensor, *, reverse: bool, offset: int) -> torch.Tensor:
    """Step-by-step twin of :func:`_depthwise_conv`, on ``[B, L, D]`` with a shift register.

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


class BPSN(nn.Module):
    """Bidirectional Parallel Spiking Neuron: stateless, parallel over the token/time axis.

    The dynamics (a DESIGN reconstruction, not the paper's equations) are in the module docstring:
    two ``k``-tap depthwise kernels (causal and anti-causal), a per-channel sigmoid fusion, a
    per-channel threshold, and ``reset_passes`` parallel reset passes that subtract ``β`` times the
    decayed count of the previous pass's spikes, against uninterrupted firing.

    Args:
        num_channels: Width ``D`` (one neuron per channel).
        kernel_size: Taps ``k`` per direction, also the reach of the reset count.
        tau: LIF time constant used to initialise the kernels and as the fixed reset decay
            ``λ = 1 - 1/τ``; ``>= 1``.
        v_threshold: Initial threshold ``θ`` of every channel.
        fusion_init: Initial causal weight ``a`` in ``(0, 1)``; 0.5 weighs both directions equally.
        reset_strength: Initial ``β > 0``; ``None`` means ``v_threshold``, the soft-reset analogue.
        reset_passes: ``P >= 0``; 0 disables the reset (a plain bidirectional PSN). Keep it odd:
            even values fire uninterruptedly again on constant input (see the module docstring).
        detach_reset: Stop the gradient through the spikes inside the reset count.
        surrogate: Spike function; ``None`` builds a fresh ``ATan(alpha=2.0)``.

    Shapes:
        Input ``x``: ``[B, L, D]``; ``mask``: ``[B, L]`` (1 real, 0 padding) or ``None``.
        Output: spikes ``[B, L, D]`` in ``x``'s dtype, 0 at padded positions.
    """

    def __init__(
        self,
        num_channels: int,
        *,
        kernel_size: int = 8,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        fusion_init: float = 0.5,
        reset_strength: float | None = None,
        reset_passes: int = 1,
        detach_reset: bool = False,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__()
        if reset_strength is None:
            reset_strength = v_threshold
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        if not tau >= 1.0:
            raise ValueError(f"tau must be >= 1, got {tau}")
        if not 0.0 < fusion_init < 1.0:
            raise ValueError(f"fusion_init must be in (0, 1), got {fusion_init}")
        if reset_passes < 0:
            raise ValueError(f"reset_passes must be >= 0, got {reset_passes}")
        if reset_passes > 0 and not reset_strength > 0.0:
            raise ValueError(f"reset_strength must be > 0, got {reset_strength}")

        self.num_channels = num_channels
        self.kernel_size = kernel_size
        self.tau = float(tau)
        self.reset_passes = reset_passes
        self.detach_reset = detach_reset
        self.surrogate = ATan(alpha=2.0) if surrogate is None else surrogate

        taps = lif_kernel(tau, kernel_size).to(torch.get_default_dtype())
        self.weight_fwd = nn.Parameter(taps.repeat(num_channels, 1))  # (D, k)
        self.weight_bwd = nn.Parameter(taps.repeat(num_channels, 1))  # (D, k)
        logit = math.log(fusion_init / (1.0 - fusion_init))
        self.fusion_logit = nn.Parameter(torch.full((num_channels,), logit))
        self.threshold = nn.Parameter(torch.full((num_channels,), float(v_threshold)))
        # Inverse softplus; with reset_passes == 0 the value is unused, so any positive one will do.
        beta = float(reset_strength) if reset_strength > 0 else 1.0
        beta_raw = beta + math.log(-math.expm1(-beta))
        self.reset_raw = nn.Parameter(torch.full((num_channels,), beta_raw))

    @property
    def fusion(self) -> torch.Tensor:
        """Per-channel weight ``a = sigmoid(fusion_logit)`` of the causal direction, ``[D]``."""
        return torch.sigmoid(self.fusion_logit)

    @property
    def reset_strength(self) -> torch.Tensor:
        """Per-channel reset strength ``β = softplus(reset_raw) >= 0``, ``[D]``."""
        return F.softplus(self.reset_raw)

    def reset_taps(self) -> torch.Tensor:
        """Fixed reset-count taps ``λ^j`` for ``j = 1 .. k`` (``λ = 1 - 1/τ``), float64 ``[k]``."""
        return self.tau * lif_kernel(self.tau, self.kernel_size, start=1)

    def _dynamics_kwargs(self) -> dict:
        return {
            "weight_fwd": self.weight_fwd,
            "weight_bwd": self.weight_bwd,
            "fusion": self.fusion,
            "threshold": self.threshold,
            "reset_strength": self.reset_strength,
            "reset_taps": self.reset_taps(),
            "reset_passes": self.reset_passes,
            "detach_reset": self.detach_reset,
            "surrogate": self.surrogate,
        }

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Fire all ``L`` steps in parallel.

        Args:
            x: ``[B, L, D]``, token ``t`` at time step ``t``.
            mask: ``[B, L]``, 1 for real tokens and 0 for padding; ``None`` means no padding.

        Returns:
            Spikes ``[B, L, D]``; padded positions are 0.
        """
        return bpsn_parallel(x, mask, **self._dynamics_kwargs())

    def forward_sequential(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`forward` but with a Python loop over time (reference; slow)."""
        return bpsn_sequential_reference(x, mask, **self._dynamics_kwargs())

    def extra_repr(self) -> str:
        return (
            f"{self.num_channels}, kernel_size={self.kernel_size}, tau={self.tau}, "
            f"reset_passes={self.reset_passes}, detach_reset={self.detach_reset}"
        )
