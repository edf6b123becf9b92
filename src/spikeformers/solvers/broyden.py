"""Limited-memory "good" Broyden's method for ``g(z) = f(z) - z = 0``.

Broyden, "A class of methods for solving nonlinear simultaneous equations", Math. Comp. 19, 1965.
The low-rank inverse-Jacobian form without line search follows the DEQ code (Bai et al. 2019)
and locuslab/torchdeq.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from spikeformers.solvers.base import Monitor, SolverStats, check_args, flat_map

__all__ = ["broyden"]


def _matvec(U: Tensor, VT: Tensor, x: Tensor) -> Tensor:
    """``B x`` with ``B = -I + U VT``. Shapes: ``U (B, N, k)``, ``VT (B, k, N)``, ``x (B, N)``."""
    return -x + (U @ (VT @ x.unsqueeze(-1))).squeeze(-1)


def _rmatvec(U: Tensor, VT: Tensor, x: Tensor) -> Tensor:
    """``x^T B`` (as a ``(B, N)`` tensor), with ``B = -I + U VT``."""
    return -x + (x.unsqueeze(1) @ U @ VT).squeeze(1)


@torch.no_grad()
def broyden(
    f: Callable[[Tensor], Tensor],
    z0: Tensor,
    *,
    max_iter: int = 50,
    tol: float = 1e-5,
    memory: int | None = None,
) -> tuple[Tensor, SolverStats]:
    """Solve ``z = f(z)`` as the root of ``g(z) = f(z) - z`` with good Broyden updates.

    Keeps an estimate ``B_k ~ J_g^{-1}`` per sample, starting from ``B_0 = -I`` (so the first
    step is a plain fixed-point step), and steps ``z_{k+1} = z_k - B_k g_k`` (no line search).
    After each step, with ``dz = z_{k+1} - z_k`` and ``dg = g_{k+1} - g_k``, the rank-one update

        B_{k+1} = B_k + (dz - B_k dg) (dz^T B_k) / (dz^T B_k dg)

    is stored as the pair ``u = (dz - B_k dg) / (dz^T B_k dg)``, ``v^T = dz^T B_k``. A sample
    whose denominator vanishes (e.g. it already sits at its fixed point) gets no update.

    Args:
        f: Map from ``(B, ...)`` to the same shape. Called under ``torch.no_grad()``.
        z0: Initial guess, shape ``(B, ...)``.
        max_iter: Maximum number of evaluations of ``f``.
        tol: Stop once every sample's relative residual ``||f(z)-z|| / ||f(z)||`` is ``<= tol``.
        memory: Number of rank-one updates kept; when full, the estimate restarts from
            ``B = -I`` and the newest step becomes its first update. ``None`` means ``max_iter``,
            i.e. never restart. Memory is ``2 * memory * B * N`` elements for ``N`` features
            per sample, so bound it for large states; a small memory slows convergence.

    Returns:
        ``(z_star, stats)``: ``z_star`` has the shape of ``z0`` and is ``f`` of the best iterate
        per sample. Not converging within ``max_iter`` is reported by ``stats.converged``.
    """
    check_args(z0, max_iter, tol)
    memory = max_iter if memory is None else memory
    if memory < 1:
        raise ValueError(f"memory must be >= 1, got {memory}")
    shape = z0.shape
    f_flat = flat_map(f, shape)
    monitor = Monitor(tol)
    z = z0.reshape(shape[0], -1)  # (B, N)
    batch, n_feat = z.shape
    U = z.new_zeros(batch, n_feat, memory)  # (B, N, mem)
    VT = z.new_zeros(batch, memory, n_feat)  # (B, mem, N)
    tiny = torch.finfo(z.dtype).tiny

    fz = f_flat(z)
    gz = fz - z
    n_updates = 0
    while not monitor.update(z, fz) and len(monitor.trace) < max_iter:
        Uk, VTk = U[:, :, :n_updates], VT[:, :n_updates]
        z_new = z - _matvec(Uk, VTk, gz)
        fz = f_flat(z_new)
        g_new = fz - z_new
        dz, dg = z_new - z, g_new - gz
        if n_updates == memory:
            # Full: restart from B = -I and derive this update from it. Overwriting the oldest
            # pair instead (torchdeq) is unsound, since later pairs were derived from a B that
            # included it; on linear test problems that variant diverges, restarting converges.
            n_updates = 0
            Uk, VTk = U[:, :, :0], VT[:, :0]
        vT = _rmatvec(Uk, VTk, dz)  # (B, N)
        denom = (vT * dg).sum(dim=1, keepdim=True)  # (B, 1)
        ok = denom.abs() > tiny
        u = torch.where(ok, (dz - _matvec(Uk, VTk, dg)) / torch.where(ok, denom, 1.0), 0.0)
        U[:, :, n_updates] = u
        VT[:, n_updates] = torch.where(ok, vT, 0.0)
        n_updates += 1
        z, gz = z_new, g_new
    return monitor.result(shape)
