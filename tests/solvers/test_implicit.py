"""IFT gradients on a small equilibrium ``z = tanh(z W^T + x U^T + b)``, checked in float64
against central finite differences of the solved fixed point and against the closed form
``(dL/dz) (I - J)^-1 ∂f/∂θ`` built from explicit Jacobians."""

from __future__ import annotations

import gc
import itertools
import weakref

import pytest
import torch
from torch.autograd.functional import jacobian

from spikeformers.solvers import (
    SOLVERS,
    AdjointStats,
    attach_implicit_grad,
    fixed_point_iteration,
)

B, D, DX = 2, 4, 3  # batch, state width, input width
NAMES = ("W", "U", "b", "x")


def make_params(dtype: torch.dtype = torch.float64, w_norm: float = 0.6) -> dict[str, torch.Tensor]:
    """Parameters with ``||W||_2 = w_norm`` (tanh' <= 1, so f contracts with factor w_norm)."""
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(D, D, generator=gen, dtype=torch.float64)
    W = W * (w_norm / torch.linalg.matrix_norm(W, ord=2))
    params = {
        "W": W,
        "U": torch.randn(D, DX, generator=gen, dtype=torch.float64),
        "b": 0.5 * torch.randn(D, generator=gen, dtype=torch.float64),
        "x": torch.randn(B, DX, generator=gen, dtype=torch.float64),
    }
    return {k: v.to(dtype) for k, v in params.items()}


def loss_weights(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(B, D, generator=gen, dtype=torch.float64).to(dtype)


def equilibrium_map(p: dict[str, torch.Tensor]):
    return lambda z: torch.tanh(z @ p["W"].T + p["x"] @ p["U"].T + p["b"])  # (B, D)


def loss_fn(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (c * z).sum() + (z**3).sum()  # nonlinear in z, so dL/dz depends on z*


def solve_tight(p: dict[str, torch.Tensor]) -> torch.Tensor:
    z, stats = fixed_point_iteration(
        equilibrium_map(p), torch.zeros(B, D, dtype=p["W"].dtype), max_iter=1000, tol=1e-13
    )
    assert stats.converged
    return z


def leaves(p, requires=NAMES):
    return {k: v.detach().clone().requires_grad_(k in requires) for k, v in p.items()}


def implicit_grads(p, c, *, requires=NAMES, stats=None, **kwargs):
    q = leaves(p, requires)
    z_star = solve_tight(q)
    z = attach_implicit_grad(equilibrium_map(q), z_star, stats=stats, **kwargs)
    loss_fn(z, c).backward()
    return {k: q[k].grad for k in NAMES}


def finite_difference_grads(p, c, h: float = 1e-6):
    grads = {}
    for name in NAMES:
        g = torch.zeros_like(p[name])
        for idx in itertools.product(*(range(n) for n in p[name].shape)):
            losses = []
            for sign in (1.0, -1.0):
                q = {k: v.clone() for k, v in p.items()}
                q[name][idx] += sign * h
                losses.append(loss_fn(solve_tight(q), c).item())
            g[idx] = (losses[0] - losses[1]) / (2 * h)
        grads[name] = g
    return grads


def closed_form_grads(p, c):
    """``β ∂f/∂θ`` with ``β = (dL/dz)(I - J)^-1`` from dense Jacobians of the flattened map."""
    z_flat = solve_tight(p).reshape(-1)  # (B*D,)

    def F(zf, **overrides):
        q = {**p, **overrides}
        return equilibrium_map(q)(zf.reshape(B, D)).reshape(-1)

    J = jacobian(F, z_flat)  # (B*D, B*D), block diagonal
    dL_dz = jacobian(lambda zf: loss_fn(zf.reshape(B, D), c), z_flat)  # (B*D,)
    eye = torch.eye(B * D, dtype=z_flat.dtype)
    beta = torch.linalg.solve((eye - J).T, dL_dz)  # row vector: β (I - J) = dL/dz
    grads = {}
    for name in NAMES:
        dF = jacobian(lambda t, name=name: F(z_flat, **{name: t}), p[name])  # (B*D, *shape)
        grads[name] = (beta @ dF.reshape(B * D, -1)).reshape(p[name].shape)
    return grads


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def reference():
    """Plain tensors only (no modules), shared to keep the finite differences to one pass."""
    p, c = make_params(), loss_weights()
    return p, c, finite_difference_grads(p, c), closed_form_grads(p, c)


def test_references_agree_and_feedback_matters(reference):
    p, c, fd, closed = reference
    one_step = implicit_grads(p, c, mode="no_feedback")
    for name in NAMES:
        assert rel_err(closed[name], fd[name]) < 1e-6, name
        # Otherwise the test below could not tell the IFT gradient from the one-step one.
        assert rel_err(one_step[name], fd[name]) > 1e-2, name


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_implicit_grad_matches_finite_differences(reference, solver):
    p, c, fd, _ = reference
    stats = AdjointStats()
    grads = implicit_grads(p, c, solver=solver, tol=1e-12, max_iter=200, stats=stats)
    assert stats.converged
    for name in NAMES:
        assert rel_err(grads[name], fd[name]) < 1e-4, name


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_implicit_grad_matches_closed_form(reference, solver):
    p, c, _, closed = reference
    grads = implicit_grads(p, c, solver=solver, tol=1e-12, max_iter=200)
    for name in NAMES:
        torch.testing.assert_close(grads[name], closed[name], rtol=1e-8, atol=1e-10)


def test_output_value_is_f_of_fixed_point_and_stats_are_filled():
    p, c = make_params(), loss_weights()
    q = leaves(p)
    z_star = solve_tight(q)
    stats = AdjointStats()
    z = attach_implicit_grad(equilibrium_map(q), z_star, tol=1e-10, stats=stats)
    with torch.no_grad():
        torch.testing.assert_close(z, equilibrium_map(q)(z_star), rtol=0, atol=0)
    torch.testing.assert_close(z.detach(), z_star, rtol=1e-12, atol=1e-12)
    assert stats.num_solves == 0  # the solve happens in backward
    loss_fn(z, c).backward()
    assert stats.num_solves == 1
    assert stats.converged
    assert stats.residual <= 1e-10
    assert 1 < stats.iterations == len(stats.residual_trace)


def test_no_feedback_equals_backprop_through_one_step():
    p, c = make_params(), loss_weights()
    grads = implicit_grads(p, c, mode="no_feedback")
    q = leaves(p)
    z_star = solve_tight(q)
    loss_fn(equilibrium_map(q)(z_star), c).backward()  # z_star carries no graph
    for name in NAMES:
        torch.testing.assert_close(grads[name], q[name].grad, rtol=0, atol=0)


def test_implicit_equals_no_feedback_without_dependence_on_z():
    p, c = make_params(w_norm=0.6), loss_weights()
    p["W"] = torch.zeros_like(p["W"])  # J_f = 0: the IFT gradient is the one-step gradient
    implicit = implicit_grads(p, c, requires=("U", "b", "x"))
    one_step = implicit_grads(p, c, requires=("U", "b", "x"), mode="no_feedback")
    for name in ("U", "b", "x"):
        torch.testing.assert_close(implicit[name], one_step[name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("requires", [("W", "U", "b"), ("x",), ("W",)])
def test_only_some_inputs_require_grad(reference, requires):
    p, c, _, closed = reference
    grads = implicit_grads(p, c, requires=requires, tol=1e-12, max_iter=200)
    for name in NAMES:
        if name in requires:
            torch.testing.assert_close(grads[name], closed[name], rtol=1e-8, atol=1e-10)
        else:
            assert grads[name] is None, name


def test_nothing_requiring_grad_is_harmless():
    p, c = make_params(), loss_weights()
    grads = implicit_grads(p, c, requires=())
    assert all(g is None for g in grads.values())


def test_autograd_grad_api_works(reference):
    p, c, _, closed = reference
    q = leaves(p, requires=("W",))
    z = attach_implicit_grad(equilibrium_map(q), solve_tight(q), tol=1e-12, max_iter=200)
    (gW,) = torch.autograd.grad(loss_fn(z, c), [q["W"]])
    torch.testing.assert_close(gW, closed["W"], rtol=1e-8, atol=1e-10)


def test_repeated_backward_solves_again_and_accumulates(reference):
    p, c, _, closed = reference
    q = leaves(p)
    stats = AdjointStats()
    z = attach_implicit_grad(equilibrium_map(q), solve_tight(q), tol=1e-12, stats=stats)
    loss = loss_fn(z, c)
    loss.backward(retain_graph=True)
    loss.backward()
    assert stats.num_solves == 2
    for name in NAMES:
        torch.testing.assert_close(q[name].grad, 2 * closed[name], rtol=1e-8, atol=1e-10)


def test_output_used_twice_triggers_one_solve(reference):
    p, c, _, closed = reference
    q = leaves(p)
    stats = AdjointStats()
    z = attach_implicit_grad(equilibrium_map(q), solve_tight(q), tol=1e-12, stats=stats)
    (loss_fn(z, c) + loss_fn(z.clone(), c)).backward()
    assert stats.num_solves == 1
    for name in NAMES:
        torch.testing.assert_close(q[name].grad, 2 * closed[name], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("run_backward", [True, False])
def test_graph_is_freed_without_garbage_collector(run_backward):
    p, c = make_params(), loss_weights()
    q = leaves(p)
    seen = []

    def f(z):
        seen.append(weakref.ref(z))  # the leaf copy of z*, saved by the graph of f
        return equilibrium_map(q)(z)

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        z = attach_implicit_grad(f, solve_tight(q))
        if run_backward:
            loss_fn(z, c).backward()
        del z
        assert seen[0]() is None  # no reference cycle keeps the graph alive
    finally:
        if was_enabled:
            gc.enable()


def test_no_grad_mode_returns_plain_value():
    p = make_params()
    q = leaves(p)
    z_star = solve_tight(q)
    with torch.no_grad():
        z = attach_implicit_grad(equilibrium_map(q), z_star)
    assert not z.requires_grad
    torch.testing.assert_close(z, z_star, rtol=1e-12, atol=1e-12)


def test_float32_gradient_is_close_to_float64_reference(reference):
    _, _, _, closed = reference
    p32, c32 = make_params(torch.float32), loss_weights(torch.float32)
    grads = implicit_grads(p32, c32, solver="anderson", tol=1e-6)
    for name in NAMES:
        assert grads[name].dtype == torch.float32
        assert rel_err(grads[name].double(), closed[name]) < 1e-4, name


def test_adjoint_non_convergence_is_reported_not_raised():
    p, c = make_params(w_norm=0.95), loss_weights()
    stats = AdjointStats()
    grads = implicit_grads(p, c, max_iter=2, tol=1e-12, stats=stats)
    assert not stats.converged
    assert stats.iterations == 2
    assert all(torch.isfinite(g).all() for g in grads.values())


def test_second_order_backward_warns():
    p, c = make_params(), loss_weights()
    q = leaves(p, requires=("b",))
    z = attach_implicit_grad(equilibrium_map(q), solve_tight(q))
    with pytest.warns(UserWarning, match="second-order"):
        torch.autograd.grad(loss_fn(z, c), [q["b"]], create_graph=True)


def test_invalid_mode_or_solver_raise():
    p = make_params()
    f, z_star = equilibrium_map(p), torch.zeros(B, D, dtype=torch.float64)
    with pytest.raises(ValueError, match="implicit.*no_feedback"):
        attach_implicit_grad(f, z_star, mode="phantom")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown solver"):
        attach_implicit_grad(f, z_star, solver="newton")
    with pytest.raises(ValueError, match="preserve the shape"):
        attach_implicit_grad(lambda z: z[:, :1], z_star)
