"""Model families. Importing this package registers every family and its named variants."""

from spikeformers.models.base import (
    CheckpointError,
    ClassifierOutput,
    ModelConfig,
    SpikingModel,
)
from spikeformers.models.snnbert import SnnBertConfig, SnnBertForSequenceClassification
from spikeformers.models.spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
from spikeformers.models.spikingbert import (
    SpikingBertConfig,
    SpikingBertForSequenceClassification,
)

__all__ = [
    "CheckpointError",
    "ClassifierOutput",
    "ModelConfig",
    "SnnBertConfig",
    "SnnBertForSequenceClassification",
    "SpikeBertConfig",
    "SpikeBertForSequenceClassification",
    "SpikingBertConfig",
    "SpikingBertForSequenceClassification",
    "SpikingModel",
]
