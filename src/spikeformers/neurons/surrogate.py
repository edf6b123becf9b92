"""Heaviside spike functions with surrogate gradients.

The forward pass is the Heaviside step ``H(x) = 1 if x >= 0 else 0`` (a spike when the membrane
potential reaches the threshold, ``x = v - v_threshold``). The backward pass replaces the
derivative of ``H`` (a Dirac delta) with the derivative ``g'(x)`` of a smooth primitive ``g``
(Neftci et al. 2019, "Surrogate gradient learning in spiking neural networks").

Each surrogate is an ``nn.Module`` with a ``spiking`` switch: with ``spiking=False`` it returns the
primitive ``g(x)`` itself (a differentiable, non-spiking relaxation), which is useful for analysis.
Surrogates behave identically in train and eval mode.
"""

from __future__ import annotations

import math

import torch

from spikeformers.neurons.base import SpikingModule


class _Heaviside(torch.autograd.Function):
    """``H(x)`` forward; ``grad_out * grad_fn(x, alpha)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float, grad_fn) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        ctx.grad_fn = grad_fn
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad_out * ctx.grad_fn(x, ctx.alpha), None, None


def atan_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``g'(x) = alpha / (2 * (1 + (pi/2 * alpha * x)^2))``, derivative of the ATan primitive."""
    return alpha / (2.0 * (1.0 + (math.pi / 2.0 * alpha * x) ** 2))


def sigmoid_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``g'(x) = alpha * s * (1 - s)`` with ``s = sigmoid(alpha * x)``."""
    s = torch.sigmoid(alpha * x)
    return alpha * s * (1.0 - s)


class Surrogate(SpikingModule):
    """Base class: Heaviside forward, smooth-primitive backward.

    Args:
        alpha: Sharpness of the primitive; larger means closer to a step.
        spiking: If ``False``, return the primitive ``g(x)`` instead of spikes.
    """

    name: str = ""
    default_alpha: float = 1.0

    def __init__(self, alpha: float | None = None, spiking: bool = True) -> None:
        super().__init__()
        self.alpha = float(self.default_alpha if alpha is None else alpha)
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"surrogate alpha must be finite and > 0, got {self.alpha}")
        self.spiking = spiking

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        """The smooth function whose derivative is the surrogate gradient."""
        raise NotImplementedError

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """The surrogate gradient ``g'(x)`` used in the backward pass."""
        return type(self)._grad(x, self.alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes ``H(x)`` (or ``g(x)`` when ``spiking=False``); shape and dtype of ``x``."""
        if not self.spiking:
            return self.primitive(x)
        if not torch.is_grad_enabled():  # inference: the forward alone, no autograd node
            return (x >= 0).to(x.dtype)
        return _Heaviside.apply(x, self.alpha, type(self)._grad)

    @classmethod
    def _grad(cls, x: torch.Tensor, alpha: float) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, spiking={self.spiking}"


class ATan(Surrogate):
    """ATan surrogate: ``g(x) = arctan(pi/2 * alpha * x) / pi + 1/2`` (SpikingJelly's default).

    Args:
        alpha: Sharpness (default 2.0, as in SpikeBERT).
        spiking: Heaviside forward if ``True``; the primitive otherwise.

    Shapes: any; output has the input's shape and dtype.
    """

    name = "atan"
    default_alpha = 2.0

    def primitive(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.atan(math.pi / 2.0 * self.alpha * x) / math.pi + 0.5

    @classmethod
    def _grad(cls, x: torch.Tensor, alpha: float) -> torch.Tensor:
        return atan_grad(x, alpha)


class Sigmoid(Surrogate):
    """Sigmoid surrogate: ``g(x) = sigmoid(alpha * x)``.

    Args:
        alpha: Sharpness (default 4.0, as in SpikingJelly).
        spiking: Heaviside forward if ``True``; the primitive otherwise.

    Shapes: any; output has the input's shape and dtype.
    """

    name = "sigmoid"
    default_alpha = 4.0

    def primitive(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.sigmoid(self.alpha * x)

    @classmethod
    def _grad(cls, x: torch.Tensor, alpha: float) -> torch.Tensor:
        return sigmoid_grad(x, alpha)


SURROGATES: dict[str, type[Surrogate]] = {"atan": ATan, "sigmoid": Sigmoid}


def build_surrogate(name: str, alpha: float | None = None) -> Surrogate:
    """Create a fresh surrogate by name (``"atan"`` or ``"sigmoid"``)."""
    try:
        cls = SURROGATES[name]
    except KeyError:
        raise ValueError(
            f"unknown surrogate {name!r}; choose one of {sorted(SURROGATES)}"
        ) from None
    return cls(alpha=alpha)
