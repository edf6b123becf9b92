"""Layers of the spiking stack (time-first ``[T, B, ...]``)."""

from spikeformers.layers.time import TimeDistributed, fold_time, repeat_time, unfold_time

__all__ = ["TimeDistributed", "fold_time", "repeat_time", "unfold_time"]
