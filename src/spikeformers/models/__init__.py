"""Model families. Importing this package registers every family and its named variants.

Adding a family is one module here plus one import line below (or, outside the package, any
importable module): subclass :class:`ModelConfig` (set ``model_type``, add fields) and
:class:`SpikingModel` (implement ``forward`` and ``get_input_embeddings``; declare
``spike_layouts``, ``tiny_config`` and, if they differ from the defaults, ``head_name`` and
``energy_exclude``), build neurons from :class:`~spikeformers.neurons.base.SpikingModule`
subclasses, and end the module with its one registration call,
``register_family(MyModel, variants={name: (description, config defaults)})``. The CLI,
distillation, evaluation, firing rates, energy, rasters and the test suites parametrized over
``list_models()`` then pick it up; ``tests/models/toy_family.py`` is a worked example.
"""

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
