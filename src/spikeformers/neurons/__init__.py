"""Spiking neurons and surrogate spike functions (multi-step, time-first ``[T, ...]``)."""

from spikeformers.neurons.bpsn import BPSN
from spikeformers.neurons.if_node import IFNode, if_multistep, if_step
from spikeformers.neurons.lif import LIF
from spikeformers.neurons.lif_functional import lif_multistep, lif_multistep_reference
from spikeformers.neurons.surrogate import SURROGATES, ATan, Sigmoid, Surrogate, build_surrogate

__all__ = [
    "BPSN",
    "IFNode",
    "LIF",
    "SURROGATES",
    "ATan",
    "Sigmoid",
    "Surrogate",
    "build_surrogate",
    "if_multistep",
    "if_step",
    "lif_multistep",
    "lif_multistep_reference",
]
