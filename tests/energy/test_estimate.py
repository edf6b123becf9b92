"""estimate() on every registered family and on a BERT teacher (closed-form MACs)."""

from __future__ import annotations

import json

import pytest
import torch

from spikeformers import create_model, list_models
from spikeformers.energy import estimate
from spikeformers.energy.estimate import BOOKING_RULE
from tests.conftest import make_tiny_teacher, tiny_overrides

VOCAB = 50
B, L = 2, 7


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, 5:] = 0  # the second sequence has 5 real tokens and 2 pads
    ids[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def tiny_model(name: str):
    """``create_model(name, **tiny_overrides)`` with the overrides the variant's family takes."""
    return create_model(name, **tiny_overrides(VOCAB, name=name))


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_gets_a_report_without_model_specific_code(name):
    model = tiny_model(name)
    report = estimate(model, [_batch(0), _batch(1)], teacher=make_tiny_teacher(VOCAB))
    assert report.num_samples == 2 * B
    assert report.mean_tokens == pytest.approx((7 + 5) / 2)
    assert report.mean_positions == L
    assert report.uncounted_ops == {}  # every aten op the model ran has a cost rule
    assert report.firing_rates and all(0.0 <= r <= 1.0 for r in report.firing_rates.values())
    assert any(r.kind == "membrane" for r in report.rows)
    assert 0 < report.energy_pj_paper <= report.energy_pj_full
    assert report.teacher is not None and report.ratio_paper is not None
    assert report.ratio_paper == pytest.approx(
        report.energy_pj_paper / report.teacher.energy_pj_paper
    )
    d = json.loads(json.dumps(report.to_dict()))
    assert d["totals"]["energy_pj_paper"] == pytest.approx(report.energy_pj_paper)
    assert d["constants"]["name"] == "45nm" and d["teacher"]["model"]
    text = report.table()
    assert "paper convention" in text and "Horowitz" in text and "student / teacher" in text
    # The booking rule is stated wherever figures are printed or stored.
    assert f"booking rule: {BOOKING_RULE}" in text and d["conventions"]["rule"] == BOOKING_RULE
    assert "real-valued input is priced as MACs" in BOOKING_RULE


def test_spikebert_first_layer_counts_t_times_the_per_step_macs():
    t_steps, d = 2, 32
    model = create_model("spikebert-tiny", **tiny_overrides(VOCAB))  # T = 2, D = 32
    batch = _batch()
    with torch.no_grad():
        spikes = model.encode(model.embed(batch["input_ids"]))  # [B, L, D], repeated T times
        spikes = spikes * batch["attention_mask"][:, :, None]  # padded positions never spike
    report = estimate(model, [batch])
    q = [r for r in report.rows if r.name == "blocks.0.attn.q.linear" and r.kind == "matmul"]
    (q,) = q
    # per sample: T * L * D * D = 2 * 7 * 32 * 32 MACs; ACs = T * fr * MACs_per_step.
    assert q.macs == t_steps * L * d * d
    fr = float(spikes.mean())
    assert q.input_rate == pytest.approx(fr)
    assert q.acs == pytest.approx(t_steps * fr * L * d * d)


def test_teacher_macs_match_the_bert_closed_form():
    d, inter, layers, labels = 32, 128, 2, 2  # make_tiny_teacher: hidden 32, I = 4*32, 2 layers
    teacher = make_tiny_teacher(VOCAB)
    report = estimate(teacher, [_batch()])
    # Per layer and sequence of L positions (padding included):
    #   Q, K, V, O projections 4*L*D^2 + scores Q K^T and A V 2*L^2*D + FFN 2*L*D*I.
    per_layer = 4 * L * d * d + 2 * L * L * d + 2 * L * d * inter
    for i in range(layers):
        macs = sum(r.macs for r in report.rows if r.name.startswith(f"bert.encoder.layer.{i}."))
        assert macs == per_layer
    # Plus the pooler (CLS token only, D^2) and the classifier (D * C).
    total = layers * per_layer + d * d + d * labels
    assert report.macs == total
    assert report.acs == 0 and all(r.input_kind in ("", "real") for r in report.rows)
    assert report.energy_pj_paper == pytest.approx(4.6 * total)
    assert report.energy_pj_full > report.energy_pj_paper  # LayerNorm, softmax, GELU, adds
    kinds = {r.kind for r in report.rows}
    assert {"norm", "softmax", "activation", "embedding"} <= kinds
    assert report.uncounted_ops == {}
    assert report.firing_rates == {}


def test_max_batches_and_exclude():
    model = create_model("spikebert-tiny", **tiny_overrides(VOCAB))
    full = estimate(model, [_batch(0), _batch(1)], max_batches=1)
    assert full.num_samples == B
    # (SpikeBERT's distillation transforms no longer run at inference; exclude the head instead)
    cut = estimate(model, [_batch(0)], exclude=["classifier"])
    assert cut.excluded_energy_pj_paper > 0
    assert cut.energy_pj_paper == pytest.approx(full.energy_pj_paper - cut.excluded_energy_pj_paper)
    assert all(r.excluded == r.name.startswith("classifier") for r in cut.rows)
    assert not any(r.name.startswith("transforms.") for r in full.rows)


def test_estimate_restores_train_mode():
    model = create_model("spikebert-tiny", **tiny_overrides(VOCAB)).train()
    estimate(model, [_batch()])
    assert model.training
