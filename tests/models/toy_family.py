"""A toy fourth model family, defined outside the package: one file plus its registration.

``embedding -> LayerNorm -> LIF (repeat coding, T steps) -> rate over T -> mean over real tokens
-> classifier``. Importing this module registers the family (``model_type="toyspike"``) and one
variant, ``toyspike-tiny``; ``tests/conftest.py`` imports it, so every suite parametrized over
``list_models()`` runs it too. Nothing else in the package names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spikeformers.layers import FeatureTransform, masked_mean
from spikeformers.models.base import (
    ClassifierOutput,
    ModelConfig,
    SpikingModel,
    classification_loss,
)
from spikeformers.neurons import LIF
from spikeformers.registry import register_family


@dataclass(frozen=True, kw_only=True)
class ToySpikeConfig(ModelConfig):
    """The toy family's hyper-parameters."""

    model_type = "toyspike"

    hidden_size: int = 16
    """Width ``D``."""
    time_steps: int = 2
    """Repeat-coding steps ``T``."""
    v_threshold: float = 0.5
    """LIF threshold."""


class ToySpikeModel(SpikingModel):
    """The toy family. Shapes: ``input_ids [B, L]`` -> ``logits [B, C]``; the LIF sees
    ``[T, B, L, D]`` (declared in ``spike_layouts``)."""

    config_class = ToySpikeConfig
    spike_layouts = (("*", "TBLD"),)

    def __init__(self, config: ToySpikeConfig) -> None:
        super().__init__(config)
        d = config.hidden_size
        self.embeddings = nn.Embedding(config.vocab_size, d, padding_idx=config.pad_token_id)
        self.norm = nn.LayerNorm(d)
        self.lif = LIF(tau=2.0, v_threshold=config.v_threshold)
        self.transform = FeatureTransform(d)
        self.classifier = nn.Linear(d, config.num_labels)
        self.apply(self._init_weights)

    @classmethod
    def tiny_config(cls) -> dict:  # noqa: D102
        return {"hidden_size": 8, "time_steps": 2}

    def get_input_embeddings(self) -> nn.Embedding:  # noqa: D102
        return self.embeddings

    def forward(  # noqa: D102
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> ClassifierOutput:
        x = self.norm(self.embeddings(input_ids))  # (B, L, D)
        if attention_mask is not None:
            x = x * attention_mask.to(x.dtype)[:, :, None]  # padding: no current, no spike
        spikes = self.lif(x.unsqueeze(0).expand(self.config.time_steps, *x.shape))  # (T, B, L, D)
        rates = spikes.mean(0)  # (B, L, D)
        logits = self.classifier(masked_mean(rates, attention_mask, dim=1))  # (B, C)
        return ClassifierOutput(
            logits=logits,
            loss=None if labels is None else classification_loss(logits, labels),
            hidden_states=[self.transform(rates)] if output_hidden_states else [],
        )


register_family(ToySpikeModel, variants={"toyspike-tiny": ("Toy family (tests only)", {})})
