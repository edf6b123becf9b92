"""Surrogate spike functions: Heaviside forward, closed-form smooth backward."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

from spikeformers.neurons import SURROGATES, ATan, Sigmoid, Surrogate, build_surrogate


def atan_grad_closed_form(x: torch.Tensor, alpha: float) -> torch.Tensor:
    # d/dx [arctan(pi/2 * alpha * x) / pi + 1/2] = alpha / (2 * (1 + (pi/2 * alpha * x)^2))
    return alpha / (2 * (1 + (math.pi / 2 * alpha * x) ** 2))


def sigmoid_grad_closed_form(x: torch.Tensor, alpha: float) -> torch.Tensor:
    # d/dx sigmoid(alpha * x) = alpha * e^(-alpha x) / (1 + e^(-alpha x))^2
    e = torch.exp(-alpha * x)
    return alpha * e / (1 + e) ** 2


CASES = [
    (ATan, 2.0, atan_grad_closed_form),
    (ATan, 0.7, atan_grad_closed_form),
    (Sigmoid, 4.0, sigmoid_grad_closed_form),
    (Sigmoid, 1.5, sigmoid_grad_closed_form),
]
CLASSES = [ATan, Sigmoid]


def grid() -> torch.Tensor:
    # 601 points in [-3, 3] (step 0.01, includes 0 exactly), float64 so comparisons are tight.
    return torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)


def surrogate_grad(sg: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(sg(x).sum(), x)
    return g


@pytest.mark.parametrize("cls", CLASSES)
def test_forward_is_heaviside_with_h0_equal_one(cls: type[Surrogate]) -> None:
    x = torch.tensor([-2.0, -1e-12, -0.0, 0.0, 1e-12, 3.0], dtype=torch.float64)
    out = cls()(x)
    # -0.0 >= 0 is True in IEEE arithmetic, so it spikes like +0.0.
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert out.dtype == torch.float64


@pytest.mark.parametrize("cls", CLASSES)
def test_forward_output_is_exactly_binary_on_random_input(cls: type[Surrogate]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, generator=gen)
    assert torch.equal(cls()(x), (x >= 0).float())


@pytest.mark.parametrize(("cls", "alpha", "closed_form"), CASES)
def test_backward_equals_closed_form(cls, alpha, closed_form) -> None:
    x = grid()
    torch.testing.assert_close(
        surrogate_grad(cls(alpha=alpha), x), closed_form(x, alpha), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize(("cls", "alpha", "closed_form"), CASES)
def test_backward_equals_autograd_of_primitive(cls, alpha, closed_form) -> None:
    x = grid()
    spiking = surrogate_grad(cls(alpha=alpha), x)
    primitive = surrogate_grad(cls(alpha=alpha, spiking=False), x)
    torch.testing.assert_close(spiking, primitive, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", CLASSES)
def test_non_spiking_forward_is_the_primitive(cls: type[Surrogate]) -> None:
    x = grid()
    sg = cls(alpha=2.0, spiking=False)
    torch.testing.assert_close(sg(x), sg.primitive(x))
    # Both primitives are 1/2 at the threshold and approach the step far from it.
    assert sg(torch.zeros((), dtype=torch.float64)).item() == pytest.approx(0.5)
    assert sg(torch.tensor(-50.0)).item() < 0.01 and sg(torch.tensor(50.0)).item() > 0.99


@pytest.mark.parametrize("cls", CLASSES)
def test_backward_multiplies_upstream_gradient(cls: type[Surrogate]) -> None:
    x = torch.tensor([-0.5, 0.0, 0.25], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
    sg = cls()
    (g,) = torch.autograd.grad((sg(x) * w).sum(), x)
    torch.testing.assert_close(g, w * surrogate_grad(sg, x.detach()))


def test_alpha_changes_gradient() -> None:
    zero = torch.zeros(1, dtype=torch.float64)
    # ATan at x = 0: alpha / 2.
    assert surrogate_grad(ATan(alpha=2.0), zero).item() == pytest.approx(1.0)
    assert surrogate_grad(ATan(alpha=4.0), zero).item() == pytest.approx(2.0)
    # Sigmoid at x = 0: alpha * 1/2 * 1/2 = alpha / 4.
    assert surrogate_grad(Sigmoid(alpha=4.0), zero).item() == pytest.approx(1.0)
    assert surrogate_grad(Sigmoid(alpha=8.0), zero).item() == pytest.approx(2.0)
    # Away from 0 a sharper surrogate has a smaller gradient: ATan at x = 1 is
    # alpha / (2 (1 + (pi alpha / 2)^2)): 1 / (1 + pi^2) for alpha 2, 2 / (1 + 4 pi^2) for alpha 4.
    one = torch.ones(1, dtype=torch.float64)
    assert surrogate_grad(ATan(alpha=2.0), one).item() == pytest.approx(1 / (1 + math.pi**2))
    assert surrogate_grad(ATan(alpha=4.0), one).item() == pytest.approx(2 / (1 + 4 * math.pi**2))


def test_default_alphas() -> None:
    assert ATan().alpha == 2.0  # SpikeBERT / SpikingJelly
    assert Sigmoid().alpha == 4.0  # SpikingJelly


@pytest.mark.parametrize("cls", CLASSES)
def test_nonpositive_alpha_raises(cls: type[Surrogate]) -> None:
    with pytest.raises(ValueError, match="alpha"):
        cls(alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        cls(alpha=-1.0)


def test_repr_shows_alpha_and_spiking() -> None:
    assert repr(ATan(alpha=3.0)) == "ATan(alpha=3.0, spiking=True)"
    assert repr(Sigmoid(alpha=5.0, spiking=False)) == "Sigmoid(alpha=5.0, spiking=False)"


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_pickle_and_deepcopy_round_trip(cls: type[Surrogate], clone) -> None:
    sg = cls(alpha=1.25)
    twin = clone(sg)
    assert type(twin) is cls and twin is not sg
    assert twin.alpha == 1.25 and twin.spiking
    x = grid()
    assert torch.equal(twin(x), sg(x))
    torch.testing.assert_close(surrogate_grad(twin, x), surrogate_grad(sg, x))


@pytest.mark.parametrize("cls", CLASSES)
def test_train_and_eval_behave_identically(cls: type[Surrogate]) -> None:
    x = grid()
    sg = cls()
    out_train, grad_train = sg.train()(x), surrogate_grad(sg, x)
    out_eval, grad_eval = sg.eval()(x), surrogate_grad(sg, x)
    assert torch.equal(out_train, out_eval)
    assert torch.equal(grad_train, grad_eval)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_preserved_in_forward_and_backward(dtype: torch.dtype) -> None:
    x = torch.linspace(-1, 1, 7, dtype=dtype, requires_grad=True)
    out = ATan()(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert out.dtype == dtype and g.dtype == dtype


def test_build_surrogate_by_name() -> None:
    assert set(SURROGATES) == {"atan", "sigmoid"}
    a, b = build_surrogate("atan"), build_surrogate("atan")
    assert isinstance(a, ATan) and a is not b  # a fresh instance each call
    assert a.alpha == 2.0
    s = build_surrogate("sigmoid", alpha=3.0)
    assert isinstance(s, Sigmoid) and s.alpha == 3.0


def test_build_surrogate_unknown_name_raises() -> None:
    with pytest.raises(ValueError, match="unknown surrogate 'relu'"):
        build_surrogate("relu")
