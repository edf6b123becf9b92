"""Spiking neurons and surrogate spike functions (multi-step, time-first ``[T, ...]``)."""

from spikeformers.neurons.bpsn import BPSN
from spikeformers.neurons.functional import lif_multistep
from spikeformers.neurons.lif import LIF
from spikeformers.neurons.surrogate import SURROGATES, ATan, Sigmoid, Surrogate, build_surrogate

__all__ = [
    "BPSN",
    "LIF",
    "SURROGATES",
    "ATan",
    "Sigmoid",
    "Surrogate",
    "build_surrogate",
    "lif_multistep",
]
