"""SNN-BERT: individual coding, padding invariance, neuron choice, save/load, distillation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import spikeformers.models.snnbert as snnbert_module  # registers the snnbert-* variants
from spikeformers import create_model, from_pretrained
from spikeformers.models.snnbert import SnnBertConfig, SnnBertForSequenceClassification, TokenLIF
from spikeformers.neurons.bpsn import BPSN
from tests.conftest import make_tiny_teacher, tiny_overrides

VOCAB = 50
NEURONS = ("bpsn", "bpsn-passes", "lif")


def tiny(neuron: str = "bpsn", **kw) -> SnnBertForSequenceClassification:
    """A tiny SNN-BERT (HF test size): ``tests.conftest.tiny_overrides`` for its config.

    ``neuron="bpsn-passes"`` is the BPSN with ``reset_mode="passes"`` (the earlier neuron).
    """
    cfg = tiny_overrides(VOCAB, name="snnbert-tiny")
    if neuron == "bpsn-passes":
        neuron, kw = "bpsn", {"reset_mode": "passes", **kw}
    return create_model("snnbert-tiny", **{**cfg, "neuron": neuron, **kw})


def _pad(ids: torch.Tensor, n: int, *, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``ids [B, L]`` with ``n`` pad tokens (id 0); returns ``(ids, mask)``."""
    b, length = ids.shape
    pad = torch.zeros(b, n, dtype=ids.dtype)
    ones = torch.ones(b, length, dtype=torch.long)
    zeros = torch.zeros(b, n, dtype=torch.long)
    if left:
        return torch.cat([pad, ids], 1), torch.cat([zeros, ones], 1)
    return torch.cat([ids, pad], 1), torch.cat([ones, zeros], 1)


def _neurons(model):
    return [m for m in model.modules() if isinstance(m, (BPSN, TokenLIF))]


@pytest.mark.parametrize("neuron", NEURONS)
def test_padding_changes_no_real_token_and_not_the_logits(neuron):
    model = tiny(neuron).eval()
    ids = torch.randint(5, VOCAB, (2, 6))
    with torch.no_grad():
        ref = model(ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        for left, n in ((False, 3), (False, 10), (True, 4)):
            ids_p, mask_p = _pad(ids, n, left=left)
            out = model(ids_p, attention_mask=mask_p, output_hidden_states=True)
            real = slice(n, None) if left else slice(0, 6)
            torch.testing.assert_close(out.logits, ref.logits, rtol=1e-6, atol=1e-6)
            for h, h_ref in zip(out.hidden_states, ref.hidden_states, strict=True):
                torch.testing.assert_close(h[:, real], h_ref, rtol=1e-5, atol=1e-5)
            for a, a_ref in zip(out.attentions, ref.attentions, strict=True):
                assert torch.equal(a[:, :, real, real], a_ref)  # integer counts: exact


@pytest.mark.parametrize("neuron", NEURONS)
def test_variable_lengths_in_one_batch_match_each_sequence_alone(neuron):
    model = tiny(neuron).eval()
    lengths = (3, 7, 5)
    seqs = [torch.randint(5, VOCAB, (1, n)) for n in lengths]
    ids = torch.zeros(3, 7, dtype=torch.long)
    mask = torch.zeros(3, 7, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : s.shape[1]], mask[i, : s.shape[1]] = s[0], 1
    spikes = []
    hooks = [m.register_forward_hook(lambda m, i, o: spikes.append(o)) for m in _neurons(model)]
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
    for h in hooks:
        h.remove()
    pad = (mask == 0)[:, :, None]
    assert spikes and all(not s.masked_select(pad).any() for s in spikes), "padding spiked"
    with torch.no_grad():
        alone = torch.cat([model(s).logits for s in seqs])
    torch.testing.assert_close(batched, alone, rtol=1e-6, atol=1e-6)


def test_lif_is_causal_over_tokens_and_bpsn_sees_both_directions():
    # Individual coding: the neuron's time axis is the token axis. Changing the last token can
    # change an earlier token's spikes only through a bidirectional (BPSN) membrane.
    ids = torch.randint(5, VOCAB, (4, 8))
    later = ids.clone()
    later[:, -1] = (later[:, -1] + 7) % (VOCAB - 5) + 5
    changed = {}
    for neuron in NEURONS:
        model = tiny(neuron, encoder="neuron").eval()
        with torch.no_grad():
            a = model.encode(model.embed(ids), None)  # (B, L, D) spikes
            b = model.encode(model.embed(later), None)
        changed[neuron] = not torch.equal(a[:, :-1], b[:, :-1])
    assert changed == {"bpsn": True, "bpsn-passes": True, "lif": False}


def test_spike_encoding_feeds_each_token_once_as_binary_spikes():
    model = tiny()
    seen = {}
    hook = model.blocks[0].attn.q.linear.register_forward_pre_hook(
        lambda m, inp: seen.__setitem__("x", inp[0])
    )
    model(torch.randint(5, VOCAB, (2, 5)))
    hook.remove()
    assert seen["x"].shape == (2, 5, 32)  # [B, L, D]: no separate time axis
    assert set(seen["x"].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("encoder", ["neuron", "heaviside"])
def test_attention_equals_the_qk_then_v_order(encoder):
    model = tiny(encoder=encoder)
    attn = model.blocks[0].attn
    seen = {}
    hooks = [
        attn.q.register_forward_hook(lambda m, i, o: seen.__setitem__("q", o)),
        attn.k.register_forward_hook(lambda m, i, o: seen.__setitem__("k", o)),
        attn.v.register_forward_hook(lambda m, i, o: seen.__setitem__("v", o)),
        attn.attn_neuron.register_forward_pre_hook(lambda m, i: seen.__setitem__("ctx", i[0])),
    ]
    model(torch.randint(5, VOCAB, (2, 9)))
    for h in hooks:
        h.remove()
    heads = attn._heads
    q, k, v = heads(seen["q"]), heads(seen["k"]), heads(seen["v"])  # (B, H, L, dh)
    ref = ((q @ k.transpose(-2, -1)) @ v) * attn.scale  # SpikeBERT's order
    assert seen["ctx"].any(), "attention silent: the test would be vacuous"
    assert torch.equal(seen["ctx"], ref.transpose(1, 2).reshape(2, 9, 32))


@pytest.mark.parametrize("neuron", NEURONS)
def test_backward_reaches_every_parameter(neuron):
    model = tiny(neuron)
    ids, mask = _pad(torch.randint(5, VOCAB, (3, 5)), 2)
    out = model(ids, attention_mask=mask, labels=torch.tensor([0, 1, 0]), output_hidden_states=True)
    (out.loss + sum(h.pow(2).mean() for h in out.hidden_states)).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert len(out.hidden_states) == model.num_feature_layers == 2


def test_distillation_features_only_when_asked_and_scores_zero_at_padding():
    model = tiny()
    ids, mask = _pad(torch.randint(5, VOCAB, (2, 5)), 3)
    plain = model(ids, attention_mask=mask)
    assert plain.hidden_states == [] and plain.attentions == []
    out = model(ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)
    assert [tuple(a.shape) for a in out.attentions] == [(2, 4, 8, 8)] * 2  # [B, H, L, L]
    for a in out.attentions:
        assert not a[:, :, 5:].any() and not a[:, :, :, 5:].any()
        counts = a / model.blocks[0].attn.scale
        assert torch.equal(counts, counts.round())  # spike coincidence counts


@pytest.mark.parametrize("neuron", NEURONS)
def test_save_load_round_trip_gives_identical_logits(neuron, tmp_path):
    model = tiny(neuron).eval()
    ids, mask = _pad(torch.randint(5, VOCAB, (2, 5)), 3)
    model.save_pretrained(tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m").eval()
    assert type(loaded) is SnnBertForSequenceClassification and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(ids, attention_mask=mask).logits,
            model(ids, attention_mask=mask).logits,
            rtol=0,
            atol=0,
        )


def test_registered_variants_and_config_validation():
    lif = create_model("snnbert-lif", vocab_size=VOCAB, num_layers=1)
    assert lif.config.neuron == "lif" and lif.config.hidden_size == 384
    assert _neurons(lif) and all(isinstance(m, TokenLIF) for m in _neurons(lif))
    mini_cfg = snnbert_module._SIZES["mini"]
    assert mini_cfg == (4, 384, 6)  # the MiniLM teacher's width
    assert dataclasses.fields(SnnBertConfig)  # frozen dataclass with documented fields
    with pytest.raises(ValueError, match="unknown SnnBertConfig field 'time_steps'"):
        SnnBertConfig.from_dict({"time_steps": 4})  # individual coding: T is the length
    with pytest.raises(ValueError, match="neuron must be one of"):
        SnnBertConfig(neuron="psn")
    with pytest.raises(ValueError, match="not divisible"):
        SnnBertConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tiny()(torch.randint(5, VOCAB, (1, 65)))


def test_distillation_steps_lower_the_loss(tokenizer):
    from spikeformers.distill.distiller import DistillConfig, Distiller

    teacher = make_tiny_teacher(len(tokenizer))
    torch.manual_seed(0)
    student = tiny(vocab_size=len(tokenizer))  # width 32, as the teacher: no projections
    # All five terms, the attention-score MSE included (student and teacher both have 4 heads).
    distiller = Distiller(student, teacher, DistillConfig(w_attn=0.1))
    texts = [
        "the movie was great fun",
        "a dull and boring mess",
        "not very good",
        "brilliant , moving story",
        "the plot is awful",
        "it was funny",
    ]
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    batch["labels"] = torch.tensor([1, 0, 0, 1, 0, 1])
    opt = torch.optim.AdamW(distiller.trainable_parameters(), lr=3e-3)
    distiller.train()
    losses = []
    for _ in range(8):
        loss = distiller(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], losses


def test_bpsn_variants_use_the_graded_neuron_by_default():
    assert SnnBertConfig().reset_mode == "graded" and SnnBertConfig().reset_passes is None
    for name in ("snnbert-tiny", "snnbert-mini", "snnbert-small"):
        model = create_model(name, vocab_size=VOCAB, num_layers=1)
        assert model.config.reset_mode == "graded", name
        bpsns = [m for m in model.modules() if isinstance(m, BPSN)]
        assert bpsns and all(m.reset_mode == "graded" for m in bpsns), name
    model = tiny("bpsn-passes")
    assert model.config.reset_passes == 1
    assert all(m.reset_mode == "passes" for m in model.modules() if isinstance(m, BPSN))
    with pytest.raises(ValueError, match="applies only to reset_mode='passes'"):
        SnnBertConfig(reset_mode="graded", reset_passes=1)
    with pytest.raises(ValueError, match="reset_mode must be one of"):
        SnnBertConfig(reset_mode="sigma-delta")


def test_a_config_saved_before_reset_mode_existed_loads_the_passes_neuron(tmp_path):
    # Every config.json written before the field existed lists reset_passes and no reset_mode;
    # such a model must load with the neuron it was trained with (the passes one), bit for bit.
    import json

    torch.manual_seed(0)
    old = tiny("bpsn-passes").eval()
    old.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    cfg = json.loads(path.read_text())
    del cfg["reset_mode"]
    assert cfg["reset_passes"] == 1  # as the older code wrote it
    path.write_text(json.dumps(cfg))
    loaded = from_pretrained(tmp_path / "m").eval()
    assert loaded.config.reset_mode == "passes" and loaded.config == old.config
    ids, mask = _pad(torch.randint(5, VOCAB, (2, 9)), 3)
    with torch.no_grad():
        logits = loaded(ids, attention_mask=mask).logits
        assert torch.equal(logits, old(ids, attention_mask=mask).logits)
        # ... and the same weights under the graded neuron would answer differently.
        graded = SnnBertForSequenceClassification(
            dataclasses.replace(old.config, reset_mode="graded", reset_passes=None)
        )
        graded.load_state_dict(old.state_dict())
        assert not torch.equal(graded.eval()(ids, attention_mask=mask).logits, logits)
