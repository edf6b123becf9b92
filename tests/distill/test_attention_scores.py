"""Pre-softmax attention-score distillation: teacher hooks, the ``w_attn`` term, ``W_td``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeformers.models.spikingbert  # noqa: F401  (registers the family returning scores)
from spikeformers import create_model
from spikeformers.distill.distiller import DistillConfig, Distiller
from spikeformers.distill.losses import AttentionScoreMSE
from spikeformers.distill.teacher import TeacherError, teacher_forward
from tests.conftest import make_tiny_teacher, tiny_overrides

VOCAB = 40


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (3, 6), generator=g)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])
    return {"input_ids": ids * mask, "attention_mask": mask, "labels": torch.tensor([0, 1, 1])}


def test_teacher_scores_reproduce_the_post_softmax_attentions():
    teacher = make_tiny_teacher(VOCAB, num_labels=None, layers=3)
    batch = _batch()
    out = teacher_forward(teacher, batch, attentions=True, attention_scores=True)
    assert len(out.attention_scores) == 3
    bias = (1.0 - batch["attention_mask"].float())[:, None, None, :] * torch.finfo(
        torch.float32
    ).min
    for scores, probs in zip(out.attention_scores, out.attentions, strict=True):
        assert scores.shape == (3, 4, 6, 6)
        torch.testing.assert_close((scores + bias).softmax(-1), probs, rtol=1e-5, atol=1e-6)


def test_teacher_scores_leave_no_hooks_behind():
    teacher = make_tiny_teacher(VOCAB, num_labels=2)
    teacher_forward(teacher, _batch(), attention_scores=True)
    qk = [m for n, m in teacher.named_modules() if n.endswith(("self.query", "self.key"))]
    assert len(qk) == 4 and all(not m._forward_hooks for m in qk)
    assert teacher_forward(teacher, _batch()).attention_scores == ()


def test_teacher_without_bert_query_key_modules_fails_clearly():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"num_hidden_layers": 1})()
            self.q_lin = nn.Linear(4, 4)

    from spikeformers.distill.teacher import attention_score_hooks

    with (
        pytest.raises(TeacherError, match=r"attention\.self\.query"),
        attention_score_hooks(Odd(), []),
    ):
        pass


def _distiller(student_heads=4, teacher_layers=4, **cfg):
    teacher = make_tiny_teacher(VOCAB, layers=teacher_layers)
    overrides = {**tiny_overrides(VOCAB), "num_heads": student_heads, "time_steps": 4}
    student = create_model("spikingbert-tiny", **overrides)
    return Distiller(student, teacher, DistillConfig(stage="task", **cfg))


def test_attention_term_is_the_masked_mse_of_mapped_layers():
    d = _distiller(w_attn=1.0, w_feat=0.0, w_emb=0.0, w_ce=0.0, w_logit=0.0)
    assert d.layer_map == [2, 4]  # student layer i meets teacher layer map[i] (1-based)
    batch = _batch()
    terms = d(batch)
    with torch.no_grad():
        out = d.student(
            batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        t = teacher_forward(d.teacher, batch, attention_scores=True).attention_scores
    mse = AttentionScoreMSE()
    ref = sum(
        mse(s, t[j - 1], batch["attention_mask"])
        for s, j in zip(out.attentions, [2, 4], strict=True)
    )
    torch.testing.assert_close(terms["attn"], ref)
    assert set(terms) == {"loss", "attn"}


def test_head_counts_that_differ_are_averaged_or_rejected():
    batch = _batch()
    terms = _distiller(student_heads=2, w_attn=1.0)(batch)  # teacher has 4 heads
    assert torch.isfinite(terms["attn"])
    with pytest.raises(ValueError, match="attn_heads='equal'"):
        _distiller(student_heads=2, w_attn=1.0, attn_heads="equal")(batch)


def test_w_attn_defaults_to_zero_so_existing_stages_are_unchanged():
    assert DistillConfig().active_terms == ("emb", "feat", "ce", "kl")
    assert DistillConfig.for_stage("general").active_terms == ("feat",)
    assert "attn" in DistillConfig.for_stage("general", w_attn=1.0).active_terms
    with pytest.raises(ValueError, match="w_attn"):
        DistillConfig(w_attn=-1.0)


def test_student_without_attention_scores_is_rejected_by_name():
    teacher = make_tiny_teacher(VOCAB)
    student = create_model("spikebert-tiny", **tiny_overrides(VOCAB))
    d = Distiller(student, teacher, DistillConfig(w_attn=1.0))
    with pytest.raises(ValueError, match="set w_attn=0"):
        d(_batch())


def test_always_project_features_learns_w_td_even_when_widths_match():
    plain = _distiller()
    assert all(isinstance(p, nn.Identity) for p in plain.feature_proj)
    projected = _distiller(always_project_features=True)
    assert all(isinstance(p, nn.Linear) for p in projected.feature_proj)
    assert isinstance(projected.embedding_proj, nn.Identity)  # embeddings: widths match
    names = set(projected.projection_state_dict())
    assert {"feature_proj.0.weight", "feature_proj.1.weight"} <= names
