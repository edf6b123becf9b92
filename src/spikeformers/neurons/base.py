"""The marker every spiking neuron derives from.

A module whose output is spikes subclasses :class:`SpikingModule`; firing rates, spike rasters,
energy counting and sharded evaluation find spiking modules by this base class alone
(:func:`spikeformers.evaluation.spiking_modules`, outermost only), so a new neuron type needs no
registration anywhere else.
"""

from __future__ import annotations

from torch import nn


class SpikingModule(nn.Module):
    """Base class of modules whose output is spikes (0/1, or counts for graded neurons).

    Nested spiking modules (a LIF's surrogate) count once: only the outermost one is recorded,
    so a wrapper that post-processes its inner neuron's spikes (e.g. zeroes padding) should
    itself be a :class:`SpikingModule`.
    """
