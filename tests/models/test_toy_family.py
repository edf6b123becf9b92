"""Adding a family is one file plus its registration: the toy family of ``toy_family.py``
(registered by ``tests/conftest.py``) runs through every generic path with no edit elsewhere."""

from __future__ import annotations

import json

import pytest
import torch

from spikeformers import create_model, from_pretrained, list_models
from spikeformers.energy import estimate
from spikeformers.evaluation import record_firing_rates
from tests.conftest import make_tiny_teacher, tiny_overrides
from tests.models.toy_family import ToySpikeModel

VOCAB = 50
IDS = torch.tensor([[5, 9, 13, 7], [8, 30, 0, 0]])  # pad id 0
MASK = (IDS != 0).long()


def _toy(**kw) -> ToySpikeModel:
    torch.manual_seed(0)
    return create_model("toyspike-tiny", **{**tiny_overrides(VOCAB, name="toyspike-tiny"), **kw})


def _hand_forward(model: ToySpikeModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The toy's logits computed step by step: a LIF (tau 2, hard reset to 0) by its recurrence."""
    x = model.norm(model.embeddings(ids)) * mask[:, :, None]
    v, count = torch.zeros_like(x), torch.zeros_like(x)
    for _ in range(model.config.time_steps):
        v = v + (x - v) / 2.0
        s = (v >= model.config.v_threshold).to(x.dtype)
        v = v * (1 - s)
        count += s
    rates = count / model.config.time_steps
    pooled = (rates * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
    return model.classifier(pooled)


def test_the_toy_family_is_listed_and_built_by_name():
    assert "toyspike-tiny" in list_models("toy*")
    model = _toy()
    assert isinstance(model, ToySpikeModel) and model.num_feature_layers == 1


def test_forward_matches_a_hand_computed_lif_and_backward_reaches_every_parameter():
    model = _toy()
    out = model(IDS, attention_mask=MASK, labels=torch.tensor([0, 1]), output_hidden_states=True)
    with torch.no_grad():
        torch.testing.assert_close(out.logits, _hand_forward(model, IDS, MASK))
    (out.loss + out.hidden_states[0].pow(2).mean()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_save_and_from_pretrained_round_trip(tmp_path):
    model = _toy().eval()
    model.save_pretrained(tmp_path / "toy")
    assert json.loads((tmp_path / "toy" / "config.json").read_text())["model_type"] == "toyspike"
    loaded = from_pretrained(tmp_path / "toy").eval()
    assert type(loaded) is ToySpikeModel and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(
            loaded(IDS, attention_mask=MASK).logits, model(IDS, attention_mask=MASK).logits
        )


def test_firing_rates_count_the_lif_over_real_tokens_only():
    model = _toy().eval()
    with torch.no_grad(), record_firing_rates(model) as rates:
        model(IDS, attention_mask=MASK)
    # The one spiking module, found by its SpikingModule base class; its layout from the class.
    assert list(rates.layers()) == ["lif"]
    d, t = model.config.hidden_size, model.config.time_steps
    assert rates.elements["lif"] == t * 6 * d  # 6 real tokens
    with torch.no_grad():
        x = model.norm(model.embeddings(IDS)) * MASK[:, :, None]
        spikes = model.lif(x.unsqueeze(0).expand(t, *x.shape))
    assert 0 < rates.spikes["lif"] == float(spikes.sum())  # padding never spikes


def test_energy_estimate_needs_no_family_specific_code():
    model = _toy()
    batch = {"input_ids": IDS, "attention_mask": MASK, "token_type_ids": torch.zeros_like(IDS)}
    report = estimate(model, [batch], teacher=make_tiny_teacher(VOCAB))
    assert report.uncounted_ops == {}
    assert any(r.kind == "membrane" for r in report.rows)
    assert 0 < report.energy_pj_paper <= report.energy_pj_full
    assert set(report.firing_rates) == {"lif"}


def test_reset_classifier_keeps_the_body_and_gives_the_head_of_a_fresh_model():
    model = _toy()
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("classifier")}
    torch.manual_seed(7)
    model.reset_classifier(5, ("a", "b", "c", "d", "e"))
    torch.manual_seed(7)
    cfg = tiny_overrides(VOCAB, num_labels=5, name="toyspike-tiny")
    reference = create_model("toyspike-tiny", **cfg, label_names=("a", "b", "c", "d", "e"))
    assert model.config == reference.config and model.config.num_labels == 5
    assert torch.equal(model.classifier.weight, reference.classifier.weight)
    assert model(IDS, attention_mask=MASK).logits.shape == (2, 5)
    for k, v in body.items():
        assert torch.equal(model.state_dict()[k], v), k


@pytest.mark.slow
def test_cli_distill_trains_and_saves_the_toy_family(tmp_path, tiny_teacher_dir, csv_data):
    from spikeformers.cli import main

    out = tmp_path / "toy_run"
    argv = ["distill", "--stage", "task", "--model", "toyspike-tiny"]
    argv += ["--teacher", str(tiny_teacher_dir), "--set", "hidden_size=8"]
    argv += ["--train-file", csv_data["train"], "--validation-file", csv_data["dev"]]
    argv += ["--max-length", "16", "--epochs", "1", "--batch-size", "8", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    student = from_pretrained(out)
    assert type(student) is ToySpikeModel and student.config.hidden_size == 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    assert 0.0 <= metrics["validation"]["firing_rate"] <= 1.0
