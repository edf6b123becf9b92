"""Forward solvers on linear contractions ``z = A z + b`` whose fixed point is known exactly."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from spikeformers.solvers import (
    SOLVERS,
    SolverStats,
    anderson,
    broyden,
    fixed_point_iteration,
    get_solver,
)

NAMES = sorted(SOLVERS)


def symmetric_contraction(d: int, rho: float, seed: int) -> torch.Tensor:
    """Symmetric ``(d, d)`` matrix with eigenvalues spread evenly over ``[-rho, rho]``."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    eigs = torch.linspace(-rho, rho, d, dtype=torch.float64)
    return (q * eigs) @ q.T


def linear_problem(d: int, rho: float, batch: int = 3, seed: int = 0, dtype=torch.float64):
    """``f(z) = z A^T + b`` on ``(B, d)`` and its exact fixed point from ``solve(I - A, b)``."""
    A = symmetric_contraction(d, rho, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    b = torch.randn(batch, d, generator=gen, dtype=torch.float64)
    z_exact = torch.linalg.solve(torch.eye(d, dtype=torch.float64) - A, b.T).T  # (B, d)
    A, b = A.to(dtype), b.to(dtype)
    return (lambda z: z @ A.T + b), b, z_exact


@pytest.mark.parametrize("name", NAMES)
def test_solver_reaches_exact_fixed_point_float64(name):
    f, b, z_exact = linear_problem(d=12, rho=0.7)
    z, stats = get_solver(name)(f, torch.zeros_like(b), max_iter=500, tol=1e-11)
    assert stats.converged
    torch.testing.assert_close(z, z_exact, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_solver_works_in_float32(name):
    f, b, z_exact = linear_problem(d=12, rho=0.7, dtype=torch.float32)
    z, stats = get_solver(name)(f, torch.zeros_like(b), max_iter=200, tol=1e-5)
    assert stats.converged
    assert z.dtype == torch.float32
    torch.testing.assert_close(z.double(), z_exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_solver_flattens_per_sample_and_keeps_shape(name):
    f_flat, b, z_exact = linear_problem(d=12, rho=0.7, batch=2)

    def f(z):  # (B, 3, 4) -> (B, 3, 4), the same map on the flattened sample
        return f_flat(z.reshape(2, 12)).reshape(2, 3, 4)

    z0 = torch.zeros(2, 3, 4, dtype=torch.float64)
    z, stats = get_solver(name)(f, z0, tol=1e-10, max_iter=300)
    assert z.shape == (2, 3, 4)
    assert stats.converged
    torch.testing.assert_close(z.reshape(2, 12), z_exact, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_stats_are_filled_and_frozen(name):
    f, b, _ = linear_problem(d=8, rho=0.5)
    _, stats = get_solver(name)(f, torch.zeros_like(b), max_iter=100, tol=1e-8)
    assert isinstance(stats, SolverStats)
    assert stats.converged
    assert 1 <= stats.iterations <= 100
    assert len(stats.residual_trace) == stats.iterations
    assert stats.residual <= 1e-8
    assert stats.residual <= stats.residual_trace[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.iterations = 0  # type: ignore[misc]


def test_acceleration_beats_plain_iteration_on_slow_contraction():
    f, b, z_exact = linear_problem(d=32, rho=0.95)
    iters = {}
    for name in NAMES:
        z, stats = get_solver(name)(f, torch.zeros_like(b), max_iter=2000, tol=1e-8)
        assert stats.converged, name
        torch.testing.assert_close(z, z_exact, rtol=1e-6, atol=1e-6)
        iters[name] = stats.iterations
    # Plain iteration needs about log(1e-8) / log(0.95) ~ 360 steps.
    assert iters["fixed_point"] > 300
    assert iters["anderson"] < iters["fixed_point"] / 2
    assert iters["broyden"] < iters["fixed_point"] / 4


@pytest.mark.parametrize("name", NAMES)
def test_non_convergence_is_reported_not_raised(name):
    f, b, _ = linear_problem(d=32, rho=0.95)
    z, stats = get_solver(name)(f, torch.zeros_like(b), max_iter=3, tol=1e-12)
    assert not stats.converged
    assert stats.iterations == 3
    assert len(stats.residual_trace) == 3
    assert stats.residual > 1e-12
    assert torch.isfinite(z).all()


@pytest.mark.parametrize("name", NAMES)
def test_exact_initial_guess_stops_after_one_evaluation(name):
    f, _, z_exact = linear_problem(d=8, rho=0.5)
    z, stats = get_solver(name)(f, z_exact.clone(), max_iter=50, tol=1e-10)
    assert stats.converged
    assert stats.iterations == 1
    torch.testing.assert_close(z, z_exact)


@pytest.mark.parametrize("name", NAMES)
def test_solver_keeps_no_graph(name):
    A = (0.5 * torch.eye(4, dtype=torch.float64)).requires_grad_()
    b = torch.ones(2, 4, dtype=torch.float64)
    z, _ = get_solver(name)(lambda z: z @ A.T + b, torch.zeros_like(b), tol=1e-8)
    assert not z.requires_grad
    torch.testing.assert_close(z, 2 * b)


@pytest.mark.parametrize("name", NAMES)
def test_nan_map_stops_without_exception(name):
    z, stats = get_solver(name)(lambda z: z * math.nan, torch.ones(2, 3), max_iter=10)
    assert not stats.converged
    assert stats.iterations == 1


def test_anderson_damping_and_history_options_converge():
    f, b, z_exact = linear_problem(d=12, rho=0.9)
    for kwargs in ({"beta": 0.5}, {"m": 1}, {"m": 10, "lam": 1e-6}):
        z, stats = anderson(f, torch.zeros_like(b), max_iter=1000, tol=1e-10, **kwargs)
        assert stats.converged, kwargs
        torch.testing.assert_close(z, z_exact, rtol=1e-8, atol=1e-8)


def test_anderson_is_invariant_to_problem_scale():
    # The Tikhonov term is relative, so scaling b (hence z*) by 1e-4 must not change the path.
    f, b, _ = linear_problem(d=16, rho=0.9)
    _, big = anderson(f, torch.zeros_like(b), max_iter=500, tol=1e-10)
    _, small = anderson(lambda z: f(z / 1e-4) * 1e-4, torch.zeros_like(b), max_iter=500, tol=1e-10)
    assert big.iterations == small.iterations


def test_broyden_with_short_memory_still_converges():
    f, b, z_exact = linear_problem(d=16, rho=0.9)
    z, stats = broyden(f, torch.zeros_like(b), max_iter=500, tol=1e-10, memory=3)
    assert stats.converged
    torch.testing.assert_close(z, z_exact, rtol=1e-8, atol=1e-8)


def test_fixed_point_iteration_follows_picard_steps():
    # f(z) = z / 2 + 1 from z0 = 0: iterates 0, 1, 1.5 -> returned f(z_2) = 1.75.
    z, stats = fixed_point_iteration(lambda z: z / 2 + 1, torch.zeros(1, 1), max_iter=3, tol=0.0)
    assert z.item() == pytest.approx(1.75)
    assert stats.residual_trace == pytest.approx((1.0, 0.5 / 1.5, 0.25 / 1.75))


def test_get_solver_lists_names_on_unknown():
    assert get_solver("anderson") is anderson
    with pytest.raises(ValueError, match="anderson.*broyden.*fixed_point"):
        get_solver("newton")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_iter": 0}, "max_iter"), ({"tol": -1.0}, "tol")],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fixed_point_iteration(lambda z: z, torch.zeros(1, 2), **kwargs)


def test_unbatched_input_and_shape_change_raise():
    with pytest.raises(ValueError, match="batched"):
        fixed_point_iteration(lambda z: z, torch.tensor(1.0))
    with pytest.raises(ValueError, match="preserve the shape"):
        fixed_point_iteration(lambda z: z[:, :1], torch.zeros(2, 3))
