"""Fixed-point solvers and implicit differentiation for equilibrium models.

Forward solvers (``solve(f, z0, *, max_iter, tol, **kw) -> (z_star, SolverStats)``) live apart
from the gradient strategy (:func:`attach_implicit_grad`), as in locuslab/torchdeq; no model
code lives here.

Typical use in an equilibrium model::

    z0 = torch.zeros(B, N)
    z_star, fwd = anderson(lambda z: f(z, x), z0, max_iter=30, tol=1e-4)  # no graph
    z = attach_implicit_grad(lambda z: f(z, x), z_star, solver="anderson", stats=adj)
"""

from spikeformers.solvers.anderson import anderson
from spikeformers.solvers.base import SolverFn, SolverStats
from spikeformers.solvers.broyden import broyden
from spikeformers.solvers.fixed_point import fixed_point_iteration
from spikeformers.solvers.implicit import AdjointStats, GradMode, attach_implicit_grad
from spikeformers.solvers.registry import SOLVERS, get_solver

__all__ = [
    "SOLVERS",
    "AdjointStats",
    "GradMode",
    "SolverFn",
    "SolverStats",
    "anderson",
    "attach_implicit_grad",
    "broyden",
    "fixed_point_iteration",
    "get_solver",
]
