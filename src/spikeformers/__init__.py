"""spikeformers: spiking language models distilled from BERT-family teachers.

Public API (see README): ``create_model``, ``list_models``, ``load_model``, ``from_pretrained``,
the model families in ``spikeformers.models``, data loading in ``spikeformers.data``, distillation
in ``spikeformers.distill`` and evaluation in ``spikeformers.evaluation``.
"""

import logging

from spikeformers._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

import spikeformers.models  # noqa: E402, F401  (registers every family and variant)
from spikeformers.registry import (  # noqa: E402
    create_model,
    from_pretrained,
    list_models,
    load_model,
)

__all__ = ["__version__", "create_model", "from_pretrained", "list_models", "load_model"]
