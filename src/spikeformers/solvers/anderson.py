"""Anderson acceleration (type II, Walker & Ni 2011) for ``z = f(z)``.

Walker & Ni, "Anderson Acceleration for Fixed-Point Iterations", SIAM J. Numer. Anal. 49(4), 2011.
The formulation (constrained least squares with a Tikhonov term, batched per sample) follows the
DEQ tutorial code of Bai, Kolter & Koltun and locuslab/torchdeq.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from spikeformers.solvers.base import Monitor, SolverStats, check_args, flat_map

__all__ = ["anderson"]


@torch.no_grad()
def anderson(
    f: Callable[[Tensor], Tensor],
    z0: Tensor,
    *,
    max_iter: int = 50,
    tol: float = 1e-5,
    m: int = 5,
    beta: float = 1.0,
    lam: float = 1e-4,
) -> tuple[Tensor, SolverStats]:
    """Solve ``z = f(z)`` with Anderson acceleration.

    With the last ``n = min(k + 1, m)`` iterates ``x_i``, ``f_i = f(x_i)`` and residuals
    ``g_i = f_i - x_i``, each sample solves

        alpha = argmin ||sum_i alpha_i g_i||^2 + lam * s * ||alpha||^2   s.t.  sum_i alpha_i = 1,

    i.e. ``alpha = w / sum(w)`` with ``(G G^T + lam * s * I) w = 1``, and steps to

        x_{k+1} = beta * sum_i alpha_i f_i + (1 - beta) * sum_i alpha_i x_i.

    The first step (``n = 1``) is a plain (damped) fixed-point step.

    Unlike the DEQ/torchdeq code, the Tikhonov weight is scaled by ``s = trace(G G^T) / n``: an
    absolute ``lam`` would dominate once ``||g||^2 << lam`` (small residuals, or an adjoint whose
    scale follows the loss) and silently turn the method into plain averaging. The scaled form
    is invariant to rescaling ``z`` and keeps the ``n x n`` system's condition number below
    ``1 + n / lam``.

    Per-sample coefficients assume ``f`` acts on samples independently (no batch coupling such
    as train-mode BatchNorm); with coupling it still iterates but loses its guarantees.

    Args:
        f: Map from ``(B, ...)`` to the same shape. Called under ``torch.no_grad()``.
        z0: Initial guess, shape ``(B, ...)``.
        max_iter: Maximum number of evaluations of ``f``.
        tol: Stop once every sample's relative residual ``||f(z)-z|| / ||f(z)||`` is ``<= tol``.
        m: History size. Memory is ``2 * m * B * N`` elements for ``N`` features per sample.
        beta: Mixing (damping) parameter in ``(0, 1]``; 1 means undamped.
        lam: Relative Tikhonov regularisation of the least-squares problem.

    Returns:
        ``(z_star, stats)``: ``z_star`` has the shape of ``z0`` and is ``f`` of the best iterate
        per sample. Not converging within ``max_iter`` is reported by ``stats.converged``.
    """
    check_args(z0, max_iter, tol)
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    shape = z0.shape
    f_flat = flat_map(f, shape)
    monitor = Monitor(tol)
    x = z0.reshape(shape[0], -1)  # (B, N)
    batch, n_feat = x.shape
    # Store f_i and g_i = f_i - x_i; x_i = f_i - g_i is never needed on its own.
    F = x.new_zeros(batch, m, n_feat)  # (B, m, N)
    G = x.new_zeros(batch, m, n_feat)  # (B, m, N)
    for k in range(max_iter):
        fx = f_flat(x)
        if monitor.update(x, fx):
            break
        slot = k % m  # oldest entry is overwritten; the least-squares problem is order-free
        F[:, slot] = fx
        G[:, slot] = fx - x
        n = min(k + 1, m)
        Gn = G[:, :n]  # (B, n, N)
        H = Gn @ Gn.transpose(1, 2)  # (B, n, n)
        scale = H.diagonal(dim1=1, dim2=2).mean(dim=1)  # (B,)
        # All g_i = 0 means an exact fixed point, where any alpha will do.
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        H = H + (lam * scale)[:, None, None] * torch.eye(n, dtype=x.dtype, device=x.device)
        # solve_ex skips the error check, which would force a host sync every iteration.
        w = torch.linalg.solve_ex(H, H.new_ones(batch, n, 1)).result  # (B, n, 1)
        alpha = (w / w.sum(dim=1, keepdim=True)).transpose(1, 2)  # (B, 1, n)
        f_mix = (alpha @ F[:, :n]).squeeze(1)  # (B, N)
        g_mix = (alpha @ Gn).squeeze(1)  # (B, N)
        # beta * sum a_i f_i + (1 - beta) * sum a_i x_i, with x_i = f_i - g_i
        x = f_mix - (1.0 - beta) * g_mix
    return monitor.result(shape)
