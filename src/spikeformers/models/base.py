"""What every model family shares: config base class, output dataclass, save/load.

Every family exposes the same surface so data, distillation, evaluation, energy and the CLI never
need family-specific code. A family (one module, registered with
:func:`~spikeformers.registry.register_family` and
:func:`~spikeformers.registry.register_model`) subclasses :class:`ModelConfig` and
:class:`SpikingModel` and provides:

- ``config``: a frozen ``ModelConfig`` dataclass with a ``model_type`` (JSON-serialisable,
  unknown keys rejected; ``num_layers`` is declared here);
- ``forward(input_ids, *, attention_mask=None, labels=None, output_hidden_states=False)
  -> ClassifierOutput`` (per-layer distillation features only when asked, ``num_feature_layers``
  of them);
- ``get_input_embeddings() -> nn.Embedding`` (for the embedding distillation loss);
- its spiking neurons as :class:`~spikeformers.neurons.base.SpikingModule` subclasses, and
  ``spike_layouts``: where the batch and token axes are in each one's output;
- a classification head in the attribute named by ``head_name`` (``reset_classifier`` swaps it);
- ``tiny_config()``: config fields that make any of its variants tiny (for tests);
- optionally ``energy_exclude`` (module names the energy estimate leaves out).

Shared here: ``save_pretrained(dir)`` / ``from_pretrained(dir)``: ``config.json`` +
``model.safetensors``, loaded strictly, with missing and unexpected keys named in the error.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from spikeformers._version import __version__
from spikeformers.errors import CheckpointError
from spikeformers.utils.io import atomic_write, write_json
from spikeformers.utils.model_files import CONFIG_NAME, WEIGHTS_NAME, read_config

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CheckpointError",
    "ClassifierOutput",
    "ModelConfig",
    "SpikingModel",
    "classification_loss",
    "load_weights_strict",
    "read_config",
]


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Base class of every family's config. Subclasses set ``model_type`` and add fields."""

    model_type: ClassVar[str] = ""

    vocab_size: int = 30522
    """Size of the token vocabulary (must match the tokenizer)."""
    num_labels: int = 2
    """Number of classes (1 means regression)."""
    label_names: tuple[str, ...] = ()
    """Optional class names, index-aligned with the logits."""
    pad_token_id: int = 0
    """Id of the padding token."""
    num_layers: int = 1
    """Number of blocks (one distillation feature each, unless the family says otherwise)."""

    def __post_init__(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if self.num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {self.num_labels}")
        if self.label_names and len(self.label_names) != self.num_labels:
            raise ValueError(
                f"label_names has {len(self.label_names)} names but num_labels is {self.num_labels}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with ``model_type`` first."""
        d = dataclasses.asdict(self)
        d["label_names"] = list(self.label_names)
        return {"model_type": self.model_type, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build a config, rejecting unknown keys with a close-match hint."""
        d = {k: v for k, v in d.items() if k not in ("model_type", "spikeformers_version")}
        names = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in names:
                hint = difflib.get_close_matches(key, names, n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ValueError(f"unknown {cls.__name__} field {key!r}{extra}")
        if "label_names" in d:
            d["label_names"] = tuple(d["label_names"])
        return cls(**d)


@dataclass
class ClassifierOutput:
    """What every model's ``forward`` returns.

    Attributes:
        logits: ``[B, C]`` class scores (``C = num_labels``).
        loss: Cross-entropy (or MSE for regression) when ``labels`` were given.
        hidden_states: Per-layer features for distillation, each ``[B, L, D]``.
        attentions: Per-layer attention scores for distillation, each ``[B, H, L, L]`` (optional).
        extras: Family-specific diagnostics (e.g. solver statistics).
    """

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden_states: list[torch.Tensor] = field(default_factory=list)
    attentions: list[torch.Tensor] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CE for classes (``labels [B]`` long); MSE for regression (``logits [B, 1]``)."""
    if logits.shape[-1] == 1:
        return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return nn.functional.cross_entropy(logits, labels)


M = TypeVar("M", bound="SpikingModel")
logger = logging.getLogger(__name__)


class SpikingModel(nn.Module):
    """Base class: the declared family interface, config handling and strict save/load.

    Families subclass it and set the class attributes below (each has a default).
    """

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    """The family's config dataclass (its ``model_type`` is the family's registry key)."""
    supports_gradient_checkpointing: ClassVar[bool] = False
    """Whether :meth:`gradient_checkpointing_enable` is implemented by the family."""
    head_name: ClassVar[str] = "classifier"
    """Attribute holding the classification head, an ``nn.Linear(features, num_labels)``."""
    spike_layouts: ClassVar[tuple[tuple[str, str], ...]] = ()
    """Where the batch (``B``) and token (``L``) axes are in each spiking module's output, as
    ``(module-name pattern, layout)`` rules, first match wins (e.g. ``("*", "TBLD")``). Firing
    rates and energy over real tokens need them; a padded batch on a module without a layout
    raises, and every layout is checked against the output's shape."""
    energy_exclude: ClassVar[tuple[str, ...]] = ()
    """Module-name patterns the energy estimate leaves out of its totals by default."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        self.gradient_checkpointing = False
        """Recompute each block's forward in backward (training only); see the method below."""

    def gradient_checkpointing_enable(self) -> None:
        """Store only each block's input in training and recompute the block in backward.

        The ``transformers`` name and meaning: less memory (about one ``[T, B, L, D]`` tensor
        per block instead of all its activations) for one more forward pass per step; the
        same numbers (the recomputation is deterministic).

        Raises:
            ValueError: If the family does not implement it.
        """
        if not self.supports_gradient_checkpointing:
            raise ValueError(f"{type(self).__name__} does not support gradient checkpointing")
        self.gradient_checkpointing = True

    # -- interface every family implements -------------------------------------------------
    def forward(  # noqa: D102
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> ClassifierOutput:
        raise NotImplementedError

    def get_input_embeddings(self) -> nn.Embedding:  # noqa: D102
        raise NotImplementedError

    @property
    def num_feature_layers(self) -> int:
        """How many entries ``hidden_states`` holds (the student depth for layer mapping).

        Default: ``config.num_layers`` (one feature per block).
        """
        return self.config.num_layers

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Config fields that make any variant of the family tiny and fast (for tests).

        Used as ``create_model(name, vocab_size=..., **cls.tiny_config())``. The default is
        one block; families override it with their width fields.
        """
        return {"num_layers": 1}

    def get_classifier(self) -> nn.Module:
        """The classification head (the module named by :attr:`head_name`)."""
        return getattr(self, self.head_name)

    def reset_classifier(self, num_labels: int, label_names: tuple[str, ...] = ()) -> SpikingModel:
        """Replace the head with a fresh one for ``num_labels`` classes (in place; returns self).

        Every other weight is kept. ``config`` gets the new ``num_labels`` and ``label_names``.
        The new head is the one a freshly built model of the new config has (the same random
        draws as building the whole model), so a seeded run gets the same head either way.
        """
        cfg = dataclasses.replace(self.config, num_labels=num_labels, label_names=label_names)
        head = getattr(type(self)(cfg), self.head_name)
        like = next(self.get_classifier().parameters())  # keep the old head's device and dtype
        setattr(self, self.head_name, head.to(device=like.device, dtype=like.dtype))
        self.config = cfg
        logger.info(
            "new classification head %r for %d classes (initialised fresh)",
            self.head_name,
            num_labels,
        )
        return self

    # -- shared ------------------------------------------------------------------------------
    def _init_weights(self, m: nn.Module) -> None:
        """BERT-style initialisation, for ``self.apply``: ``N(0, initializer_range)`` weights
        (default 0.02) for linear layers and embeddings, zero biases and a zero padding row."""
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()

    def num_parameters(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, save_directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (atomically) to ``save_directory``."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        meta = {"format": "pt", "model_type": self.config.model_type}
        atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata=meta))
        write_json(
            out / CONFIG_NAME, {**self.config.to_dict(), "spikeformers_version": __version__}
        )

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path, **overrides: Any) -> M:
        """Load a model saved by ``save_pretrained``; weights must match exactly (strict)."""
        directory = Path(directory)
        config = cls.config_class.from_dict({**read_config(directory), **overrides})
        model = cls(config)
        load_weights_strict(model, directory / WEIGHTS_NAME)
        return model


def load_weights_strict(model: nn.Module, path: str | Path) -> None:
    """Load safetensors weights into ``model``; every key and shape must match.

    Raises:
        CheckpointError: naming the missing keys, unexpected keys or shape mismatches.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises several types for corrupt/truncated files
        raise CheckpointError(
            f"{path}: cannot read weights ({e}); the file may be truncated"
        ) from e
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if shapes:
            parts.append(f"shape mismatches: {'; '.join(shapes[:20])}")
        raise CheckpointError(f"{path} does not match {type(model).__name__}: " + " | ".join(parts))
    model.load_state_dict(state, strict=True)
