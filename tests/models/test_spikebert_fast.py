"""SpikeBERT's exact shortcuts and packed saved spikes, against the previous code path.

``_literal_forward`` is the model as it was computed before the shortcuts (kept here as the
reference): every Linear on all ``T`` steps, keys and values masked, ``(Q K^T) V`` with the
``L x L`` scores, everything saved in float32. Spikes and their sums are small integers, so the
forward must agree to the bit; gradients differ only by summation order (tolerance stated).
"""

from __future__ import annotations

import pytest
import torch

from spikeformers import create_model
from spikeformers.layers import packed as packed_module
from spikeformers.layers.packed import save_packed
from spikeformers.models.spikebert import SpikeBertLinear
from spikeformers.neurons.surrogate import Surrogate

VOCAB = 60
GRAD_TOL = dict(rtol=1e-4, atol=1e-6)  # float32 re-association of sums over T and tokens


def _model(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=VOCAB, num_layers=2, hidden_size=32, num_heads=4, time_steps=3,
                mlp_ratio=2.0, v_threshold=0.3, attn_v_threshold=0.25)  # fmt: skip
    return create_model("spikebert-tiny", **{**args, **kw})


def _batch(b=3, n=11):  # L = 11 > dh = 8: the reordered product runs
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (b, n), generator=g)
    mask = torch.ones(b, n, dtype=torch.long)
    mask[0, 7:] = 0
    mask[2, 4:] = 0
    return ids * mask, mask, torch.tensor([0, 1, 1])


def _spiking_linear(layer, x):
    return layer.lif(layer.norm(layer.linear(x)))


def _literal_forward(model, ids, mask):
    """Logits ``[B, C]`` of the pre-shortcut computation (``mask_padding=True`` models)."""
    cfg = model.config
    spikes = model.encode(model.embed(ids))
    x = spikes.unsqueeze(0).expand(cfg.time_steps, *spikes.shape)
    for block in model.blocks:
        a = block.attn
        q, k, v = (a._heads(_spiking_linear(m, x)) for m in (a.q, a.k, a.v))
        m = mask.to(k.dtype)[None, :, None, :, None]
        k, v = k * m, v * m
        ctx = ((q @ k.transpose(-2, -1)) @ v) * a.scale
        t, b, n, d = x.shape
        ctx = a.attn_lif(ctx).transpose(2, 3).reshape(t, b, n, d)
        x = x + _spiking_linear(a.out, ctx)
        x = x + _spiking_linear(block.mlp.fc2, _spiking_linear(block.mlp.fc1, x))
    h = model.norm(x)
    w = mask.to(h.dtype)[None, :, :, None]
    pooled = (h * w).sum(2) / w.sum(2).clamp_min(1.0)
    return model.classifier(pooled).mean(0)


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_forward_is_bitwise_the_literal_algorithm_and_gradients_agree():
    model = _model()
    ids, mask, labels = _batch()
    new = model(ids, attention_mask=mask, labels=labels)
    old_logits = _literal_forward(model, ids, mask)
    assert torch.equal(new.logits, old_logits)
    g_new = _grads(model, new.loss)
    g_old = _grads(model, torch.nn.functional.cross_entropy(old_logits, labels))
    assert g_new.keys() == g_old.keys()
    for name in g_new:
        torch.testing.assert_close(g_new[name], g_old[name], **GRAD_TOL, msg=name)
    assert any(g.abs().sum() > 0 for n, g in g_new.items() if "blocks.0.attn.q" in n)


def test_inference_gives_the_literal_logits():
    model = _model().eval()
    ids, mask, _ = _batch()
    with torch.no_grad():
        want = _literal_forward(model, ids, mask)
    with torch.inference_mode():
        got = model(ids, attention_mask=mask).logits
    assert torch.equal(got, want)
    assert torch.equal(model(ids, attention_mask=mask).logits.detach(), want)  # autograd on


def test_a_short_training_run_gives_the_literal_algorithms_loss_curve():
    ids, mask, labels = _batch()
    curves = []
    for literal in (False, True):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        losses = []
        for _ in range(5):
            logits = (
                _literal_forward(model, ids, mask)
                if literal
                else model(ids, attention_mask=mask).logits
            )
            loss = torch.nn.functional.cross_entropy(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves.append(losses)
    torch.testing.assert_close(curves[0], curves[1], rtol=1e-5, atol=0.0)


def test_small_dh_keeps_the_scores_first_order():
    # L = 3 <= dh = 8: (Q K^T) V is the cheaper order and stays bitwise the literal path.
    model = _model()
    ids, mask, labels = _batch(n=3)
    mask[:] = 1
    assert torch.equal(model(ids, attention_mask=mask).logits, _literal_forward(model, ids, mask))


def _saved_bytes(fn, monkeypatch) -> tuple[int, dict]:
    """Bytes autograd saves while ``fn`` runs (distinct storages), in total and per dtype.

    Tensors saved inside :func:`save_packed` reach its hooks only (the innermost hooks win), so
    its pack hook is wrapped to report what it stores.
    """
    seen, per_dtype = {}, {}

    def record(t):
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen[key] = t.untyped_storage().nbytes()
            per_dtype[t.dtype] = per_dtype.get(t.dtype, 0) + seen[key]

    def pack_hook(t):
        record(t)
        return t

    original = packed_module._Packer.pack

    def wrapped(self, t):
        out = original(self, t)
        record(out if isinstance(out, torch.Tensor) else out[1])
        return out

    monkeypatch.setattr(packed_module._Packer, "pack", wrapped)
    with torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
        fn()
    return sum(seen.values()), per_dtype


@pytest.mark.parametrize("mask_padding", [True, False])
def test_packed_saves_give_bitwise_equal_gradients(mask_padding):
    ids, mask, labels = _batch()
    grads = []
    for pack in (True, False):
        model = _model(mask_padding=mask_padding)
        block = model.blocks[1]
        x = torch.randint(0, 3, (3, 3, 11, 32)).float().requires_grad_()  # residual stream
        out = block(x, mask if mask_padding else None, pack=pack)
        out.square().sum().backward()
        grads.append([x.grad, *(p.grad for p in block.parameters())])
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


def test_packing_stores_the_spike_operands_as_bytes(monkeypatch):
    model = _model()
    block = model.blocks[1]
    x = torch.randint(0, 3, (3, 3, 11, 32)).float().requires_grad_()
    mask = _batch()[1]
    full, _ = _saved_bytes(lambda: block(x, mask, pack=False), monkeypatch)
    packed, per_dtype = _saved_bytes(lambda: block(x, mask, pack=True), monkeypatch)
    n = x.numel()  # one [T, B, L, D] tensor
    # Packed: the block input, Q, K, V, the attention spikes, the MLP input and its hidden
    # spikes (width 2 D).
    assert per_dtype[torch.uint8] == n * (1 + 3 + 1 + 1 + 2)
    assert packed < 0.8 * full


def test_model_packs_only_when_every_spike_function_spikes(monkeypatch):
    model = _model(memory_saving="on")
    ids, mask, labels = _batch()
    _, per_dtype = _saved_bytes(lambda: model(ids, attention_mask=mask, labels=labels), monkeypatch)
    assert per_dtype.get(torch.uint8, 0) > 0
    for m in model.modules():
        if isinstance(m, Surrogate):
            m.spiking = False  # analog relaxation: activations are not integers
    _, per_dtype = _saved_bytes(lambda: model(ids, attention_mask=mask, labels=labels), monkeypatch)
    assert torch.uint8 not in per_dtype


@pytest.mark.parametrize("family", ["spikebert-tiny", "snnbert-tiny"])
def test_memory_saving_switch_changes_bytes_not_numbers(family, monkeypatch):
    # "auto" on the CPU = "off": spike operands saved as floats, nothing recomputed; "on" saves
    # fewer bytes; loss and every gradient are bit for bit the same in all modes.
    ids, mask, labels = _batch()
    runs = {}
    for mode in ("auto", "off", "on"):
        torch.manual_seed(0)
        model = create_model(family, vocab_size=VOCAB, num_layers=2, hidden_size=32, num_heads=4,
                             memory_saving=mode)  # fmt: skip
        out = {}

        def step(model=model, out=out):
            out["loss"] = model(ids, attention_mask=mask, labels=labels).loss
            return out["loss"]

        total, per_dtype = _saved_bytes(step, monkeypatch)
        out["loss"].backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        runs[mode] = (out["loss"].detach(), grads, total, per_dtype)
    assert runs["auto"][2] == runs["off"][2]  # saved bytes: the same path
    assert runs["on"][2] < 0.8 * runs["off"][2]
    for mode in ("auto", "on"):
        assert torch.equal(runs[mode][0], runs["off"][0])
        assert runs[mode][1].keys() == runs["off"][1].keys()
        for name, g in runs["off"][1].items():
            assert torch.equal(runs[mode][1][name], g), (mode, name)


def test_memory_saving_is_checked():
    with pytest.raises(ValueError, match="memory_saving"):
        _model(memory_saving="yes")


def test_save_packed_restores_strided_views_exactly():
    s = (torch.rand(4, 6, 5) > 0.5).float().requires_grad_()
    w = torch.randn(4, 5, 3, requires_grad=True)
    grads = []
    for pack in (True, False):
        s.grad = w.grad = None
        with save_packed(s, enabled=pack):
            y = s.transpose(1, 2).transpose(1, 2) @ w + (s.transpose(-2, -1)[..., :2, :] ** 1).sum()
        y.sum().backward()
        grads.append((s.grad.clone(), w.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def test_gradient_checkpointing_gives_bitwise_equal_gradients_and_saves_less(monkeypatch):
    ids, mask, labels = _batch()
    grads, saved = [], []
    for ckpt in (False, True):
        model = _model()
        if ckpt:
            model.gradient_checkpointing_enable()
        total, _ = _saved_bytes(
            lambda m=model: m(ids, attention_mask=mask, labels=labels), monkeypatch
        )
        saved.append(total)
        grads.append(_grads(model, model(ids, attention_mask=mask, labels=labels).loss))
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name
    assert saved[1] < 0.5 * saved[0]


def test_gradient_checkpointing_flag_reaches_thetrain_config():
    from spikeformers.cli import build_parser
    from spikeformers.cli.options import train_config

    for base in (
        ["train", "--model", "spikebert-tiny", "--task", "sst2", "--out", "x"],
        ["distill", "--stage", "task", "--task", "sst2", "--out", "x"],
    ):
        args = build_parser().parse_args([*base, "--gradient-checkpointing"])
        assert train_config(args).gradient_checkpointing
        assert not train_config(build_parser().parse_args(base)).gradient_checkpointing


def test_families_without_gradient_checkpointing_say_so():
    model = create_model("spikingbert-mini", vocab_size=VOCAB, num_layers=1, hidden_size=24)
    if type(model).supports_gradient_checkpointing:
        pytest.skip("SpikingBERT supports it")
    with pytest.raises(ValueError, match="does not support gradient checkpointing"):
        model.gradient_checkpointing_enable()


def test_recomputed_norm_and_lif_give_bitwise_equal_gradients():
    ids, mask, labels = _batch()
    grads = []
    for recompute in (True, False):
        model = _model()
        for m in model.modules():
            if isinstance(m, SpikeBertLinear):
                m.recompute = recompute
        grads.append(_grads(model, model(ids, attention_mask=mask, labels=labels).loss))
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name
