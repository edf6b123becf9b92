"""Distillation loss terms against hand computations."""

import math

import torch

from spikeformers.distill.losses import AttentionScoreMSE, MaskedMSE, SoftCrossEntropy, SoftTargetKL


def test_kl_matches_hand_computation_with_temperature():
    zs = torch.tensor([[1.0, 0.0]])
    zt = torch.tensor([[0.0, 2.0]])
    tau = 2.0
    # p_t = softmax([0, 1]) = [1/(1+e), e/(1+e)]; p_s = softmax([0.5, 0])
    pt = [1 / (1 + math.e), math.e / (1 + math.e)]
    e5 = math.exp(0.5)
    ps = [e5 / (e5 + 1), 1 / (e5 + 1)]
    kl = sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True)) * tau**2
    assert math.isclose(SoftTargetKL(tau)(zs, zt).item(), kl, rel_tol=1e-6)


def test_kl_is_zero_for_equal_logits_and_soft_ce_differs_by_teacher_entropy():
    z = torch.randn(4, 3)
    zt = torch.randn(4, 3)
    assert SoftTargetKL(1.0)(z, z).abs().item() < 1e-6
    p = zt.softmax(-1)
    entropy = -(p * p.log()).sum(-1).mean()
    torch.testing.assert_close(SoftCrossEntropy(1.0)(z, zt), SoftTargetKL(1.0)(z, zt) + entropy)


def test_masked_mse_ignores_padding():
    s = torch.zeros(1, 3, 2)
    t = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # real squared errors: 1, 1, 9, 9 -> mean 5
    assert MaskedMSE()(s, t, mask).item() == 5.0
    assert math.isclose(MaskedMSE()(s, t).item(), (1 + 1 + 9 + 9 + 2 * 100**2) / 6, rel_tol=1e-6)


def test_attention_mse_zeroes_masked_pairs():
    s = torch.zeros(1, 1, 2, 2)
    t = torch.tensor([[[[2.0, 50.0], [50.0, 50.0]]]])
    mask = torch.tensor([[1, 0]])
    # only the (0, 0) pair is real: (0 - 2)^2 / 1
    assert AttentionScoreMSE()(s, t, mask).item() == 4.0
