"""Plain fixed-point (Picard) iteration ``z_{k+1} = f(z_k)``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from spikeformers.solvers.base import Monitor, SolverStats, check_args, flat_map

__all__ = ["fixed_point_iteration"]


@torch.no_grad()
def fixed_point_iteration(
    f: Callable[[Tensor], Tensor],
    z0: Tensor,
    *,
    max_iter: int = 50,
    tol: float = 1e-5,
) -> tuple[Tensor, SolverStats]:
    """Solve ``z = f(z)`` by iterating ``z <- f(z)``.

    Converges linearly at the rate of the contraction factor of ``f`` (the spectral radius of
    ``J_f`` near the fixed point), so it is slow when that factor is close to 1; see
    :func:`~spikeformers.solvers.anderson` and :func:`~spikeformers.solvers.broyden`.

    Args:
        f: Map from ``(B, ...)`` to the same shape. Called under ``torch.no_grad()``.
        z0: Initial guess, shape ``(B, ...)``.
        max_iter: Maximum number of evaluations of ``f``.
        tol: Stop once every sample's relative residual ``||f(z)-z|| / ||f(z)||`` is ``<= tol``.

    Returns:
        ``(z_star, stats)``: ``z_star`` has the shape of ``z0`` and is ``f`` of the best iterate.
        Not converging within ``max_iter`` is reported by ``stats.converged``, never raised.
    """
    check_args(z0, max_iter, tol)
    shape = z0.shape
    f_flat = flat_map(f, shape)
    monitor = Monitor(tol)
    z = z0.reshape(shape[0], -1)  # (B, N)
    for _ in range(max_iter):
        fz = f_flat(z)
        if monitor.update(z, fz):
            break
        z = fz
    return monitor.result(shape)
