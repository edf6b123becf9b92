"""Shared pieces of the fixed-point solvers: the stats record and the convergence monitor.

Every solver finds ``z`` with ``z = f(z)`` for a batched ``z`` of shape ``(B, ...)``. Internally
the state is flattened per sample to ``(B, N)``; convergence is the relative residual

    r_b = ||f(z_b) - z_b|| / (||f(z_b)|| + eps)

taken as the max over the batch, so the batch counts as converged only when every sample is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["EPS", "SolverFn", "SolverStats"]

EPS = 1e-9
"""Guards the relative residual against ``f(z) = 0`` (e.g. a zero adjoint gradient)."""


@dataclass(frozen=True)
class SolverStats:
    """What a solve did.

    Attributes:
        iterations: Number of evaluations of ``f`` (the unit of cost shared by every solver).
        residual: Max over the batch of each sample's best relative residual, i.e. the residual
            of the returned solution.
        converged: Whether ``residual <= tol`` was reached within ``max_iter`` evaluations.
        residual_trace: Max-over-batch relative residual of each evaluated iterate, in order
            (``len == iterations``). For non-monotone solvers its last entry can exceed
            ``residual``, because the returned solution is the best iterate per sample.
    """

    iterations: int
    residual: float
    converged: bool
    residual_trace: tuple[float, ...]


SolverFn = Callable[..., tuple[Tensor, SolverStats]]
"""``solve(f, z0, *, max_iter, tol, **solver_kwargs) -> (z_star, stats)``."""


def check_args(z0: Tensor, max_iter: int, tol: float) -> None:
    """Validate the arguments every solver shares."""
    if z0.ndim < 1:
        raise ValueError("z0 must be batched with shape (B, ...), got a 0-d tensor")
    if not z0.is_floating_point():
        raise ValueError(f"z0 must be a floating-point tensor, got {z0.dtype}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")


def flat_map(f: Callable[[Tensor], Tensor], shape: torch.Size) -> Callable[[Tensor], Tensor]:
    """Wrap ``f`` on ``(B, ...)`` tensors as a map on per-sample flat ``(B, N)`` tensors."""
    batch = shape[0]

    def f_flat(x: Tensor) -> Tensor:
        fx = f(x.reshape(shape))
        if fx.shape != shape:
            raise ValueError(f"f must preserve the shape {tuple(shape)}, got {tuple(fx.shape)}")
        return fx.reshape(batch, -1)

    return f_flat


class Monitor:
    """Tracks residuals and keeps, per sample, the lowest-residual ``f(z)`` seen so far.

    Returning ``f(z)`` rather than ``z`` is one free fixed-point step (for a contraction it is
    never farther from the fixed point) and costs no extra evaluation.
    """

    def __init__(self, tol: float) -> None:
        self.tol = tol
        self.trace: list[float] = []
        self.best_fz: Tensor | None = None
        self.best_res: Tensor | None = None
        self.stop = False

    def update(self, z: Tensor, fz: Tensor) -> bool:
        """Record ``fz = f(z)`` (both ``(B, N)``); return True when it is time to stop."""
        res = (fz - z).norm(dim=1) / (fz.norm(dim=1) + EPS)  # (B,)
        if self.best_fz is None or self.best_res is None:
            self.best_fz, self.best_res = fz.clone(), torch.where(res.isnan(), math.inf, res)
        else:
            better = res < self.best_res  # NaN compares False, so a NaN never replaces a value
            self.best_fz = torch.where(better[:, None], fz, self.best_fz)
            self.best_res = torch.where(better, res, self.best_res)
        # One host sync per iteration, needed for the stop test.
        current, best = torch.stack([res.max(), self.best_res.max()]).tolist()
        self.trace.append(current)
        # Stop on convergence of the best-so-far solution, or when the iterate blew up: a
        # non-finite state only propagates, and the best finite iterate is already kept.
        self.stop = best <= self.tol or not math.isfinite(current)
        return self.stop

    def result(self, shape: torch.Size) -> tuple[Tensor, SolverStats]:
        """Return the best solution reshaped to ``shape`` and the stats."""
        assert self.best_fz is not None and self.best_res is not None
        residual = self.best_res.max().item()
        stats = SolverStats(
            iterations=len(self.trace),
            residual=residual,
            converged=residual <= self.tol,
            residual_trace=tuple(self.trace),
        )
        return self.best_fz.reshape(shape), stats
