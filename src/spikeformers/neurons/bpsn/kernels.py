"""BPSN's shared machinery: kernels, the depthwise correlation, the kernel gradient, firing and
the surrogate, autocast replay and the charge's backward (used by both reset modes)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from spikeformers.neurons.surrogate import ATan, Sigmoid, Surrogate


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


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype | None]:
    """Whether autocast is on for ``device_type`` and its lower-precision dtype."""
    try:
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # PyTorch < 2.4: per-device functions
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()


class _RecomputingFunction(torch.autograd.Function):
    """Base of the fused BPSN Functions, whose backward recomputes the forward's intermediates
    from the saved masked input.

    A subclass's ``forward`` calls :meth:`remember`; its ``_backward(ctx, grad_out)`` does the
    work. :meth:`backward` runs ``_backward`` under the autocast state the forward saw, so the
    recomputed spikes equal the forward's bit for bit (a plain backward outside autocast would
    recompute them in float32, where a few flip). Not differentiable again.
    """

    @staticmethod
    def remember(ctx, x: torch.Tensor, surrogate: Surrogate, backward) -> None:
        """Keep what :meth:`backward` needs: the surrogate, the device type and autocast state
        of ``x``, and the subclass's ``_backward``."""
        ctx.surrogate = surrogate
        ctx.device_type = x.device.type
        ctx.autocast = _autocast_state(x.device.type)
        ctx.recompute_backward = backward

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: D102
        enabled, dtype = ctx.autocast
        if not enabled:
            return ctx.recompute_backward(ctx, grad_out)
        with torch.autocast(ctx.device_type, dtype=dtype):
            return ctx.recompute_backward(ctx, grad_out)


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
