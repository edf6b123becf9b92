"""Layers shared by the model families (below the models, above the neurons)."""

from spikeformers.layers.feature import FeatureTransform
from spikeformers.layers.pooling import masked_mean
from spikeformers.layers.spiking import SpikingMLP

__all__ = ["FeatureTransform", "SpikingMLP", "masked_mean"]
