"""The :class:`BPSN` module and its reset-mode resolution."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from spikeformers.neurons.base import SpikingModule
from spikeformers.neurons.bpsn.graded import bpsn_graded
from spikeformers.neurons.bpsn.kernels import lif_kernel
from spikeformers.neurons.bpsn.passes import bpsn_parallel
from spikeformers.neurons.bpsn.reference import (
    bpsn_graded_sequential_reference,
    bpsn_sequential_reference,
)
from spikeformers.neurons.surrogate import ATan, Surrogate

RESET_MODES = ("graded", "passes")


def resolve_reset_mode(reset_mode: str | None, reset_passes: int | None) -> tuple[str, int | None]:
    """The one rule for the BPSN's ``reset_mode`` / ``reset_passes`` pair (module and configs).

    ``reset_mode=None`` means ``"passes"`` when ``reset_passes`` is given (every SNN-BERT
    ``config.json`` written before ``reset_mode`` existed lists ``reset_passes``, so old models
    load with their old neuron) and ``"graded"`` otherwise. ``"passes"`` with
    ``reset_passes=None`` means 1 pass. ``"graded"`` has no passes: a ``reset_passes`` there is an
    error, not ignored.

    Returns:
        ``(reset_mode, reset_passes)``, the latter ``None`` for ``"graded"``.
    """
    if reset_mode is None:
        reset_mode = "graded" if reset_passes is None else "passes"
    if reset_mode not in RESET_MODES:
        raise ValueError(f"reset_mode must be one of {RESET_MODES}, got {reset_mode!r}")
    if reset_mode == "graded":
        if reset_passes is not None:
            raise ValueError(
                f"reset_passes={reset_passes} applies only to reset_mode='passes' "
                "(reset_mode='graded' has no reset passes)"
            )
        return reset_mode, None
    reset_passes = 1 if reset_passes is None else reset_passes
    if reset_passes < 0:
        raise ValueError(f"reset_passes must be >= 0, got {reset_passes}")
    return reset_mode, reset_passes


class BPSN(SpikingModule):
    """Bidirectional Parallel Spiking Neuron: stateless, parallel over the token/time axis.

    The dynamics (a DESIGN reconstruction, not the paper's equations) are in the module docstring:
    two ``k``-tap depthwise kernels (causal and anti-causal) and a per-channel sigmoid fusion give
    the charge ``H``; then, by ``reset_mode``:

    - ``"graded"`` (default): a soft-reset integrate-and-fire spike generator on the excess
      ``clamp((H - θ)/β, 0, 1)``, computed as the floor of a cumulative sum; the rate on a
      constant charge ``c`` is ``clamp((c - θ)/β, 0, 1)``, graded.
    - ``"passes"`` (the earlier reconstruction): ``Θ(H - θ)`` followed by ``reset_passes``
      parallel reset passes that subtract ``β`` times the decayed count of the previous pass's
      spikes; all-or-none on a long constant input.

    Args:
        num_channels: Width ``D`` (one neuron per channel).
        kernel_size: Taps ``k`` per direction (also the reach of the ``passes`` reset count).
        tau: LIF time constant used to initialise the kernels (and, for ``passes``, the fixed
            reset decay ``λ = 1 - 1/τ``); ``>= 1``.
        v_threshold: Initial threshold ``θ`` of every channel.
        fusion_init: Initial causal weight ``a`` in ``(0, 1)``; 0.5 weighs both directions equally.
        reset_strength: Initial ``β > 0``; ``None`` means ``θ`` (``graded``: the rate ramps from
            ``θ`` to ``2θ``, the range of a soft-reset LIF with ``τ = 2``; ``passes``: the
            soft-reset analogue).
        reset_mode: ``"graded"``, ``"passes"`` or ``None`` (see :func:`resolve_reset_mode`:
            ``"passes"`` if ``reset_passes`` is given, else ``"graded"``).
        reset_passes: ``passes`` only: ``P >= 0`` (``None``: 1); 0 disables the reset (a plain
            bidirectional PSN). Keep it odd: even values fire uninterruptedly again on constant
            input (see the module docstring).
        detach_reset: Stop the gradient through the reset. ``graded`` requires ``True`` (its
            reset is the floor of the spike count, whose derivative is 0).
        surrogate: Spike function; ``None`` builds a fresh ``ATan(alpha=2.0)``.

    Shapes:
        Input ``x``: ``[B, L, D]``; ``mask``: ``[B, L]`` (1 real, 0 padding) or ``None``.
        Output: spikes ``[B, L, D]`` in ``x``'s dtype, 0 at padded positions.
    """

    def __init__(
        self,
        num_channels: int,
        *,
        kernel_size: int = 8,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        fusion_init: float = 0.5,
        reset_strength: float | None = None,
        reset_mode: str | None = None,
        reset_passes: int | None = None,
        detach_reset: bool = True,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__()
        reset_mode, reset_passes = resolve_reset_mode(reset_mode, reset_passes)
        if reset_strength is None:
            reset_strength = v_threshold
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        if not tau >= 1.0:
            raise ValueError(f"tau must be >= 1, got {tau}")
        if not 0.0 < fusion_init < 1.0:
            raise ValueError(f"fusion_init must be in (0, 1), got {fusion_init}")
        uses_beta = reset_mode == "graded" or bool(reset_passes)
        if uses_beta and not reset_strength > 0.0:
            raise ValueError(f"reset_strength must be > 0, got {reset_strength}")
        if reset_mode == "graded" and not detach_reset:
            raise ValueError(
                "reset_mode='graded' needs detach_reset=True: its reset is the floor of the "
                "spike count, whose derivative is 0"
            )

        self.num_channels = num_channels
        self.kernel_size = kernel_size
        self.tau = float(tau)
        self.reset_mode = reset_mode
        self.reset_passes = reset_passes
        self.detach_reset = detach_reset
        self.surrogate = ATan(alpha=2.0) if surrogate is None else surrogate

        taps = lif_kernel(tau, kernel_size).to(torch.get_default_dtype())
        self.weight_fwd = nn.Parameter(taps.repeat(num_channels, 1))  # (D, k)
        self.weight_bwd = nn.Parameter(taps.repeat(num_channels, 1))  # (D, k)
        logit = math.log(fusion_init / (1.0 - fusion_init))
        self.fusion_logit = nn.Parameter(torch.full((num_channels,), logit))
        self.threshold = nn.Parameter(torch.full((num_channels,), float(v_threshold)))
        # Inverse softplus; without reset passes (passes, P = 0) the value is unused, so any
        # positive one will do. The same parameters in both modes: the state dicts match.
        beta = float(reset_strength) if reset_strength > 0 else 1.0
        beta_raw = beta + math.log(-math.expm1(-beta))
        self.reset_raw = nn.Parameter(torch.full((num_channels,), beta_raw))
        # Fixed taps λ^j, j = 1 .. k (passes mode): a buffer (follows .to() and dtype casts; not
        # saved), so a forward does not rebuild them.
        taps = self.tau * lif_kernel(self.tau, kernel_size, start=1)
        self.register_buffer("_reset_taps", taps.to(torch.get_default_dtype()), persistent=False)

    @property
    def fusion(self) -> torch.Tensor:
        """Per-channel weight ``a = sigmoid(fusion_logit)`` of the causal direction, ``[D]``."""
        return torch.sigmoid(self.fusion_logit)

    @property
    def reset_strength(self) -> torch.Tensor:
        """Per-channel reset strength ``β = softplus(reset_raw) >= 0``, ``[D]``."""
        return F.softplus(self.reset_raw)

    def reset_taps(self) -> torch.Tensor:
        """Fixed reset-count taps ``λ^j`` for ``j = 1 .. k`` (``λ = 1 - 1/τ``), ``[k]``, in the
        module's floating dtype (computed in float64 and rounded once); ``passes`` mode only."""
        return self._reset_taps

    def _dynamics_kwargs(self) -> dict:
        kwargs = {
            "weight_fwd": self.weight_fwd,
            "weight_bwd": self.weight_bwd,
            "fusion": self.fusion,
            "threshold": self.threshold,
            "reset_strength": self.reset_strength,
            "surrogate": self.surrogate,
        }
        if self.reset_mode == "passes":
            kwargs.update(
                reset_taps=self.reset_taps(),
                reset_passes=self.reset_passes,
                detach_reset=self.detach_reset,
            )
        return kwargs

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Fire all ``L`` steps in parallel.

        Args:
            x: ``[B, L, D]``, token ``t`` at time step ``t``.
            mask: ``[B, L]``, 1 for real tokens and 0 for padding; ``None`` means no padding.

        Returns:
            Spikes ``[B, L, D]``; padded positions are 0.
        """
        fn = bpsn_graded if self.reset_mode == "graded" else bpsn_parallel
        return fn(x, mask, **self._dynamics_kwargs())

    def forward_sequential(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`forward` but with a Python loop over time (reference; slow)."""
        if self.reset_mode == "graded":
            return bpsn_graded_sequential_reference(x, mask, **self._dynamics_kwargs())
        return bpsn_sequential_reference(x, mask, **self._dynamics_kwargs())

    def extra_repr(self) -> str:
        passes = f", reset_passes={self.reset_passes}" if self.reset_mode == "passes" else ""
        return (
            f"{self.num_channels}, kernel_size={self.kernel_size}, tau={self.tau}, "
            f"reset_mode={self.reset_mode!r}{passes}, detach_reset={self.detach_reset}"
        )
