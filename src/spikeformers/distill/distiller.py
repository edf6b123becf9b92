"""Knowledge distillation from a BERT-family teacher into any spikeformers student.

The distiller sees only the students' common output (``ClassifierOutput``: logits and per-layer
``hidden_states``) and ``get_input_embeddings()``, so every family distils through this code.

Stage ``general`` (SpikeBERT stage 1, TinyBERT general distillation): on unlabelled text, align
each student layer's features with the mapped hidden state of the *pre-trained* teacher
(``w_feat``), optionally also the word embeddings (``w_emb``).

Stage ``task`` (SpikeBERT stage 2): from the teacher *fine-tuned* on the task,
``L = w_emb * MSE(E_s, E_t) + w_ce * CE(z_s, y) + w_logit * KL_tau(z_t || z_s)
+ w_feat * sum_i MSE(h_s(i), h_t(map(i)))``.
Defaults are the published script's weights 0.1 / 0.1 / 1.0 / 0.1. For regression
(``num_labels == 1``) the CE term is ``MSE(z_s, y)`` and the logit term ``MSE(z_s, z_t)``
(TinyBERT's choice; a softmax KL over one logit is always 0); the term keeps the name ``kl``.

When student and teacher widths differ, a learned ``Linear(D_s, D_t)`` per mapped layer (and one
for the embeddings) projects student features. The projections belong to the distiller: they are
trained with the student, saved apart from it (``distiller.safetensors``) and never enter the
student's checkpoint. ``always_project_features=True`` keeps the per-layer projections even when
the widths match (SpikingBERT's learned ``W_td``, paper Eq. 10).

Optional TinyBERT/SpikingBERT attention term (``w_attn``, default 0, in both stages):
``w_attn * sum_i MSE(S_s(i), S_t(map(i)))`` between the student's pre-softmax attention scores
(``ClassifierOutput.attentions``, ``[B, H_s, L, L]`` per layer, returned with the hidden states)
and the teacher's, rebuilt from query/key hooks
(:func:`~spikeformers.distill.teacher.attention_score_hooks`), with padded (query, key) pairs
zeroed on both sides (:class:`~spikeformers.distill.losses.AttentionScoreMSE`). Student layer
``i`` meets teacher layer ``map(i)`` (the feature map: 12 -> 4 gives teacher layers 3, 6, 9, 12).
With equal head counts heads are compared one to one; otherwise (``attn_heads="auto"`` or
``"mean"``) both sides are averaged over heads first.

Teacher-output cache (:meth:`Distiller.cache_teacher_outputs`, ``distill(cache_teacher=True)``):
when the transfer set is fixed, the frozen teacher (eval mode, no dropout) gives the same outputs
for an example every epoch, so they are computed once and looked up by the batch's ``index``:
only what the active terms use (logits ``[C]``; the mapped hidden states ``[n, D_t]``; the mapped
layers' scores ``[H, n, n]``), per example, unpadded, in the dtype the teacher computed, on the
CPU. The losses are those of the live teacher to float tolerance (padding is masked in every term).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from spikeformers.data.text_classification import EncodedDataset, PadCollator
from spikeformers.distill.layer_map import map_layers
from spikeformers.distill.losses import AttentionScoreMSE, LogitMSE, MaskedMSE, SoftTargetKL
from spikeformers.distill.teacher import (
    TeacherOutput,
    teacher_depth,
    teacher_forward,
    teacher_width,
    teacher_word_embeddings,
)
from spikeformers.errors import VocabularyMismatchError  # noqa: F401  (re-exported here)
from spikeformers.models.base import SpikingModel, classification_loss

logger = logging.getLogger(__name__)

Stage = Literal["general", "task"]


# Loss term -> the DistillConfig field that weights it, in the order the terms are summed.
TERM_WEIGHTS: dict[str, str] = {
    "emb": "w_emb",
    "feat": "w_feat",
    "attn": "w_attn",
    "ce": "w_ce",
    "kl": "w_logit",
}
TASK_ONLY_TERMS = ("ce", "kl")
"""Terms that need labels or a task teacher: the general stage never computes them."""


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Loss weights and options of one distillation stage."""

    stage: Stage = "task"
    """``general`` (features only, unlabelled text) or ``task`` (all terms, labelled data)."""
    w_emb: float = 0.1
    """Weight of the word-embedding MSE."""
    w_ce: float = 0.1
    """Weight of the cross-entropy with gold labels (task stage only)."""
    w_logit: float = 1.0
    """Weight of the KL between softened teacher and student distributions (task stage only)."""
    w_feat: float = 0.1
    """Weight of the per-layer feature MSE."""
    temperature: float = 1.0
    """Softmax temperature of the logit KL (the published script uses none, i.e. 1)."""
    skip_first_teacher_layers: int = 0
    """Teacher layers left out of the layer map (the paper optionally ignores the first few)."""
    w_attn: float = 0.0
    """Weight of the pre-softmax attention-score MSE (TinyBERT, SpikingBERT); 0 leaves it out.
    Needs a student that returns ``attentions`` with its hidden states."""
    attn_heads: Literal["auto", "equal", "mean"] = "auto"
    """Head matching of the attention term: ``equal`` requires equal head counts (one to one),
    ``mean`` compares head-averaged scores, ``auto`` is ``equal`` when the counts match and
    ``mean`` otherwise."""
    always_project_features: bool = False
    """Use the learned ``Linear(D_s, D_t)`` feature projections even when widths match."""

    def __post_init__(self) -> None:
        if self.stage not in ("general", "task"):
            raise ValueError(f"stage must be 'general' or 'task', got {self.stage!r}")
        for name in TERM_WEIGHTS.values():
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.attn_heads not in ("auto", "equal", "mean"):
            raise ValueError(f"attn_heads must be auto, equal or mean, got {self.attn_heads!r}")

    @classmethod
    def for_stage(cls, stage: Stage, **overrides) -> DistillConfig:
        """Defaults of a stage: ``general`` uses features only (w_feat 1, others 0)."""
        general = dict(w_emb=0.0, w_ce=0.0, w_logit=0.0, w_feat=1.0)
        base = general if stage == "general" else {}
        return cls(stage=stage, **{**base, **overrides})

    @property
    def active_terms(self) -> tuple[str, ...]:
        """Loss terms with a non-zero weight (the ones the distiller computes)."""
        return tuple(
            term
            for term in TERM_WEIGHTS
            if self.weight(term) > 0 and (self.stage == "task" or term not in TASK_ONLY_TERMS)
        )

    def weight(self, term: str) -> float:
        """The weight of loss ``term`` (a key of :data:`TERM_WEIGHTS`)."""
        return getattr(self, TERM_WEIGHTS[term])


@dataclass
class TeacherCache:
    """Teacher outputs per training example (dataset ``index``), unpadded, on the CPU.

    Attributes:
        depth: Teacher layers (hidden states ``0..depth``; score layers ``1..depth``).
        logits: ``[N, C]``, or ``None`` when no term uses them.
        hidden: Hidden-state index ``j`` -> per example ``[n_i, D_t]`` (``n_i`` real tokens).
        scores: Teacher layer ``j`` (1-based) -> per example pre-softmax scores ``[H, n_i, n_i]``.
    """

    depth: int
    logits: torch.Tensor | None = None
    hidden: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    scores: dict[int, list[torch.Tensor]] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes held (for the log: hidden states of every layer would be large)."""
        tensors = [t for per in (*self.hidden.values(), *self.scores.values()) for t in per]
        if self.logits is not None:
            tensors.append(self.logits)
        return sum(t.numel() * t.element_size() for t in tensors)

    def lookup(self, index: torch.Tensor, length: int, device: torch.device) -> TeacherOutput:
        """The teacher's outputs for a batch of dataset indices, zero-padded to ``length``.

        Args:
            index: ``[B]`` dataset indices (the collated batch's ``index``).
            length: ``L``, the batch's padded length.
            device: Where the batch lives.

        Returns:
            A :class:`TeacherOutput` whose ``hidden_states`` has ``depth + 1`` entries and
            ``attention_scores`` ``depth``; entries no term uses are ``None``. Hidden states are
            ``[B, L, D_t]``, scores ``[B, H, L, L]``, logits ``[B, C]``.
        """
        rows = index.tolist()
        hidden = [None] * (self.depth + 1)
        for j, per in self.hidden.items():
            hidden[j] = self._pad_tokens(per, rows, length).to(device, non_blocking=True)
        scores = [None] * self.depth
        for j, per in self.scores.items():
            scores[j - 1] = self._pad_pairs(per, rows, length).to(device, non_blocking=True)
        logits = None if self.logits is None else self.logits[index.cpu()].to(device)
        return TeacherOutput(
            hidden_states=tuple(hidden),
            attentions=(),
            logits=logits,
            attention_scores=tuple(scores),
        )

    @staticmethod
    def _pad_tokens(per: list[torch.Tensor], rows: list[int], length: int) -> torch.Tensor:
        """``[n_i, D]`` items -> ``[B, L, D]`` with zeros after each item's real tokens."""
        first = per[rows[0]]
        out = first.new_zeros((len(rows), length, first.shape[-1]))
        for b, i in enumerate(rows):
            out[b, : per[i].shape[0]] = per[i]
        return out

    @staticmethod
    def _pad_pairs(per: list[torch.Tensor], rows: list[int], length: int) -> torch.Tensor:
        """``[H, n_i, n_i]`` items -> ``[B, H, L, L]`` with zeros on padded pairs."""
        first = per[rows[0]]
        out = first.new_zeros((len(rows), first.shape[0], length, length))
        for b, i in enumerate(rows):
            n = per[i].shape[-1]
            out[b, :, :n, :n] = per[i]
        return out


class Distiller(nn.Module):
    """Student + frozen teacher + width projections; ``forward(batch)`` returns the loss terms.

    Args:
        student: Any spikeformers model.
        teacher: A frozen ``transformers`` encoder (``AutoModel`` for the general stage,
            ``AutoModelForSequenceClassification`` for the task stage).
        config: Weights and options.
    """

    def __init__(self, student: SpikingModel, teacher: nn.Module, config: DistillConfig):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.config = config
        t_vocab = int(teacher.config.vocab_size)
        if student.config.vocab_size != t_vocab:
            raise VocabularyMismatchError(
                f"student vocab_size {student.config.vocab_size} != teacher vocab_size {t_vocab}: "
                "the student must use the teacher's tokenizer"
            )
        d_s = student.get_input_embeddings().embedding_dim
        d_t = teacher_width(teacher)
        self.layer_map = map_layers(
            student.num_feature_layers,
            teacher_depth(teacher),
            skip_first=config.skip_first_teacher_layers,
        )
        need_proj = d_s != d_t
        self.feature_proj = nn.ModuleList(
            nn.Linear(d_s, d_t) if need_proj or config.always_project_features else nn.Identity()
            for _ in self.layer_map
        )
        self.embedding_proj = nn.Linear(d_s, d_t) if need_proj else nn.Identity()
        self.mse = MaskedMSE()
        self.attn_mse = AttentionScoreMSE()
        # One logit (regression): a softmax KL is identically 0, so match the values (MSE).
        self.kl = LogitMSE() if student.config.num_labels == 1 else SoftTargetKL(config.temperature)
        self.teacher_cache: TeacherCache | None = None
        if config.stage == "task" and config.w_logit > 0 and not hasattr(teacher, "classifier"):
            logger.warning("teacher has no classification head: the logit KL needs stored logits")
        logger.info("layer map (student layer -> teacher hidden state): %s", self.layer_map)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Student and projection parameters (never the teacher's)."""
        params = list(self.student.parameters())
        params += list(self.feature_proj.parameters()) + list(self.embedding_proj.parameters())
        return [p for p in params if p.requires_grad]

    def projection_state_dict(self) -> dict[str, torch.Tensor]:
        """The distiller-owned projections, saved apart from the student."""
        return {
            k: v
            for k, v in self.state_dict().items()
            if k.startswith(("feature_proj.", "embedding_proj."))
        }

    def train(self, mode: bool = True) -> Distiller:
        """Train the student and projections; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def cache_teacher_outputs(
        self,
        dataset: EncodedDataset,
        *,
        device: torch.device | str = "cpu",
        batch_size: int = 64,
        pad_token_id: int = 0,
        precision: str = "fp32",
    ) -> TeacherCache:
        """Run the teacher once over the (fixed) training set and keep what the loss uses.

        Sets ``self.teacher_cache``: from then on ``forward`` looks the teacher's outputs up by
        the batch's ``index`` instead of running the teacher. Batches are built from items of
        similar length (little padding); the teacher runs in eval mode (no dropout) under the
        training ``precision``'s autocast, so the stored tensors are those a live forward gives.

        Args:
            dataset: The training set the loader draws from (``index`` of each item).
            device: Where the teacher runs (the training device).
            batch_size: Examples per teacher forward.
            pad_token_id: Padding id of the tokenizer.
            precision: ``fp32``, ``bf16`` or ``fp16`` (as in training).
        """
        from spikeformers.trainer import autocast

        cfg = self.config
        items = [dataset[i] for i in range(len(dataset))]
        mapped = sorted(set(self.layer_map))
        hidden_ids = mapped if cfg.w_feat > 0 else []
        score_ids = mapped if cfg.w_attn > 0 else []
        want_logits = (
            cfg.stage == "task"
            and cfg.w_logit > 0
            and not all(it.get("soft_labels") is not None for it in items)
        )
        size = max((int(it["index"]) for it in items), default=-1) + 1
        cache = TeacherCache(depth=teacher_depth(self.teacher))
        cache.hidden = {j: [None] * size for j in hidden_ids}
        cache.scores = {j: [None] * size for j in score_ids}
        logits: list[torch.Tensor | None] = [None] * size
        device = torch.device(device)
        self.teacher.to(device).eval()
        collate = PadCollator(pad_token_id)
        order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
        for start in range(0, len(order), batch_size):
            batch = collate([items[i] for i in order[start : start + batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast(precision, device.type):
                t = teacher_forward(self.teacher, batch, attention_scores=bool(score_ids))
            lengths = batch["attention_mask"].sum(1).tolist()
            for b, (i, n) in enumerate(zip(batch["index"].tolist(), lengths, strict=True)):
                for j in hidden_ids:  # clone: a slice would keep the whole batch alive
                    cache.hidden[j][i] = t.hidden_states[j][b, :n].to("cpu", copy=True)
                for j in score_ids:
                    scores = t.attention_scores[j - 1][b, :, :n, :n]
                    cache.scores[j][i] = scores.to("cpu", copy=True)
                if want_logits and t.logits is not None:
                    logits[i] = t.logits[b].to("cpu", copy=True)
        if want_logits and any(x is not None for x in logits):
            if any(x is None for x in logits):
                raise ValueError("the teacher cache needs dataset indices 0..N-1 (EncodedDataset)")
            cache.logits = torch.stack(logits)  # (N, C)
        self.teacher_cache = cache
        logger.info(
            "teacher outputs cached for %d examples: %s%s%s (%.1f MB)",
            len(items),
            f"hidden states {hidden_ids} " if hidden_ids else "",
            f"attention scores {score_ids} " if score_ids else "",
            "logits" if cache.logits is not None else "",
            cache.nbytes() / 2**20,
        )
        return cache

    def _teacher_outputs(self, batch: dict[str, torch.Tensor], need_scores: bool) -> TeacherOutput:
        """The live teacher's outputs on ``batch``, or the cached ones when a cache is set."""
        if self.teacher_cache is None:
            return teacher_forward(self.teacher, batch, attention_scores=need_scores)
        if "index" not in batch:
            raise ValueError("the teacher cache needs each batch's `index` (PadCollator adds it)")
        mask = batch["attention_mask"]
        return self.teacher_cache.lookup(batch["index"], mask.shape[1], mask.device)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Compute the active loss terms on one collated batch.

        Args:
            batch: ``input_ids [B, L]``, ``attention_mask [B, L]``, optional ``token_type_ids``,
                ``labels [B]`` and ``teacher_logits [B, C]`` (stored soft targets of augmented
                data, used instead of the teacher's live logits); ``index [B]`` (dataset
                positions) when a teacher cache is set.

        Returns:
            ``{"loss": total, <term>: value}`` for each term in ``config.active_terms``
            (unweighted values; ``loss`` is the weighted sum).
        """
        cfg = self.config
        mask = batch["attention_mask"]
        need_hidden = cfg.w_feat > 0
        need_scores = cfg.w_attn > 0  # attention scores come with the hidden states
        out = self.student(
            batch["input_ids"], attention_mask=mask, output_hidden_states=need_hidden or need_scores
        )
        need_logits = cfg.stage == "task" and cfg.w_logit > 0 and "teacher_logits" not in batch
        t_out = (
            self._teacher_outputs(batch, need_scores)
            if (need_hidden or need_logits or need_scores)
            else None
        )
        terms: dict[str, torch.Tensor] = {}
        for name in cfg.active_terms:
            if name == "feat":
                terms["feat"] = sum(
                    self.mse(proj(h), t_out.hidden_states[j], mask)
                    for proj, h, j in zip(
                        self.feature_proj, out.hidden_states, self.layer_map, strict=True
                    )
                )
            elif name == "attn":
                terms["attn"] = self._attention_loss(out.attentions, t_out.attention_scores, mask)
            elif name == "emb":
                terms["emb"] = self._embedding_loss(batch["input_ids"])
            elif name == "ce":
                if "labels" not in batch:
                    raise ValueError("the task stage with w_ce > 0 needs labelled data")
                terms["ce"] = classification_loss(out.logits, batch["labels"])
            elif name == "kl":
                z_t = batch.get("teacher_logits", t_out.logits if t_out else None)
                if z_t is None:
                    raise ValueError("the logit KL needs a classification teacher or stored logits")
                terms["kl"] = self.kl(out.logits, z_t)
        if not terms:
            raise ValueError("every loss weight is 0: nothing to train")
        total = sum(cfg.weight(k) * v for k, v in terms.items())
        return {"loss": total, **terms}

    def _attention_loss(
        self,
        student: list[torch.Tensor],
        teacher: tuple[torch.Tensor, ...],
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Sum over mapped layers of the masked MSE of pre-softmax scores (``[B, H, L, L]``)."""
        if len(student) != len(self.layer_map):
            raise ValueError(
                f"w_attn > 0 needs the student's pre-softmax attention scores for each of its "
                f"{len(self.layer_map)} layers, got {len(student)} "
                f"({type(self.student).__name__} may not return `attentions`; set w_attn=0)"
            )
        total = 0.0
        for s, j in zip(student, self.layer_map, strict=True):
            t = teacher[j - 1]  # hidden state j is the output of teacher layer j (1-based)
            if s.shape[1] != t.shape[1] or self.config.attn_heads == "mean":
                if self.config.attn_heads == "equal":
                    raise ValueError(
                        f"attn_heads='equal' but the student has {s.shape[1]} heads and the "
                        f"teacher {t.shape[1]}; use attn_heads='mean' (or 'auto')"
                    )
                s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)  # (B, 1, L, L)
            total = total + self.attn_mse(s, t, mask)
        return total

    def _embedding_loss(self, input_ids: torch.Tensor) -> torch.Tensor:
        # MSE between the embedding rows of the tokens in this batch (not the whole V x D table:
        # projecting 30k rows every step costs more than the rest of a small student's step).
        ids = torch.unique(input_ids)
        e_s = self.embedding_proj(self.student.get_input_embeddings()(ids))
        with torch.no_grad():
            e_t = teacher_word_embeddings(self.teacher)(ids)
        return nn.functional.mse_loss(e_s, e_t)


def init_embeddings_from_teacher(student: SpikingModel, teacher: nn.Module) -> bool:
    """Copy the teacher's word embeddings into the student when vocabulary and width match.

    Returns:
        Whether the copy happened (``False``, with a log line, when the widths differ).
    """
    e_s = student.get_input_embeddings()
    e_t = teacher_word_embeddings(teacher)
    if e_s.weight.shape != e_t.weight.shape:
        logger.warning(
            "not copying teacher embeddings: student %s vs teacher %s",
            tuple(e_s.weight.shape),
            tuple(e_t.weight.shape),
        )
        return False
    with torch.no_grad():
        e_s.weight.copy_(e_t.weight)
    logger.info("initialised student word embeddings from the teacher %s", tuple(e_t.weight.shape))
    return True
