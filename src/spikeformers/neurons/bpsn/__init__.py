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

Layout: :mod:`.kernels` (shared machinery), :mod:`.passes` (``reset_mode="passes"``),
:mod:`.graded` (``reset_mode="graded"``), :mod:`.reference` (token-by-token references) and
:mod:`.layer` (the :class:`BPSN` module).
"""

from __future__ import annotations

from spikeformers.neurons.bpsn.graded import GRADED_START, bpsn_graded
from spikeformers.neurons.bpsn.kernels import lif_kernel, merged_charge_kernel, merged_reset_kernel
from spikeformers.neurons.bpsn.layer import BPSN, RESET_MODES, resolve_reset_mode
from spikeformers.neurons.bpsn.passes import bpsn_parallel
from spikeformers.neurons.bpsn.reference import (
    bpsn_graded_sequential_reference,
    bpsn_sequential_reference,
)

__all__ = [
    "BPSN",
    "GRADED_START",
    "RESET_MODES",
    "bpsn_graded",
    "bpsn_graded_sequential_reference",
    "bpsn_parallel",
    "bpsn_sequential_reference",
    "lif_kernel",
    "merged_charge_kernel",
    "merged_reset_kernel",
    "resolve_reset_mode",
]
