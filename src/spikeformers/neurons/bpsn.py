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
``shared/spec/snnbert.md``). The module is a thin shell over :func:`bpsn_graded` /
:func:`bpsn_parallel` and their sequential references, which can be swapped when the paper's
equations become known. With ``x̃ = m ⊙ x`` (``m`` the padding mask, so padded inputs are zero),
per channel ``d``, the *charge* is::

    H_f[t] = Σ_{i=0}^{k-1} w_f[i] · x̃[t-i]          causal potential      (x̃[s<0] = 0)
    H_b[t] = Σ_{i=0}^{k-1} w_b[i] · x̃[t+i]          anti-causal potential (x̃[s>=L] = 0)
    H      = a ⊙ H_f + (1 - a) ⊙ H_b,   a = sigmoid(a_raw)       (per-channel fusion)

- ``w_f, w_b``: learnable *per-channel* ``k``-tap kernels (``[D, k]``; depthwise, so each of the
  ``D`` neurons learns its own time constant at a cost of ``2kD`` parameters), initialised to the
  truncated reset-free LIF kernel ``w[i] = (1/τ)(1 - 1/τ)^i``. They are length-independent: any
  ``L`` (also ``L < k``) works, and the ``L×L`` matrix of a masked PSN is never formed.
- ``θ``: learnable per-channel threshold (unconstrained, as the PSN bias).
- ``β = softplus(β_raw) > 0``: learnable per-channel reset strength.
- ``Θ``: Heaviside forward, surrogate gradient backward (default a fresh ``ATan(alpha=2)``).

The spikes come from the charge in one of two ways, chosen by ``reset_mode``.

``reset_mode="graded"`` (the default): a soft-reset integrate-and-fire spike generator::

    u[t] = (H[t] - θ) / β,      z[t] = m[t] · clamp(u[t], 0, 1)
    φ[t] = frac(φ₀ + Σ_{s<t} z[s])                 (φ₀ = 1/2; a cumulative sum: one scan)
    S[t] = m[t] · Θ(φ[t] + u[t] - 1)

This is exactly an IF neuron with threshold 1, soft reset and input current ``z`` (residual
``v`` starting at ``φ₀``: ``S[t] = Θ(v + u[t] - 1)``, then ``v <- v + z[t] - S[t]``), because
with ``0 <= z <= 1`` it fires at most once per step and its residual is the fractional part of
what it has integrated (the floor that ``frac`` removes is its spike count; Moser & Lunglmayr,
arXiv 2402.07954, call this the modulo form of the subtractive reset). The neuron integrates only
the charge *above* ``θ``, so it stays silent below threshold, and ``β`` is the excess charge one
spike costs: on a constant charge ``c`` it emits ``round(n · clamp((c - θ)/β, 0, 1))`` spikes in
``n`` steps, a rate that grows linearly from 0 at ``c = θ`` to 1 at ``c = θ + β`` (with the
default ``β = θ``, ``θ .. 2θ``, the range over which a soft-reset LIF with ``τ = 2`` goes from
silent to firing at every step; ``β`` is learned per channel). Away from that range it is all or
none, as any neuron must be. ``φ₀ = 1/2`` makes the count round rather than floor (the initial
membrane potential of half the threshold that minimises the expected quantisation error; Bu et
al., ICLR 2022, "Optimal ANN-SNN conversion ..."); starting at 0 a neuron with rate ``r`` would
stay silent for its first ``1/r`` tokens, and in a short sentence that is all of them.
Bidirectionality is in the charge (``H`` sees ``k - 1`` tokens on each side); the spike
generator reads the tokens in order, as a neuron receiving them one per time step does.
Gradients: ``Θ`` backward is the surrogate ``g'``; the floor (the reset) has derivative 0, which
is the detached reset, so ``detach_reset`` must be ``True``; the clamp passes the gradient where
``0 <= u <= 1``. The spikes never feed back, so the surrogate gradient is the exact gradient of
the relaxation ``g(φ + u - 1)`` (tested against finite differences).

Why this formulation. A graded rate on a long constant input is impossible for any composition of
shift-equivariant passes with a pointwise threshold: away from the ends a constant input then
gives a constant response, i.e. rate 0 or 1 (the ``passes`` mode below is such a composition,
and so is any fixed number of fixed-point iterations of a reset kernel). Fixed-point parallel
training (Feng et al., arXiv 2506.12087) solves a *causal* LIF with reset by ``K`` (about 3)
parallel iterations: exact only once the iteration has converged, which on a constant input
takes about one iteration per spike (the fixed point is reached from the first token forward),
so with a small ``K`` the interior stays all or none; it also relies on causality (a triangular
system), which the bidirectional neuron lacks, and each iteration is a full ``L``-step reset
convolution. The cumulative-sum form is exact for every input (not only after convergence), is
one scan (``cumsum``: ``O(log L)`` depth on a GPU, a handful of operators whatever ``L``), has a
closed-form backward, and equals a step-by-step IF loop, which the tests compare against.
Dithered (position-dependent) thresholds would also give graded rates in parallel, but make
identical tokens fire differently by position; rejected.

``reset_mode="passes"`` (the earlier reconstruction; configs saved before ``reset_mode`` existed
load with it)::

    S⁰     = m ⊙ Θ(H - θ)                                        (first pass: a reset-free PSN)
    for p = 1 .. P:                                              (parallel reset passes)
        C_f[t] = Σ_{i=1}^{k} λ^i · Sᵖ⁻¹[t-i],   C_b[t] = Σ_{i=1}^{k} λ^i · Sᵖ⁻¹[t+i]
        C      = a ⊙ C_f + (1 - a) ⊙ C_b
        Sᵖ     = m ⊙ Θ(H - β ⊙ C - θ)
    output Sᴾ

with ``λ = 1 - 1/τ`` fixed. Why the reset term: a LIF with soft reset unrolls to
``V[t] = Σ_i (1/τ)λ^i x[t-i] - θ Σ_{i>=1} λ^i S[t-i]``. The reset sum depends on the output
spikes, which forces a sequential loop; here it is approximated by the decayed count of the spikes
of the previous pass, which is again a parallel convolution. In the anti-causal direction "earlier"
means later tokens, hence ``C_b`` counts spikes at ``t+1 .. t+k``; both counts are fused with the
same ``a`` as the potentials. With the default ``β = θ`` the neuron saturates (fires at every step
of a long constant input ``c``) at the same input as a soft-reset LIF, ``c ≈ θτ``; for
``θ < c < θτ``, where a reset-free neuron fires at every step, it stays silent instead.
Limitation: every pass is shift-equivariant, so on a long constant input the response away from
the two ends is constant, i.e. the rate is 0 or 1 there, never graded as a LIF's (hence the
``graded`` mode). ``P = 1`` is the default; ``P = 0`` is a plain bidirectional PSN (no reset);
more passes are a Jacobi-style refinement that need not converge: on constant input they
alternate between silence and firing, so an even ``P`` brings the uninterrupted firing back
there. Prefer ``P = 1`` (or an odd ``P``).

Padding: padded inputs are zeroed before the convolutions, so the anti-causal potential of each
sample starts at its last real token and a real token's output does not depend on how far the
batch is padded; padded positions never spike (the mask multiplies every pass, which also keeps
padded first-pass spikes out of the reset counts; in the graded mode a padded token adds nothing
to the integrator, so the phase passes through it unchanged). Masks need not be right-padded.

Implementation of the parallel path (the dynamics above are unchanged by it):

- ``H = a ⊙ H_f + (1 - a) ⊙ H_b`` is linear in ``x̃``, so both directions and the fusion are ONE
  two-sided correlation per channel with ``2k - 1`` taps (:func:`merged_charge_kernel`, built
  from ``w_f, w_b, a`` by differentiable ops, so the gradients reach the parameters); the fused
  reset count ``C`` likewise is one with ``2k + 1`` taps, the centre one 0
  (:func:`merged_reset_kernel`).
- A correlation is a depthwise convolution of the ``[B, L, D]`` tensor seen as ``[B, D, 1, L]``
  (:func:`_correlate`): a channels-last view, so no permute or padding copy, and on CPU oneDNN
  runs all taps in one pass. (Measured on CPU against a ``[B, D, L]`` ``conv1d`` with permutes
  and against a shift-and-multiply-accumulate over slices: about 10x faster than either.)
- With a spiking :class:`~spikeformers.neurons.surrogate.Surrogate` the graded mode runs in one
  autograd Function that saves only ``x̃`` (and the mask) and recomputes ``H, u, φ`` in backward
  (the integrator in at least float32: a bf16 cumulative sum would lose the phase); its backward
  is closed-form (``dL/du[t] = g_u[t] + [0 <= u[t] <= 1] Σ_{t'>t} g_u[t']``, one more scan).
- With a spiking :class:`~spikeformers.neurons.surrogate.Surrogate` the passes run inside one
  autograd Function that saves only ``x̃`` (and the mask) for backward and recomputes ``H``, the
  spikes of every pass and the reset counts there, bit for bit (the same ops on the same
  inputs), overwriting intermediates in place once they are used. Its backward is the gradient
  of the autograd graph of the same dynamics (surrogate derivative for ``Θ``);
  :func:`bpsn_sequential_reference` checks both. The kernel gradient (``2k - 1`` lagged dot
  products per channel) is a batched matmul (:func:`_kernel_grad`). The Function builds the
  merged kernels itself (:func:`_kernels`) and maps their gradients back to ``w_f, w_b, a`` by
  hand, and backward replays the forward's autocast state. A layer's forward + backward is
  75 operators in the passes mode (``P = 1``) and 77 in the graded mode, whatever ``L`` (a
  serial LIF needs about ``6L``; counted by ``benchmarks/bpsn_vs_lif.py``'s ``count_ops``): on a
  GPU, that many kernel launches. Other spike modules take a plain autograd graph of the same
  operations.

Determinism: on CPU every operation is deterministic (oneDNN convolutions, elementwise ops,
fixed-order reductions, ``bmm``). On CUDA the recomputation in backward relies on cuDNN picking
the same forward algorithm for the same shapes, which holds with ``torch.backends.cudnn.benchmark``
off (the default) or under ``torch.use_deterministic_algorithms(True)``. Note that cuDNN runs
float32 convolutions in TF32 on Ampere and newer GPUs unless ``torch.backends.cudnn.allow_tf32``
is off.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from spikeformers.neurons.base import SpikingModule
from spikeformers.neurons.surrogate import ATan, Sigmoid, Surrogate

__all__ = [
    "BPSN",
    "RESET_MODES",
    "bpsn_graded",
    "bpsn_graded_sequential_reference",
    "bpsn_parallel",
    "bpsn_sequential_reference",
    "lif_kernel",
    "resolve_reset_mode",
]


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
    x: torch.Tensor,
    mask: torch.Tensor | None,
    taps: torch.Tensor,
    reset_taps: torch.Tensor | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Check shapes; return the mask ``[B, L]`` in ``x``'s dtype (``None`` if not given) and the
    reset taps ``[D, k_r]`` in ``x``'s dtype and device (``None`` if not given)."""
    if x.dim() != 3:
        raise ValueError(f"x must be [B, L, D], got shape {tuple(x.shape)}")
    B, L, D = x.shape
    if taps.shape[0] != D:
        raise ValueError(f"kernels have {taps.shape[0]} channels but x has D={D}")
    m = None
    if mask is not None:
        if tuple(mask.shape) != (B, L):
            raise ValueError(f"mask must be [B, L] = {(B, L)}, got {tuple(mask.shape)}")
        m = mask.to(dtype=x.dtype)
    if reset_taps is None:
        return m, None
    reset_taps = reset_taps.to(dtype=x.dtype, device=x.device)
    if reset_taps.dim() == 1:
        reset_taps = reset_taps.expand(D, -1)
    return m, reset_taps


# -- the parallel path ------------------------------------------------------------------------
#
# Both directions and the fusion are linear in the input, so they are merged into ONE two-sided
# kernel per channel (likewise the reset count). A kernel is applied along the token axis as a
# depthwise convolution of the [B, L, D] tensor seen as [B, D, 1, L] (a channels-last view, no
# copy). The spiking passes run in a custom autograd Function that saves only the masked input
# and recomputes everything else in backward.


def merged_charge_kernel(
    weight_fwd: torch.Tensor, weight_bwd: torch.Tensor, fusion: torch.Tensor
) -> torch.Tensor:
    """The two-sided kernel ``K`` with ``H[t] = Σ_j K[:, j + k - 1] · x̃[t + j]``.

    ``H = a ⊙ H_f + (1 - a) ⊙ H_b`` is linear in ``x̃``, so it is one correlation with
    ``K[j] = a · w_f[-j]`` for ``j < 0``, ``a · w_f[0] + (1 - a) · w_b[0]`` for ``j = 0`` and
    ``(1 - a) · w_b[j]`` for ``j > 0``. Differentiable in all three arguments.

    Args:
        weight_fwd: ``w_f``, ``[D, k]``.
        weight_bwd: ``w_b``, ``[D, k]``.
        fusion: ``a``, ``[D]``.

    Returns:
        ``[D, 2k - 1]``, columns for offsets ``j = -(k-1) .. k-1``.
    """
    a = fusion.unsqueeze(1)  # (D, 1)
    kf, kb = a * weight_fwd, (1.0 - a) * weight_bwd  # (D, k) each
    return torch.cat(
        [
            kf[:, 1:].flip(1),  # j = -(k-1) .. -1
            kf[:, :1] + kb[:, :1],  # j = 0
            kb[:, 1:],  # j = 1 .. k-1
        ],
        dim=1,
    )


def merged_reset_kernel(reset_taps: torch.Tensor, fusion: torch.Tensor) -> torch.Tensor:
    """The two-sided kernel ``R`` with ``C = a ⊙ C_f + (1 - a) ⊙ C_b = Σ_j R_j · S[t + j]``.

    Args:
        reset_taps: ``[D, k_r]``; tap ``i`` weighs the spike ``i + 1`` steps away.
        fusion: ``a``, ``[D]``.

    Returns:
        ``[D, 2 k_r + 1]``, columns for offsets ``j = -k_r .. k_r`` (the ``j = 0`` column is 0:
        a neuron's own spike is not in its count).
    """
    a = fusion.unsqueeze(1)  # (D, 1)
    zero = reset_taps.new_zeros(reset_taps.shape[0], 1)
    return torch.cat([(a * reset_taps).flip(1), zero, (1.0 - a) * reset_taps], dim=1)


def _correlate(seq: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``out[:, t] = Σ_m kernel[:, m] · seq[:, t + m - p]`` along the token axis, zero outside.

    A depthwise convolution (``groups = D``) of ``seq`` seen as ``[B, D, 1, L]``: for a
    contiguous ``[B, L, D]`` tensor that view is channels-last, so on CPU oneDNN runs it in one
    pass with no permute or padding copy, and the output transposes back to a contiguous
    ``[B, L, D]``. Differentiable (used as is by the generic path).

    Args:
        seq: ``[B, L, D]``.
        kernel: ``[D, 2p + 1]``; column ``m`` weighs the token ``m - p`` steps ahead.

    Returns:
        ``[B, L, D]``.
    """
    D, n = kernel.shape
    out = F.conv2d(
        seq.transpose(1, 2).unsqueeze(2),  # (B, D, 1, L)
        kernel.reshape(D, 1, 1, n),
        padding=(0, n // 2),
        groups=D,
    )
    return out.squeeze(2).transpose(1, 2)  # (B, L, D)


def _kernel_grad(
    grad: torch.Tensor, seq: torch.Tensor, n: int, *, budget: int = 16 * 2**20
) -> torch.Tensor:
    """Kernel gradient of :func:`_correlate`: ``g[:, m] = Σ_{b,t} grad[b,t] · seq[b, t + m - p]``.

    ``n = 2p + 1`` per-channel lagged dot products over ``B·L`` terms, done by two batched
    matmuls instead of ``n`` multiply-and-sum passes. Both tensors are laid out channel-major as
    one long zero-separated sequence per channel (each sample followed by ``p`` zeros, so no lag
    reaches into a neighbouring sample, and whole zero samples before and after the data; one
    ``pad`` each) and cut into rows of ``c >= 2p`` steps; row ``r`` of ``grad`` meets the ``2c``
    steps of ``seq`` that start ``p`` before it (two adjacent rows, both plain strided views),
    ``G[d] = Σ_r grad_rowᵀ · seq_window`` (``[D, c, 2c]``), and lag ``m`` is the sum of ``G``'s
    ``m``-th diagonal. About six operators whatever the size (on a GPU, six kernel launches);
    the channels are processed in groups only when one relaid copy would exceed ``budget``
    bytes, which bounds the transient memory of very large inputs.

    Args:
        grad: ``[B, L, D]``.
        seq: ``[B, L, D]``.
        n: Number of taps ``2p + 1``.
        budget: Largest relaid copy, in bytes, before the channels are split into groups.

    Returns:
        ``[D, n]``.
    """
    B, L, D = seq.shape
    p = n // 2
    span = L + p  # one sample and the p zeros after it
    channels = max(1, budget // ((B + 2) * span * seq.element_size()))
    if channels < D:
        return torch.cat(
            [
                _kernel_grad(grad[..., i : i + channels], seq[..., i : i + channels], n)
                for i in range(0, D, channels)
            ]
        )
    c = max(16, 2 * p)
    lead = 1 if p else 0  # zero samples before the data: the first window starts p before it
    start = lead * span  # first data step, where the rows of grad start
    rows = -(-(B * span) // c)  # rows of c steps that cover all the data
    # The second window half of the last row reaches c steps past the rows.
    trail = max(0, -(-(start - p + (rows + 1) * c - (lead + B) * span) // span))

    def lay_out(t: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (D, (lead + B + trail) * span)
        return F.pad(t.permute(2, 0, 1), (0, p, lead, trail)).view(D, -1)

    g, s = lay_out(grad), lay_out(seq)
    g_rows = g[:, start : start + rows * c].view(D, rows, c).transpose(1, 2)  # (D, c, rows)
    w0 = start - p
    first = s[:, w0 : w0 + rows * c].view(D, rows, c)  # window steps 0 .. c-1
    second = s[:, w0 + c : w0 + c + rows * c].view(D, rows, c)  # steps c .. 2c-1
    G = torch.cat([torch.bmm(g_rows, first), torch.bmm(g_rows, second)], dim=2)  # (D, c, 2c)
    # Lag m of row step i is window step i + m: the diagonals G[d, i, i + m], summed over i.
    return torch.as_strided(G, (D, c, n), (G.stride(0), 2 * c + 1, 1)).sum(1)


def _surrogate_grad_(u: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
    """The surrogate derivative ``g'(u)``, computed in ``u``'s storage (``u`` is consumed).

    The built-in :class:`ATan` and :class:`Sigmoid` formulas are evaluated with in-place ops (no
    temporaries); any other surrogate goes through its own :meth:`Surrogate.grad`.
    """
    grad_fn = type(surrogate)._grad.__func__
    alpha = surrogate.alpha
    if grad_fn is ATan._grad.__func__:  # alpha / (2 (1 + (pi/2 alpha u)^2))
        return u.mul_(math.pi / 2.0 * alpha).square_().add_(1.0).reciprocal_().mul_(alpha / 2.0)
    if grad_fn is Sigmoid._grad.__func__:  # alpha s (1 - s), s = sigmoid(alpha u)
        s = u.mul_(alpha).sigmoid_()
        return s.addcmul_(s, s, value=-1.0).mul_(alpha)
    return surrogate.grad(u)


def _fire(
    v: torch.Tensor, threshold: torch.Tensor, mask: torch.Tensor | None, *, inplace: bool = False
) -> torch.Tensor:
    """Spikes ``m ⊙ Θ(v - θ)``, as ``v >= θ`` (same sign as the IEEE difference ``v - θ``).

    Written as 0./1. directly in ``v``'s dtype, into ``v`` itself if ``inplace``.
    """
    if inplace:
        s = v.ge_(threshold)
    else:
        s = torch.empty_like(v)
        torch.ge(v, threshold, out=s)
    return s if mask is None else s.mul_(mask)


def _passes(
    xm: torch.Tensor,
    mask: torch.Tensor | None,
    kernel: torch.Tensor,
    threshold: torch.Tensor,
    reset_strength: torch.Tensor | None,
    reset_kernel: torch.Tensor | None,
    reset_passes: int,
    keep: str,
) -> tuple[torch.Tensor | None, list[tuple]]:
    """Run the BPSN passes without autograd (shared by forward and the backward recomputation).

    Args:
        xm: Masked input ``x̃``, ``[B, L, D]``.
        mask: ``[B, L, 1]`` in ``xm``'s dtype, or ``None``.
        kernel: Merged charge kernel ``[D, 2k - 1]``.
        threshold: ``θ``, ``[D]``.
        reset_strength: ``β``, ``[D]`` (unused if ``reset_passes == 0``).
        reset_kernel: Merged reset kernel ``[D, 2 k_r + 1]`` (unused if ``reset_passes == 0``).
        reset_passes: ``P``.
        keep: ``"none"`` (forward), ``"last"`` or ``"all"``: which passes' ``(v, C, s_prev)`` to
            return for backward (``v`` the potential before the threshold, ``C`` the reset count of
            the spikes ``s_prev``); pass 0 is ``(H, None, None)``.

    Returns:
        ``(spikes, kept)``: the output spikes ``[B, L, D]`` (``None`` unless ``keep == "none"``:
        backward does not need them) and the kept passes.
    """
    # Tensors are released (or overwritten in place) as soon as they are no longer needed, to
    # keep the peak low; in-place and out-of-place forms of an op compute the same bits.
    h = _correlate(xm, kernel)
    if reset_passes == 0:
        if keep != "none":
            return None, [(h, None, None)]
        return _fire(h, threshold, mask, inplace=True), []
    kept: list[tuple] = [(h, None, None)] if keep == "all" else []
    s = _fire(h, threshold, mask)
    for p in range(reset_passes):
        assert reset_kernel is not None and reset_strength is not None
        last = p == reset_passes - 1
        c = _correlate(s, reset_kernel)
        if keep == "none":
            del s
        # v = h - β c; the last pass may overwrite h, which nothing needs afterwards.
        if last and keep != "all":
            v = h.addcmul_(c, reset_strength, value=-1.0)
            del h
        else:
            v = torch.addcmul(h, c, reset_strength, value=-1.0)
        if keep == "none":
            del c
            s = _fire(v, threshold, mask, inplace=True)
            continue
        kept = [*kept, (v, c, s)] if keep == "all" else [(v, c, s)]
        if last:
            return None, kept
        s = _fire(v, threshold, mask, inplace=False)
    return s, kept


def _kernels(
    weight_fwd: torch.Tensor,
    weight_bwd: torch.Tensor,
    fusion: torch.Tensor,
    reset_taps: torch.Tensor | None,
    *,
    fusion_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The fused path's kernels: :func:`merged_charge_kernel`, :func:`merged_reset_kernel`
    (if ``reset_taps``) and, if ``fusion_grad``, the kernel of ``∂C/∂a = C_f - C_b``
    (``[taps reversed, 0, -taps]``). Called without autograd; their gradients are mapped back
    by hand in :class:`_BPSNFunction`'s backward.

    Returns:
        ``(K [D, 2k-1], R [D, 2k_r+1] or None, R_a [D, 2k_r+1] or None)``; no reset kernels
        without ``reset_taps``.
    """
    kernel = merged_charge_kernel(weight_fwd, weight_bwd, fusion)
    if reset_taps is None:
        return kernel, None, None
    reset = merged_reset_kernel(reset_taps, fusion)
    if not fusion_grad:
        return kernel, reset, None
    zero = reset_taps.new_zeros(reset_taps.shape[0], 1)
    return kernel, reset, torch.cat([reset_taps.flip(1), zero, -reset_taps], dim=1)


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype | None]:
    """Whether autocast is on for ``device_type`` and its lower-precision dtype."""
    try:
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # PyTorch < 2.4: per-device functions
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()


def _replay_autocast(backward, ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """Run ``backward(ctx, grad_out)`` under the autocast state the forward saw
    (``ctx.autocast``, ``ctx.device_type``), so recomputed spikes equal the forward's."""
    enabled, dtype = ctx.autocast
    if not enabled:
        return backward(ctx, grad_out)
    with torch.autocast(ctx.device_type, dtype=dtype):
        return backward(ctx, grad_out)


def _charge_backward(
    dh: torch.Tensor,
    xm: torch.Tensor,
    mask: torch.Tensor | None,
    kernel: torch.Tensor,
    w_f: torch.Tensor,
    w_b: torch.Tensor,
    fusion: torch.Tensor,
    need: tuple[bool, ...],
) -> tuple[torch.Tensor | None, ...]:
    """Gradients through the charge ``H = correlate(x̃, K)``, ``K = merged_charge_kernel``.

    Args:
        dh: ``dL/dH``, ``[B, L, D]``.
        xm: Masked input ``x̃``, ``[B, L, D]``.
        mask: ``[B, L, 1]`` or ``None``.
        kernel: ``K``, ``[D, 2k - 1]``.
        w_f, w_b: ``[D, k]``; fusion: ``a``, ``[D]``.
        need: ``needs_input_grad`` of the Function, ordered ``x, mask, w_f, w_b, a, ...``.

    Returns:
        ``(dx, d_w_f, d_w_b, d_a)``, each ``None`` where not needed.
    """
    dx = d_w_f = d_w_b = d_a = None
    if any(need[2:5]):  # before dx: its transient layouts then coexist with one tensor less
        # K[-i] = a w_f[i] (i >= 1), K[0] = a w_f[0] + (1 - a) w_b[0], K[j] = (1 - a) w_b[j]
        k = w_f.shape[1]
        d_kernel = _kernel_grad(dh, xm, kernel.shape[1])  # (D, 2k - 1)
        g_f, g_b = d_kernel[:, :k].flip(1), d_kernel[:, k - 1 :]  # (D, k): taps of w_f, w_b
        a = fusion.unsqueeze(1)
        d_w_f = g_f * a if need[2] else None
        d_w_b = g_b * (1.0 - a) if need[3] else None
        if need[4]:
            d_a = (g_f * w_f).sub_(g_b * w_b).sum(1)
    if need[0]:
        dx = _correlate(dh, kernel.flip(1))
        if mask is not None:
            dx.mul_(mask)
    return dx, d_w_f, d_w_b, d_a


class _BPSNFunction(torch.autograd.Function):
    """Fused BPSN forward/backward that saves only ``x̃ = m ⊙ x`` (and the mask) for backward.

    Everything else (the charge ``H``, the spikes of every pass, the reset counts) is recomputed
    from ``x̃`` in backward bit for bit (the same ops on the same inputs), so a BPSN layer keeps
    one ``[B, L, D]`` tensor alive between forward and backward, like the input a ``Linear`` keeps
    (plus the ``[D, 2k+1]`` kernels). The gradients are those of the autograd graph of the same
    dynamics (``Θ`` backward is the surrogate derivative; ``detach_reset`` cuts the path through
    the counted spikes). The merged kernels are built here from ``w_f, w_b, a`` and the reset
    taps (:func:`_kernels`), and their gradients are mapped back to those by hand
    (``∂C/∂a = C_f - C_b`` is one more convolution), which keeps the operator count, and so the
    number of GPU kernel launches, independent of ``L`` and small.

    Under autocast the forward's convolutions run in the lower precision; backward runs under
    the same autocast state, so its recomputation gives the forward's spikes exactly (a plain
    backward outside autocast would recompute them in float32, where a few flip).
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
        reset_strength: torch.Tensor | None,
        reset_taps: torch.Tensor | None,
        reset_passes: int,
        detach_reset: bool,
        surrogate: Surrogate,
    ) -> torch.Tensor:
        xm = x if mask is None else x * mask
        kernel, reset_kernel, diff = _kernels(
            weight_fwd,
            weight_bwd,
            fusion,
            reset_taps if reset_passes else None,
            fusion_grad=ctx.needs_input_grad[4],
        )
        s, _ = _passes(
            xm, mask, kernel, threshold, reset_strength, reset_kernel, reset_passes, "none"
        )
        assert s is not None
        ctx.save_for_backward(
            xm, mask, kernel, reset_kernel, diff, weight_fwd, weight_bwd, fusion, threshold,
            reset_strength, reset_taps,
        )  # fmt: skip
        ctx.reset_passes = reset_passes
        ctx.detach_reset = detach_reset
        ctx.surrogate = surrogate
        ctx.device_type = x.device.type
        ctx.autocast = _autocast_state(x.device.type)
        return s

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: D102
        return _replay_autocast(_BPSNFunction._backward, ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (xm, mask, kernel, reset_kernel, diff, w_f, w_b, fusion, threshold, beta, reset_taps) = (
            ctx.saved_tensors
        )
        P, detach = ctx.reset_passes, ctx.detach_reset
        # x, mask, w_f, w_b, fusion, threshold, beta, reset_taps, ...
        need = ctx.needs_input_grad
        _, kept = _passes(
            xm, mask, kernel, threshold, beta, reset_kernel, P, "last" if detach else "all"
        )
        g = grad_out
        dh = d_theta = d_beta = d_fusion = d_taps = None
        while kept:  # last pass first; each pass's tensors are dropped once used (peak memory)
            v, c, s_prev = kept.pop()
            gu = _surrogate_grad_(v.sub_(threshold), ctx.surrogate).mul_(g)  # dL/du, u = v - θ
            if mask is not None:
                gu.mul_(mask)
            dh = gu if dh is None else dh.add_(gu)
            d_theta = gu.sum((0, 1)) if d_theta is None else d_theta.add_(gu.sum((0, 1)))
            if c is None:  # pass 0: no reset count
                del v
                break
            # u = h - β C - θ with C = a C_f + (1 - a) C_b: dL/dC = -β gu.
            if need[6]:
                db = c.mul_(gu).sum((0, 1)).neg_()
                d_beta = db if d_beta is None else d_beta.add_(db)
            del c
            if need[4]:  # ∂C/∂a = C_f - C_b: the reset convolution with [taps reversed, 0, -taps]
                da = _correlate(s_prev, diff).mul_(gu).sum((0, 1)).mul_(beta).neg_()
                d_fusion = da if d_fusion is None else d_fusion.add_(da)
            if need[7] or not detach:
                dc = gu * beta.neg()
                if need[7]:  # learnable reset taps (BPSN's are fixed)
                    gk = _kernel_grad(dc, s_prev, reset_kernel.shape[1])  # (D, 2 k_r + 1)
                    k_r = reset_taps.shape[1]
                    dt = (gk[:, :k_r].flip(1) * fusion[:, None]).add_(
                        gk[:, k_r + 1 :] * (1.0 - fusion[:, None])
                    )
                    d_taps = dt if d_taps is None else d_taps.add_(dt)
                if not detach:  # dL/dS of the counted pass: the transposed reset correlation
                    g = _correlate(dc, reset_kernel.flip(1))
                del dc
            del v, s_prev
            if detach:  # earlier passes only feed detached spikes into this one
                break
        del kept
        dx, d_w_f, d_w_b, da = _charge_backward(dh, xm, mask, kernel, w_f, w_b, fusion, need)
        if da is not None:
            d_fusion = da if d_fusion is None else d_fusion.add_(da)
        d_theta = d_theta.neg_() if need[5] else None
        return (
            dx, None, d_w_f, d_w_b, d_fusion, d_theta, d_beta, d_taps, None, None, None,
        )  # fmt: skip


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

    The two directions and the fusion run as one two-sided depthwise convolution per channel
    (:func:`merged_charge_kernel`; the reset count likewise, :func:`merged_reset_kernel`) on the
    ``[B, L, D]`` layout. With a spiking :class:`~spikeformers.neurons.surrogate.Surrogate` the
    passes run in a fused autograd Function that saves only the masked input for backward and
    recomputes the rest; any other spike module (or ``spiking=False``) takes a plain autograd graph
    of the same operations.

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
    if x.shape[1] == 0:  # no time steps, no spikes (the convolutions need L >= 1)
        return torch.zeros_like(x)
    m = None if m is None else m.unsqueeze(-1)  # (B, L, 1)
    w_f, w_b, a = weight_fwd.to(x.dtype), weight_bwd.to(x.dtype), fusion.to(x.dtype)
    theta = threshold.to(x.dtype)
    beta = taps = None
    if reset_passes:
        beta, taps = reset_strength.to(x.dtype), reset_taps
    if isinstance(surrogate, Surrogate) and surrogate.spiking:
        if not torch.is_grad_enabled():  # inference: the Function's forward ops, no ctx
            kernel, reset_kernel, _ = _kernels(w_f, w_b, a, taps, fusion_grad=False)
            xm = x if m is None else x * m
            s, _ = _passes(xm, m, kernel, theta, beta, reset_kernel, reset_passes, "none")
            assert s is not None
            return s
        return _BPSNFunction.apply(
            x, m, w_f, w_b, a, theta, beta, taps, reset_passes, detach_reset, surrogate
        )

    # Generic spike module: the same operations under plain autograd (saves more for backward).
    kernel = merged_charge_kernel(w_f, w_b, a)  # (D, 2k-1)
    xm = x if m is None else x * m
    h = _correlate(xm, kernel)  # (B, L, D)
    s = surrogate(h - theta)
    s = s if m is None else s * m
    if reset_passes:
        assert a is not None and beta is not None and taps is not None
        reset_kernel = merged_reset_kernel(taps, a)
        for _ in range(reset_passes):  # a loop over passes, not over time
            prev = s.detach() if detach_reset else s
            c = _correlate(prev, reset_kernel)
            s = surrogate(torch.addcmul(h, c, beta, value=-1.0) - theta)
            s = s if m is None else s * m
    return s


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


class _GradedFunction(torch.autograd.Function):
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
        ctx.surrogate = surrogate
        ctx.device_type = x.device.type
        ctx.autocast = _autocast_state(x.device.type)
        return s

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: D102
        return _replay_autocast(_GradedFunction._backward, ctx, grad_out)

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


RESET_MODES = ("graded", "passes")


def resolve_reset_mode(reset_mode: str | None, reset_passes: int | None) -> tuple[str, int | None]:
    """The one rule for the BPSN's ``reset_mode`` / ``reset_passes`` pair (module and configs).

    ``reset_mode=None`` means ``"passes"`` when ``reset_passes`` is given (every SNN-BERT
    ``config.json`` written before ``reset_mode`` existed lists ``reset_passes``, so old models
    load with their old neuron) and ``"graded"`` otherwise. ``"passes"`` with
    ``reset_passes=None`` means 1 pass. ``"graded"`` has no passes: a ``reset_passes`` there is an
    error, not ignored.

    Returns:
        ``(reset_mode, reset_passes)``, the latter ``None`` for ``"graded"``.
    """
    if reset_mode is None:
        reset_mode = "graded" if reset_passes is None else "passes"
    if reset_mode not in RESET_MODES:
        raise ValueError(f"reset_mode must be one of {RESET_MODES}, got {reset_mode!r}")
    if reset_mode == "graded":
        if reset_passes is not None:
            raise ValueError(
                f"reset_passes={reset_passes} applies only to reset_mode='passes' "
                "(reset_mode='graded' has no reset passes)"
            )
        return reset_mode, None
    reset_passes = 1 if reset_passes is None else reset_passes
    if reset_passes < 0:
        raise ValueError(f"reset_passes must be >= 0, got {reset_passes}")
    return reset_mode, reset_passes


class BPSN(SpikingModule):
    """Bidirectional Parallel Spiking Neuron: stateless, parallel over the token/time axis.

    The dynamics (a DESIGN reconstruction, not the paper's equations) are in the module docstring:
    two ``k``-tap depthwise kernels (causal and anti-causal) and a per-channel sigmoid fusion give
    the charge ``H``; then, by ``reset_mode``:

    - ``"graded"`` (default): a soft-reset integrate-and-fire spike generator on the excess
      ``clamp((H - θ)/β, 0, 1)``, computed as the floor of a cumulative sum; the rate on a
      constant charge ``c`` is ``clamp((c - θ)/β, 0, 1)``, graded.
    - ``"passes"`` (the earlier reconstruction): ``Θ(H - θ)`` followed by ``reset_passes``
      parallel reset passes that subtract ``β`` times the decayed count of the previous pass's
      spikes; all-or-none on a long constant input.

    Args:
        num_channels: Width ``D`` (one neuron per channel).
        kernel_size: Taps ``k`` per direction (also the reach of the ``passes`` reset count).
        tau: LIF time constant used to initialise the kernels (and, for ``passes``, the fixed
            reset decay ``λ = 1 - 1/τ``); ``>= 1``.
        v_threshold: Initial threshold ``θ`` of every channel.
        fusion_init: Initial causal weight ``a`` in ``(0, 1)``; 0.5 weighs both directions equally.
        reset_strength: Initial ``β > 0``; ``None`` means ``θ`` (``graded``: the rate ramps from
            ``θ`` to ``2θ``, the range of a soft-reset LIF with ``τ = 2``; ``passes``: the
            soft-reset analogue).
        reset_mode: ``"graded"``, ``"passes"`` or ``None`` (see :func:`resolve_reset_mode`:
            ``"passes"`` if ``reset_passes`` is given, else ``"graded"``).
        reset_passes: ``passes`` only: ``P >= 0`` (``None``: 1); 0 disables the reset (a plain
            bidirectional PSN). Keep it odd: even values fire uninterruptedly again on constant
            input (see the module docstring).
        detach_reset: Stop the gradient through the reset. ``graded`` requires ``True`` (its
            reset is the floor of the spike count, whose derivative is 0).
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
        reset_mode: str | None = None,
        reset_passes: int | None = None,
        detach_reset: bool = True,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__()
        reset_mode, reset_passes = resolve_reset_mode(reset_mode, reset_passes)
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
        uses_beta = reset_mode == "graded" or bool(reset_passes)
        if uses_beta and not reset_strength > 0.0:
            raise ValueError(f"reset_strength must be > 0, got {reset_strength}")
        if reset_mode == "graded" and not detach_reset:
            raise ValueError(
                "reset_mode='graded' needs detach_reset=True: its reset is the floor of the "
                "spike count, whose derivative is 0"
            )

        self.num_channels = num_channels
        self.kernel_size = kernel_size
        self.tau = float(tau)
        self.reset_mode = reset_mode
        self.reset_passes = reset_passes
        self.detach_reset = detach_reset
        self.surrogate = ATan(alpha=2.0) if surrogate is None else surrogate

        taps = lif_kernel(tau, kernel_size).to(torch.get_default_dtype())
        self.weight_fwd = nn.Parameter(taps.repeat(num_channels, 1))  # (D, k)
        self.weight_bwd = nn.Parameter(taps.repeat(num_channels, 1))  # (D, k)
        logit = math.log(fusion_init / (1.0 - fusion_init))
        self.fusion_logit = nn.Parameter(torch.full((num_channels,), logit))
        self.threshold = nn.Parameter(torch.full((num_channels,), float(v_threshold)))
        # Inverse softplus; without reset passes (passes, P = 0) the value is unused, so any
        # positive one will do. The same parameters in both modes: the state dicts match.
        beta = float(reset_strength) if reset_strength > 0 else 1.0
        beta_raw = beta + math.log(-math.expm1(-beta))
        self.reset_raw = nn.Parameter(torch.full((num_channels,), beta_raw))
        # Fixed taps λ^j, j = 1 .. k (passes mode): a buffer (follows .to() and dtype casts; not
        # saved), so a forward does not rebuild them.
        taps = self.tau * lif_kernel(self.tau, kernel_size, start=1)
        self.register_buffer("_reset_taps", taps.to(torch.get_default_dtype()), persistent=False)

    @property
    def fusion(self) -> torch.Tensor:
        """Per-channel weight ``a = sigmoid(fusion_logit)`` of the causal direction, ``[D]``."""
        return torch.sigmoid(self.fusion_logit)

    @property
    def reset_strength(self) -> torch.Tensor:
        """Per-channel reset strength ``β = softplus(reset_raw) >= 0``, ``[D]``."""
        return F.softplus(self.reset_raw)

    def reset_taps(self) -> torch.Tensor:
        """Fixed reset-count taps ``λ^j`` for ``j = 1 .. k`` (``λ = 1 - 1/τ``), ``[k]``, in the
        module's floating dtype (computed in float64 and rounded once); ``passes`` mode only."""
        return self._reset_taps

    def _dynamics_kwargs(self) -> dict:
        kwargs = {
            "weight_fwd": self.weight_fwd,
            "weight_bwd": self.weight_bwd,
            "fusion": self.fusion,
            "threshold": self.threshold,
            "reset_strength": self.reset_strength,
            "surrogate": self.surrogate,
        }
        if self.reset_mode == "passes":
            kwargs.update(
                reset_taps=self.reset_taps(),
                reset_passes=self.reset_passes,
                detach_reset=self.detach_reset,
            )
        return kwargs

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Fire all ``L`` steps in parallel.

        Args:
            x: ``[B, L, D]``, token ``t`` at time step ``t``.
            mask: ``[B, L]``, 1 for real tokens and 0 for padding; ``None`` means no padding.

        Returns:
            Spikes ``[B, L, D]``; padded positions are 0.
        """
        fn = bpsn_graded if self.reset_mode == "graded" else bpsn_parallel
        return fn(x, mask, **self._dynamics_kwargs())

    def forward_sequential(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`forward` but with a Python loop over time (reference; slow)."""
        if self.reset_mode == "graded":
            return bpsn_graded_sequential_reference(x, mask, **self._dynamics_kwargs())
        return bpsn_sequential_reference(x, mask, **self._dynamics_kwargs())

    def extra_repr(self) -> str:
        passes = f", reset_passes={self.reset_passes}" if self.reset_mode == "passes" else ""
        return (
            f"{self.num_channels}, kernel_size={self.kernel_size}, tau={self.tau}, "
            f"reset_mode={self.reset_mode!r}{passes}, detach_reset={self.detach_reset}"
        )
