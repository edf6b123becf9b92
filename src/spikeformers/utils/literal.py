"""A switch that makes models run their published algorithm step for step.

Some families take exact shortcuts (SpikeBERT projects a time-invariant input once instead of
``T`` times, and multiplies ``Q (K^T V)`` instead of ``(Q K^T) V``): the same numbers for fewer
FLOPs. An energy count must price the operations a neuromorphic chip runs, which are those of
the literal algorithm, so the counter (:class:`~spikeformers.energy.counting.OpCounter`) derives
from :class:`LiteralAlgorithmMode`, and models ask :func:`literal_algorithm`. Models therefore
never import the energy package.

The switch is a ``TorchDispatchMode`` on PyTorch's mode stack (not a Python global), so it is
seen wherever the mode is: in backward recomputation on autograd's threads too.
"""

from __future__ import annotations

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode_stack


class LiteralAlgorithmMode(TorchDispatchMode):
    """While active (``with LiteralAlgorithmMode(): ...``), :func:`literal_algorithm` is True.

    Runs every operation unchanged; subclasses (the energy counter) add their own work.
    """

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:  # noqa: D105
        return func(*args, **(kwargs or {}))


def literal_algorithm() -> bool:
    """Whether a :class:`LiteralAlgorithmMode` is active: models then skip their exact shortcuts."""
    return any(isinstance(m, LiteralAlgorithmMode) for m in _get_current_dispatch_mode_stack())
