"""Name -> solver table, so configs can pick a solver by string (``solver="anderson"``)."""

from __future__ import annotations

from spikeformers.solvers.anderson import anderson
from spikeformers.solvers.base import SolverFn
from spikeformers.solvers.broyden import broyden
from spikeformers.solvers.fixed_point import fixed_point_iteration

__all__ = ["SOLVERS", "get_solver"]

SOLVERS: dict[str, SolverFn] = {
    "fixed_point": fixed_point_iteration,
    "anderson": anderson,
    "broyden": broyden,
}
"""Table of the forward solvers, each ``solve(f, z0, *, max_iter, tol, **kw)``."""


def get_solver(name: str) -> SolverFn:
    """Return the solver registered as ``name``.

    Raises:
        ValueError: If ``name`` is unknown; the message lists the known names.
    """
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; choose one of {sorted(SOLVERS)}") from None
