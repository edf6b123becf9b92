"""What every model family shares: config base class, output dataclass, save/load.

Every family exposes the same surface so data, distillation, evaluation, energy and the CLI never
need family-specific code:

- ``config``: a frozen ``ModelConfig`` dataclass (JSON-serialisable, unknown keys rejected);
- ``forward(input_ids, *, attention_mask=None, labels=None, output_hidden_states=False)
  -> ClassifierOutput`` (per-layer distillation features only when asked);
- ``get_input_embeddings() -> nn.Embedding`` (for the embedding distillation loss);
- ``save_pretrained(dir)`` / ``from_pretrained(dir)``: ``config.json`` + ``model.safetensors``,
  loaded strictly, with missing and unexpected keys named in the error.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from spikeformers.utils.io import atomic_write, write_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A saved model cannot be loaded: missing files, corrupt data or mismatched weights."""


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

    def __post_init__(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
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


class SpikingModel(nn.Module):
    """Base class: config handling and strict safetensors save/load. Families subclass it."""

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    supports_gradient_checkpointing: ClassVar[bool] = False
    """Whether :meth:`gradient_checkpointing_enable` is implemented by the family."""

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
        from spikeformers import __version__

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


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read ``directory/config.json``, raising ``CheckpointError`` with the path on failure."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (is {directory} a saved spikeformers model?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e


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
