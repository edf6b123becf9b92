"""Checks every registered variant passes, parametrized over ``list_models()`` (timm style)."""

from __future__ import annotations

import pytest
import torch

from spikeformers import create_model, from_pretrained, list_models
from spikeformers.models.base import CheckpointError
from tests.conftest import tiny_overrides

VOCAB = 50


def _batch(b=3, n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (b, n), generator=g)
    mask = torch.ones(b, n, dtype=torch.long)
    return ids, mask


@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_and_binary_spikes(name):
    model = create_model(name, **tiny_overrides(VOCAB, num_labels=3, name=name))
    ids, mask = _batch()
    out = model(ids, attention_mask=mask, labels=torch.tensor([0, 1, 2]), output_hidden_states=True)
    assert out.logits.shape == (3, 3)
    assert out.loss is not None and out.loss.ndim == 0
    assert len(out.hidden_states) == model.num_feature_layers
    assert all(h.shape[:2] == (3, 7) for h in out.hidden_states)


@pytest.mark.parametrize("name", list_models())
def test_backward_reaches_every_parameter(name):
    model = create_model(name, **tiny_overrides(VOCAB, name=name))
    ids, mask = _batch(b=4, n=6)
    out = model(
        ids, attention_mask=mask, labels=torch.tensor([0, 1, 0, 1]), output_hidden_states=True
    )
    loss = out.loss + sum(h.pow(2).mean() for h in out.hidden_states)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"


@pytest.mark.parametrize("name", list_models())
def test_save_load_round_trip_gives_identical_logits(name, tmp_path):
    model = create_model(name, **tiny_overrides(VOCAB, name=name)).eval()
    ids, mask = _batch()
    model.save_pretrained(tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m").eval()
    assert type(loaded) is type(model) and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(ids, attention_mask=mask).logits,
            model(ids, attention_mask=mask).logits,
            rtol=0,
            atol=0,
        )


@pytest.mark.parametrize("name", list_models())
def test_train_and_eval_mode_agree_without_dropout(name):
    model = create_model(name, **tiny_overrides(VOCAB, name=name))
    ids, mask = _batch()
    with torch.no_grad():
        a = model.train()(ids, attention_mask=mask).logits
        b = model.eval()(ids, attention_mask=mask).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_strict_loading_names_missing_and_unexpected_keys(tmp_path):
    small = create_model("spikebert-tiny", **tiny_overrides(VOCAB))
    small.save_pretrained(tmp_path / "m")
    # A deeper model cannot silently take the 2-layer checkpoint (the public code's strict=False).
    with pytest.raises(CheckpointError, match=r"missing keys .*blocks\.2\."):
        from_pretrained(tmp_path / "m", num_layers=3)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        from_pretrained(tmp_path / "m", hidden_size=64)


def test_truncated_checkpoint_fails_loudly(tmp_path):
    model = create_model("spikebert-tiny", **tiny_overrides(VOCAB))
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        from_pretrained(tmp_path / "m")


def test_unknown_config_key_is_rejected_with_a_hint():
    with pytest.raises(ValueError, match="did you mean 'time_steps'"):
        create_model("spikebert-tiny", time_step=4)


def test_unknown_model_name_suggests_close_matches():
    with pytest.raises(ValueError, match="spikebert-tiny"):
        create_model("spikebert-tinny")


def test_same_seed_same_model():
    torch.manual_seed(3)
    a = create_model("spikebert-tiny", **tiny_overrides(VOCAB))
    torch.manual_seed(3)
    b = create_model("spikebert-tiny", **tiny_overrides(VOCAB))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(p, q), n
