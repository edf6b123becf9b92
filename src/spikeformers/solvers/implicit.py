"""Implicit-function-theorem (IFT) gradients for a fixed point found without a graph.

Let ``z* = f(z*; θ)`` where ``f`` closes over parameters and inputs ``θ``. Differentiating the
fixed-point equation gives ``dz*/dθ = (I - J_f)^-1 ∂f/∂θ`` with ``J_f = ∂f/∂z`` at ``z*``, so for
a loss ``L(z*)``

    dL/dθ = β ∂f/∂θ,    β = (dL/dz*) (I - J_f)^-1,

and the row vector ``β`` solves the adjoint fixed point ``β = β J_f + dL/dz*``. That adjoint is
solved with the same solvers as the forward pass, using only vector-Jacobian products ``β J_f``.
This is the training rule of SpikingBERT (Bal & Sengupta, AAAI 2024) and of IDE-FSNN (Xiao et
al., NeurIPS 2021); the DEQ recipe is from Bai, Kolter & Koltun (NeurIPS 2019).

The forward solve keeps no graph, so memory does not grow with the number of forward iterations
(or simulated time steps): backward holds one graph of ``f`` at ``z*``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from spikeformers.solvers.base import SolverStats
from spikeformers.solvers.registry import get_solver

__all__ = ["AdjointStats", "GradMode", "attach_implicit_grad"]

logger = logging.getLogger(__name__)

GradMode = Literal["implicit", "no_feedback"]


@dataclass
class AdjointStats:
    """Record of the backward (adjoint) solves; pass one in and read it after ``backward()``.

    Attributes:
        iterations: Vector-Jacobian products used by the last solve.
        residual: Relative residual ``||β J_f + g - β|| / ||β J_f + g||`` of the last solve.
        converged: Whether the last solve reached its tolerance.
        num_solves: Number of adjoint solves run so far (one per backward through the output).
        residual_trace: Residual per iteration of the last solve.
    """

    iterations: int = 0
    residual: float = math.nan
    converged: bool = False
    num_solves: int = 0
    residual_trace: tuple[float, ...] = field(default_factory=tuple)

    def record(self, stats: SolverStats) -> None:
        """Store the outcome of one adjoint solve."""
        self.iterations = stats.iterations
        self.residual = stats.residual
        self.converged = stats.converged
        self.residual_trace = stats.residual_trace
        self.num_solves += 1


def attach_implicit_grad(
    f: Callable[[Tensor], Tensor],
    z_star: Tensor,
    *,
    mode: GradMode = "implicit",
    solver: str = "fixed_point",
    max_iter: int = 50,
    tol: float = 1e-6,
    stats: AdjointStats | None = None,
    solver_kwargs: Mapping[str, Any] | None = None,
) -> Tensor:
    """Re-attach a graph-free fixed point ``z*`` of ``z = f(z)`` to autograd with IFT gradients.

    Returns ``z = f(z*)``, evaluated once with a graph (equal to ``z*`` up to the forward
    solver's residual). Gradients reaching ``z`` as ``g = dL/dz`` are replaced, by a tensor hook,
    with the solution ``β`` of ``β = β J_f + g`` and then flow through ``∂f/∂θ`` into every
    parameter or input ``f`` closes over that requires grad. Inputs that do not require grad are
    simply left out. Nothing flows into ``z_star`` itself.

    ``mode="no_feedback"`` treats ``J_f`` as 0 (``β = g``): the one-step gradient of plain
    backprop through a single application of ``f`` at ``z*``. That is what the public
    SpikingBERT code computes, here an explicit option instead of an accident.

    Implementation notes:

    * The adjoint's vector-Jacobian products reuse the graph of ``f(z*)`` (built from a detached
      leaf copy of ``z*``) with ``retain_graph=True``, so backward holds one graph of ``f``.
    * The hook sits on a clone of ``f(z*)``, not on ``f(z*)`` itself. Hence the VJPs, which
      start at ``f(z*)``, never re-enter the hook (the DEQ code removes its hook instead, which
      breaks a second backward), and the closure holding ``f(z*)`` forms no reference cycle with
      the node holding the hook, so the graph is freed as soon as the output is dropped.
    * A second ``backward(retain_graph=True)`` solves the adjoint again and is exact again.
      Uses of the output in several places reach the hook as one summed ``g``: one solve.
    * Second-order gradients (``create_graph=True``) miss ``dβ/dθ`` and are not supported.

    Args:
        f: The equilibrium map, ``(B, ...) -> (B, ...)``; it closes over parameters and inputs.
            It is called once here, with grad enabled.
        z_star: Fixed point of ``f``, shape ``(B, ...)``, e.g. from a forward solver or from a
            spiking simulation's average rates. Its own graph, if any, is ignored.
        mode: ``"implicit"`` (IFT gradient) or ``"no_feedback"`` (``J_f`` taken as 0).
        solver: Name in :data:`~spikeformers.solvers.SOLVERS` for the adjoint solve.
        max_iter: Maximum vector-Jacobian products per adjoint solve.
        tol: Relative-residual tolerance of the adjoint solve.
        stats: Filled in by every adjoint solve, so the caller can log it.
        solver_kwargs: Extra keyword arguments of the adjoint solver (e.g. ``{"m": 6}``).

    Returns:
        ``f(z*)`` with shape of ``z_star``. Without grad mode (e.g. under ``torch.no_grad()``)
        it is returned without a graph.

    Raises:
        ValueError: For an unknown ``mode`` or ``solver``, a 0-d ``z_star``, or an ``f`` that
            changes the shape.
    """
    if mode not in get_args(GradMode):
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(get_args(GradMode))}")
    solve = get_solver(solver)
    kwargs = dict(solver_kwargs or {})
    if z_star.ndim < 1:
        raise ValueError("z_star must be batched with shape (B, ...), got a 0-d tensor")

    if mode == "no_feedback" or not torch.is_grad_enabled():
        return _checked(f, z_star.detach(), z_star.shape)

    z_leaf = z_star.detach().requires_grad_()
    fz = _checked(f, z_leaf, z_star.shape)  # (B, ...), graph through z_leaf and θ
    if not fz.requires_grad:  # f cut its own graph: nothing to differentiate
        return fz

    def vjp_plus(beta: Tensor, g: Tensor) -> Tensor:
        """``β J_f + g`` via one reverse pass through the retained graph of ``f(z*)``."""
        (beta_j,) = torch.autograd.grad(fz, z_leaf, beta, retain_graph=True, allow_unused=True)
        return g if beta_j is None else beta_j + g  # None: f does not depend on z

    def adjoint_hook(g: Tensor) -> Tensor:
        if torch.is_grad_enabled():  # backward(create_graph=True)
            warnings.warn(
                "attach_implicit_grad: second-order gradients ignore dβ/dθ and are wrong",
                stacklevel=2,
            )
        # Start from g (the no-feedback answer): for small J_f it is already close to β.
        beta, solve_stats = solve(lambda b: vjp_plus(b, g), g, max_iter=max_iter, tol=tol, **kwargs)
        if stats is not None:
            stats.record(solve_stats)
        logger.debug(
            "adjoint %s: %d iters, residual %.2e, converged=%s",
            solver,
            solve_stats.iterations,
            solve_stats.residual,
            solve_stats.converged,
        )
        return beta

    out = fz.clone()
    out.register_hook(adjoint_hook)
    return out


def _checked(f: Callable[[Tensor], Tensor], z: Tensor, shape: torch.Size) -> Tensor:
    """Apply ``f`` and check that it preserves the shape."""
    fz = f(z)
    if fz.shape != shape:
        raise ValueError(f"f must preserve the shape {tuple(shape)}, got {tuple(fz.shape)}")
    return fz
