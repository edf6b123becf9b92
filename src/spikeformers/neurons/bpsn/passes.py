"""``reset_mode="passes"``: the all-or-none BPSN (reset counted in a fixed number of passes), in
parallel over tokens, with a custom autograd Function."""

from __future__ import annotations

import torch
from torch import nn

from spikeformers.neurons.bpsn.kernels import (
    _charge_backward,
    _correlate,
    _fire,
    _kernel_grad,
    _prepare,
    _RecomputingFunction,
    _surrogate_grad_,
    merged_charge_kernel,
    merged_reset_kernel,
)
from spikeformers.neurons.surrogate import Surrogate

# -- the parallel path ------------------------------------------------------------------------
#
# Both directions and the fusion are linear in the input, so they are merged into ONE two-sided
# kernel per channel (likewise the reset count). A kernel is applied along the token axis as a
# depthwise convolution of the [B, L, D] tensor seen as [B, D, 1, L] (a channels-last view, no
# copy). The spiking passes run in a custom autograd Function that saves only the masked input
# and recomputes everything else in backward.


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


class _BPSNFunction(_RecomputingFunction):
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
        _RecomputingFunction.remember(ctx, x, surrogate, _BPSNFunction._backward)
        return s

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
