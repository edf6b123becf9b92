"""SpikeBERT-specific behaviour: attention axes, padding invariance, repeat coding."""

from __future__ import annotations

import torch

from spikeformers import create_model
from tests.conftest import tiny_overrides

VOCAB = 50


def _capture(module, store, key, pre=False):
    if pre:
        return module.register_forward_pre_hook(lambda m, inp: store.__setitem__(key, inp[0]))
    return module.register_forward_hook(lambda m, inp, out: store.__setitem__(key, out))


def test_attention_matches_a_loop_reference_over_heads_tokens_and_features():
    # Independent reference: ctx[t,b,h,i,d] = scale * sum_j (sum_e q[i,h,e] k[j,h,e]) v[j,h,d],
    # with head h owning features h*dh .. (h+1)*dh-1. A reshape that mixed tokens and features
    # (a bug the public code once had) fails this.
    model = create_model(
        "spikebert-tiny", **tiny_overrides(VOCAB), use_positions=False, mask_padding=False
    )
    attn = model.blocks[0].attn
    seen = {}
    hooks = [
        _capture(attn.q, seen, "q"),
        _capture(attn.k, seen, "k"),
        _capture(attn.v, seen, "v"),
        _capture(attn.attn_lif, seen, "ctx", pre=True),
    ]
    ids = torch.randint(5, VOCAB, (2, 5))
    model(ids)
    for h in hooks:
        h.remove()
    q, k, v, ctx = seen["q"], seen["k"], seen["v"], seen["ctx"]
    T, B, L, D = q.shape
    H = attn.num_heads
    dh = D // H
    ref = torch.zeros(T, B, H, L, dh)
    for t in range(T):
        for b in range(B):
            for h in range(H):
                f = slice(h * dh, (h + 1) * dh)
                for i in range(L):
                    for j in range(L):
                        score = (q[t, b, i, f] * k[t, b, j, f]).sum()
                        ref[t, b, h, i] += score * v[t, b, j, f]
    torch.testing.assert_close(ctx, ref * attn.scale)


def test_attention_is_permutation_equivariant_over_tokens():
    model = create_model(
        "spikebert-tiny", **tiny_overrides(VOCAB), use_positions=False, mask_padding=False
    )
    attn = model.blocks[0].attn
    x = (torch.rand(2, 2, 6, 32) > 0.5).float()
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(attn(x)[:, :, perm], attn(x[:, :, perm]))


def _padded_pair(model):
    ids = torch.randint(5, VOCAB, (1, 5))
    pad = torch.zeros(1, 4, dtype=torch.long)  # pad id 0
    short = model(ids, attention_mask=torch.ones(1, 5, dtype=torch.long)).logits
    ids_p = torch.cat([ids, pad], 1)
    mask_p = torch.cat([torch.ones(1, 5), torch.zeros(1, 4)], 1).long()
    long = model(ids_p, attention_mask=mask_p).logits
    return short, long


def test_padding_does_not_change_logits_with_masking():
    model = create_model("spikebert-tiny", **tiny_overrides(VOCAB)).eval()
    short, long = _padded_pair(model)
    torch.testing.assert_close(short, long, rtol=1e-6, atol=1e-6)


def test_faithful_variant_lets_padding_change_logits():
    # The published model is a bag of tokens that also pools [PAD]: documented, not hidden.
    model = create_model("spikebert-tiny-paper", **tiny_overrides(VOCAB)).eval()
    short, long = _padded_pair(model)
    assert not torch.allclose(short, long)


def test_repeat_coding_feeds_the_same_binary_pattern_at_every_step():
    model = create_model("spikebert-tiny", **{**tiny_overrides(VOCAB), "time_steps": 3})
    seen = {}
    hook = _capture(model.blocks[0].attn.q, seen, "x", pre=True)  # (its Linear runs once)
    model(torch.randint(5, VOCAB, (2, 4)))
    hook.remove()
    x = seen["x"]  # (T, B, L, D): block 0's input
    assert x.shape[0] == 3
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_positions_make_the_model_order_sensitive():
    model = create_model("spikebert-tiny", **tiny_overrides(VOCAB)).eval()
    ids = torch.randint(5, VOCAB, (1, 6))
    a = model(ids).logits
    b = model(ids.flip(1)).logits
    assert not torch.allclose(a, b)
