"""Model families. Importing this package registers every family and its named variants."""

from spikeformers.models.base import (
    CheckpointError,
    ClassifierOutput,
    ModelConfig,
    SpikingModel,
)
from spikeformers.models.spikebert import SpikeBertConfig, SpikeBertForSequenceClassification

__all__ = [
    "CheckpointError",
    "ClassifierOutput",
    "ModelConfig",
    "SpikeBertConfig",
    "SpikeBertForSequenceClassification",
    "SpikingModel",
]
