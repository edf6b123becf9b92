"""Layers of the spiking stack (time-first ``[T, B, ...]``)."""

from spikeformers.layers.feature import FeatureTransform
from spikeformers.layers.time import TimeDistributed, fold_time, repeat_time, unfold_time

__all__ = ["FeatureTransform", "TimeDistributed", "fold_time", "repeat_time", "unfold_time"]
