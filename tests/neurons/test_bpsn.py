"""Tests for the Bidirectional Parallel Spiking Neuron (BPSN, SNN-BERT's neuron)."""

from __future__ import annotations

import math

import pytest
import torch

from spikeformers.neurons.bpsn import (
    BPSN,
    bpsn_graded,
    bpsn_parallel,
    bpsn_sequential_reference,
    lif_kernel,
)
from spikeformers.neurons.surrogate import ATan, Sigmoid


def _random_bpsn(
    d: int,
    *,
    kernel_size: int = 4,
    reset_mode: str = "passes",
    reset_passes: int = 1,
    detach_reset: bool = False,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> BPSN:
    """A BPSN whose parameters are moved off their (channel-symmetric) initial values.

    ``reset_mode="graded"`` ignores ``reset_passes`` and ``detach_reset`` (it has neither).
    """
    gen = torch.Generator().manual_seed(seed)
    if reset_mode == "graded":
        neuron = BPSN(d, kernel_size=kernel_size, reset_mode="graded")
    else:
        neuron = BPSN(
            d,
            kernel_size=kernel_size,
            reset_mode="passes",
            reset_passes=reset_passes,
            detach_reset=detach_reset,
        )
    neuron = neuron.to(dtype)
    with torch.no_grad():
        for p in (neuron.weight_fwd, neuron.weight_bwd):
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=dtype))
        neuron.fusion_logit.copy_(torch.randn(d, generator=gen, dtype=dtype))
        neuron.threshold.copy_(0.2 + 0.4 * torch.rand(d, generator=gen, dtype=dtype))
        neuron.reset_raw.copy_(0.5 * torch.randn(d, generator=gen, dtype=dtype))
    return neuron


def _inputs(b: int, length: int, d: int, *, dtype: torch.dtype, seed: int = 1):
    """Random inputs and a mask mixing right padding, a full row and a row with holes."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, d, generator=gen, dtype=dtype)
    lengths = torch.randint(1, length + 1, (b,), generator=gen)
    lengths[0] = length
    mask = (torch.arange(length)[None, :] < lengths[:, None]).to(dtype)
    mask[-1] = (torch.rand(length, generator=gen) < 0.7).to(dtype)  # not right-padded
    return x, mask


def _grads(neuron: BPSN, x: torch.Tensor, spikes: torch.Tensor, weight: torch.Tensor):
    params = [p for _, p in neuron.named_parameters()]
    return torch.autograd.grad((spikes * weight).sum(), [x, *params], allow_unused=True)


@pytest.mark.parametrize(
    ("reset_passes", "detach_reset", "kernel_size", "length"),
    [
        (0, False, 4, 11),
        (1, False, 4, 11),
        (1, True, 4, 11),
        (2, False, 4, 11),
        (2, True, 4, 11),
        (3, False, 3, 11),
        (1, True, 8, 30),  # the model's kernel size, taps fully inside the sequence
        (1, False, 8, 5),  # a sequence shorter than the kernel
    ],
)
def test_bpsn_parallel_matches_sequential_spikes_and_gradients(
    reset_passes, detach_reset, kernel_size, length
):
    d = 5
    neuron = _random_bpsn(
        d, kernel_size=kernel_size, reset_passes=reset_passes, detach_reset=detach_reset
    )
    x, mask = _inputs(4, length, d, dtype=torch.float64)
    x.requires_grad_(True)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)

    s_par = neuron(x, mask)
    s_seq = neuron.forward_sequential(x, mask)
    assert torch.equal(s_par, s_seq)
    rate = s_par.sum() / (mask.sum() * d)
    assert 0.05 < rate < 0.95  # a non-trivial comparison: both spikes and silence occur

    names = ["x"] + [n for n, _ in neuron.named_parameters()]
    for name, g_par, g_seq in zip(
        names, _grads(neuron, x, s_par, weight), _grads(neuron, x, s_seq, weight), strict=True
    ):
        if name == "reset_raw" and reset_passes == 0:
            assert g_par is None and g_seq is None  # β is unused without reset passes
            continue
        assert g_par is not None and g_seq is not None, name
        assert g_par.abs().sum() > 0, name
        torch.testing.assert_close(g_par, g_seq, atol=1e-5, rtol=0, msg=name)


def test_bpsn_gradients_match_sequential_for_a_wide_layer():
    # Wide enough (D = 130) for the kernel gradient to be computed in several channel groups.
    d = 130
    neuron = _random_bpsn(d, kernel_size=8, reset_passes=1)
    x, mask = _inputs(2, 13, d, dtype=torch.float64)
    x.requires_grad_(True)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(8), dtype=x.dtype)
    s_par, s_seq = neuron(x, mask), neuron.forward_sequential(x, mask)
    assert torch.equal(s_par, s_seq)
    for g_par, g_seq in zip(
        _grads(neuron, x, s_par, weight), _grads(neuron, x, s_seq, weight), strict=True
    ):
        torch.testing.assert_close(g_par, g_seq, atol=1e-10, rtol=0)


def test_bpsn_parallel_matches_sequential_in_float32():
    d = 4
    neuron = _random_bpsn(d, dtype=torch.float32)
    x, mask = _inputs(3, 9, d, dtype=torch.float32)
    x.requires_grad_(True)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    s_par, s_seq = neuron(x, mask), neuron.forward_sequential(x, mask)
    assert s_par.dtype == torch.float32
    assert torch.equal(s_par, s_seq)
    for g_par, g_seq in zip(
        _grads(neuron, x, s_par, weight), _grads(neuron, x, s_seq, weight), strict=True
    ):
        torch.testing.assert_close(g_par, g_seq, atol=1e-4, rtol=0)


@pytest.mark.parametrize("length", [1, 3, 20])
def test_bpsn_kernels_work_for_any_length_including_shorter_than_kernel(length):
    neuron = _random_bpsn(3, kernel_size=8)
    x, mask = _inputs(2, length, 3, dtype=torch.float64)
    spikes = neuron(x, mask)
    assert spikes.shape == (2, length, 3)
    assert torch.equal(spikes, neuron.forward_sequential(x, mask))
    # Parameter gradients without an input gradient (x is data here) match the reference too.
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    params = list(neuron.parameters())
    g_par = torch.autograd.grad((spikes * weight).sum(), params, allow_unused=True)
    s_seq = neuron.forward_sequential(x, mask)
    g_seq = torch.autograd.grad((s_seq * weight).sum(), params, allow_unused=True)
    for a, b in zip(g_par, g_seq, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("detach_reset", [False, True])
def test_bpsn_parallel_gradient_of_learnable_per_channel_reset_taps(detach_reset):
    # bpsn_parallel accepts any [D, k_r] reset taps; if they require grad, it reaches them too.
    d = 3
    neuron = _random_bpsn(d, reset_passes=2, detach_reset=detach_reset)
    kwargs = neuron._dynamics_kwargs()
    gen = torch.Generator().manual_seed(6)
    taps = (0.3 + torch.rand(d, 5, generator=gen, dtype=torch.float64)).requires_grad_(True)
    kwargs["reset_taps"] = taps
    x, mask = _inputs(2, 10, d, dtype=torch.float64)
    weight = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    s_par = bpsn_parallel(x, mask, **kwargs)
    s_seq = bpsn_sequential_reference(x, mask, **kwargs)
    assert torch.equal(s_par, s_seq)
    (g_par,) = torch.autograd.grad((s_par * weight).sum(), [taps])
    (g_seq,) = torch.autograd.grad((s_seq * weight).sum(), [taps])
    assert g_par.abs().sum() > 0
    torch.testing.assert_close(g_par, g_seq, atol=1e-10, rtol=0)


@pytest.mark.parametrize("surrogate", [ATan(alpha=3.0), Sigmoid(alpha=4.0)])
def test_bpsn_parallel_matches_sequential_with_each_builtin_surrogate(surrogate):
    d = 4
    neuron = _random_bpsn(d, reset_passes=1)
    neuron.surrogate = surrogate
    x, mask = _inputs(3, 12, d, dtype=torch.float64)
    x.requires_grad_(True)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    s_par, s_seq = neuron(x, mask), neuron.forward_sequential(x, mask)
    assert torch.equal(s_par, s_seq)
    for g_par, g_seq in zip(
        _grads(neuron, x, s_par, weight), _grads(neuron, x, s_seq, weight), strict=True
    ):
        torch.testing.assert_close(g_par, g_seq, atol=1e-10, rtol=0)


def test_bpsn_empty_sequence_gives_empty_spikes():
    out = BPSN(3)(torch.zeros(2, 0, 3), torch.zeros(2, 0))
    assert out.shape == (2, 0, 3)


class _WrappedATan(torch.nn.Module):
    """An ATan that is not a ``Surrogate`` instance: BPSN must take its generic autograd path."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = ATan(alpha=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.parametrize("detach_reset", [False, True])
def test_bpsn_generic_spike_module_path_matches_sequential(detach_reset):
    d = 4
    neuron = _random_bpsn(d, reset_passes=1, detach_reset=detach_reset)
    neuron.surrogate = _WrappedATan()
    x, mask = _inputs(3, 9, d, dtype=torch.float64)
    x.requires_grad_(True)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    s_par, s_seq = neuron(x, mask), neuron.forward_sequential(x, mask)
    assert torch.equal(s_par, s_seq)
    for g_par, g_seq in zip(
        _grads(neuron, x, s_par, weight), _grads(neuron, x, s_seq, weight), strict=True
    ):
        torch.testing.assert_close(g_par, g_seq, atol=1e-10, rtol=0)


def test_bpsn_non_spiking_surrogate_gives_the_reference_relaxation():
    # spiking=False: the output is the smooth primitive g(u), not spikes; same values as the loop.
    neuron = _random_bpsn(3, reset_passes=1)
    neuron.surrogate.spiking = False
    x, mask = _inputs(2, 7, 3, dtype=torch.float64)
    out = neuron(x, mask)
    assert ((out > 0) & (out < 1)).any()  # real-valued, so the generic path was taken
    torch.testing.assert_close(out, neuron.forward_sequential(x, mask), atol=1e-12, rtol=0)


@pytest.mark.parametrize("reset_mode", ["graded", "passes"])
def test_bpsn_saves_one_input_sized_tensor_for_backward(reset_mode):
    # The fused path keeps only the masked input (plus the [B, L] mask and a few per-channel
    # tensors of at most [D, 2k] from building the kernels) between forward and backward.
    b, length, d, k = 4, 32, 16, 8
    neuron = _random_bpsn(d, kernel_size=k, reset_mode=reset_mode, dtype=torch.float32)
    x, mask = _inputs(b, length, d, dtype=torch.float32)
    x.requires_grad_(True)
    params = {p.untyped_storage().data_ptr() for p in neuron.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        spikes = neuron(x, mask)
    one_input = x.numel() * x.element_size()
    small = (b * length + 8 * d * 2 * k) * x.element_size()
    assert sum(saved.values()) <= one_input + small
    spikes.sum().backward()  # and the backward works from what was saved
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("reset_mode", ["graded", "passes"])
def test_bpsn_real_tokens_ignore_how_far_the_batch_is_padded(reset_mode):
    d, length = 4, 10
    neuron = _random_bpsn(d, reset_mode=reset_mode)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, length, d, generator=gen, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([7, 4, 10])
    mask = (torch.arange(length)[None, :] < lengths[:, None]).double()
    # The same batch padded 6 positions further, with garbage in every padded slot.
    x_long = torch.randn(3, length + 6, d, generator=gen, dtype=torch.float64)
    x_long[:, :length] = x.detach()
    x_long.requires_grad_(True)
    mask_long = torch.cat([mask, torch.zeros(3, 6, dtype=torch.float64)], dim=1)

    out, out_long = neuron(x, mask), neuron(x_long, mask_long)
    real = mask.bool()
    assert out[real].sum() > 0
    assert torch.equal(out[real], out_long[:, :length][real])

    # Gradients of a loss on real tokens agree too (wrt real inputs and every parameter).
    weight = torch.randn(out.shape, generator=gen, dtype=torch.float64) * mask[..., None]
    loss = (out * weight).sum()
    loss_long = (out_long[:, :length] * weight).sum()
    params = list(neuron.parameters())
    grads = torch.autograd.grad(loss, [x, *params])
    grads_long = torch.autograd.grad(loss_long, [x_long, *params])
    torch.testing.assert_close(grads[0][real], grads_long[0][:, :length][real])
    for g, g_long in zip(grads[1:], grads_long[1:], strict=True):
        torch.testing.assert_close(g, g_long)

    # A sample alone (no padding at all) gives the outputs it gets inside the padded batch.
    alone = neuron(x[1:2, :4].detach())
    assert torch.equal(alone[0], out[1, :4])


@pytest.mark.parametrize("reset_mode", ["graded", "passes"])
def test_bpsn_padded_positions_never_spike(reset_mode):
    d = 3
    # Fires at every real input (the excess over θ is far above β).
    neuron = BPSN(d, v_threshold=-10.0, reset_strength=0.1, reset_mode=reset_mode).double()
    x, mask = _inputs(4, 8, d, dtype=torch.float64)
    spikes = neuron(x, mask)
    assert torch.all(spikes[mask == 0] == 0)
    assert torch.all(spikes[mask == 1] == 1)


@pytest.mark.parametrize("reset_mode", ["graded", "passes"])
def test_bpsn_without_mask_equals_all_ones_mask_and_accepts_bool_masks(reset_mode):
    neuron = _random_bpsn(3, reset_mode=reset_mode)
    x, mask = _inputs(2, 6, 3, dtype=torch.float64)
    assert torch.equal(neuron(x), neuron(x, torch.ones(2, 6)))
    assert torch.equal(neuron(x, mask), neuron(x, mask.bool()))


def _reset_free_lif(x: torch.Tensor, tau: float, v_threshold: float) -> torch.Tensor:
    """LIF without reset: ``V[t] = V[t-1] + (x[t] - V[t-1]) / tau``, spike if ``V >= th``."""
    v = torch.zeros_like(x[0])
    spikes = []
    for x_t in x:
        v = v + (x_t - v) / tau
        spikes.append((v >= v_threshold).to(x.dtype))
    return torch.stack(spikes)


@pytest.mark.parametrize("level", [1.2, 1.5, 1.9])
def test_bpsn_constant_supra_threshold_input_fires_but_not_uninterrupted(level):
    tau, v_threshold, length = 2.0, 1.0, 64
    lif = _reset_free_lif(torch.full((length,), level), tau, v_threshold)
    first = int(torch.nonzero(lif)[0])
    assert first < length // 4  # the input is supra-threshold ...
    assert torch.all(lif[first:] == 1)  # ... and the reset-free LIF never stops firing

    neuron = BPSN(2, tau=tau, v_threshold=v_threshold)  # the default: graded
    with torch.no_grad():
        spikes = neuron(torch.full((1, length, 2), level))
    # Not uninterrupted, and not silent either (a silent neuron passed this test before).
    assert 0.05 < spikes.mean() < 0.9


def test_lif_kernel_taps_equal_decay_formula():
    for tau in (1.5, 2.0, 4.0):
        taps = lif_kernel(tau, 6)
        expected = torch.tensor([(1 / tau) * (1 - 1 / tau) ** i for i in range(6)])
        torch.testing.assert_close(taps, expected.double())
        neuron = BPSN(3, kernel_size=6, tau=tau).double()
        torch.testing.assert_close(neuron.weight_fwd.detach(), expected.double().expand(3, 6))
        torch.testing.assert_close(neuron.weight_bwd.detach(), expected.double().expand(3, 6))
        decays = torch.tensor([(1 - 1 / tau) ** j for j in range(1, 7)], dtype=torch.float64)
        torch.testing.assert_close(neuron.reset_taps(), decays)


def _hand_neuron(*, reset_passes: int, v_threshold: float, reset_strength: float) -> BPSN:
    """One channel, k = 2 taps of the tau = 2 LIF kernel: w_f = w_b = [0.5, 0.25], a = 0.5."""
    return BPSN(
        1,
        kernel_size=2,
        tau=2.0,
        v_threshold=v_threshold,
        reset_strength=reset_strength,
        reset_passes=reset_passes,
    ).double()


def test_bpsn_backward_direction_starts_at_last_real_token_hand_trace():
    # H[t] = 0.5 (0.5 x[t] + 0.25 x[t-1]) + 0.5 (0.5 x[t] + 0.25 x[t+1]).
    neuron = _hand_neuron(reset_passes=0, v_threshold=0.1, reset_strength=1.0)
    x = torch.tensor([[0.0, 0.0, 1.0, 5.0]], dtype=torch.float64)[..., None]
    # Unpadded: H = [0, 0.125, 0.25 + 0.625, 1.25 + 0.125] -> spikes at t = 1, 2, 3.
    assert neuron(x)[0, :, 0].tolist() == [0.0, 1.0, 1.0, 1.0]
    # Token 3 is padding: its 5.0 is zeroed, so H = [0, 0.125, 0.25, 0] and t = 3 is silent.
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    assert neuron(x, mask)[0, :, 0].tolist() == [0.0, 1.0, 1.0, 0.0]
    x_low = torch.tensor([[0.0, 0.0, 0.6, 5.0]], dtype=torch.float64)[..., None]
    # H[1] = 0.25 * 0.6 / 2 = 0.075 < 0.1: the first token hears the third only through w_b[1].
    assert neuron(x_low, mask)[0, :, 0].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_bpsn_reset_pass_hand_trace():
    # x = [1, 1, 1]: H_f = [0.5, 0.75, 0.75], H_b = [0.75, 0.75, 0.5], H = [0.625, 0.75, 0.625].
    # First pass (θ = 0.6): S0 = [1, 1, 1]. Counts with λ = 0.5: C_f = [0, 0.5, 0.75],
    # C_b = [0.75, 0.5, 0], C = [0.375, 0.5, 0.375]; β = 0.1: H - βC = [0.5875, 0.7, 0.5875].
    x = torch.ones(1, 3, 1, dtype=torch.float64)
    no_reset = _hand_neuron(reset_passes=0, v_threshold=0.6, reset_strength=0.1)
    assert no_reset(x)[0, :, 0].tolist() == [1.0, 1.0, 1.0]
    neuron = _hand_neuron(reset_passes=1, v_threshold=0.6, reset_strength=0.1)
    torch.testing.assert_close(neuron.reset_strength, torch.tensor([0.1], dtype=torch.float64))
    assert neuron(x)[0, :, 0].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bpsn_gradient_reaches_input_and_every_parameter(dtype):
    neuron = BPSN(6, kernel_size=4).to(dtype)
    gen = torch.Generator().manual_seed(4)
    x = (1.0 + torch.randn(2, 12, 6, generator=gen, dtype=dtype)).requires_grad_(True)
    spikes = neuron(x)
    assert spikes.dtype == dtype
    (spikes * torch.randn(spikes.shape, generator=gen, dtype=dtype)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in neuron.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("reset_mode", ["graded", "passes"])
def test_bpsn_is_deterministic(reset_mode):
    neuron = _random_bpsn(4, reset_mode=reset_mode, dtype=torch.float32)
    x, mask = _inputs(3, 10, 4, dtype=torch.float32)
    x.requires_grad_(True)
    runs = []
    for _ in range(2):
        spikes = neuron(x, mask)
        runs.append((spikes, *torch.autograd.grad(spikes.sum(), [x, *neuron.parameters()])))
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


def test_bpsn_default_surrogate_is_a_fresh_atan_per_neuron():
    a, b = BPSN(2), BPSN(2)
    assert isinstance(a.surrogate, ATan) and a.surrogate.alpha == 2.0
    assert a.surrogate is not b.surrogate


def test_bpsn_init_values():
    neuron = BPSN(3, v_threshold=0.7, fusion_init=0.25)
    assert neuron.reset_mode == "graded" and neuron.reset_passes is None
    assert neuron.detach_reset  # one default, as the LIF and the configs
    torch.testing.assert_close(neuron.threshold.detach(), torch.full((3,), 0.7))
    torch.testing.assert_close(neuron.fusion, torch.full((3,), 0.25))
    # β defaults to θ (graded: the rate ramps from θ to 2θ; passes: the soft reset)
    torch.testing.assert_close(neuron.reset_strength, torch.full((3,), 0.7))
    passes = BPSN(3, v_threshold=0.7, reset_mode="passes")
    assert passes.reset_passes == 1
    torch.testing.assert_close(passes.reset_strength, torch.full((3,), 0.7))
    assert math.isclose(BPSN(1, reset_strength=2.5).reset_strength.item(), 2.5, rel_tol=1e-6)
    # Giving reset_passes without a mode means the passes mode (how old configs load).
    assert BPSN(1, reset_passes=0).reset_mode == "passes"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_channels": 0},
        {"kernel_size": 0},
        {"tau": 0.5},
        {"fusion_init": 1.0},
        {"reset_passes": -1},
        {"reset_strength": 0.0},
        {"reset_mode": "pases"},
        {"reset_mode": "graded", "reset_passes": 1},  # not silently ignored
        {"reset_mode": "graded", "detach_reset": False},  # the floor has no gradient
    ],
)
def test_bpsn_rejects_bad_arguments(kwargs):
    args = {"num_channels": 2, **kwargs}
    with pytest.raises(ValueError):
        BPSN(**args)


def test_bpsn_rejects_mismatched_shapes():
    neuron = BPSN(3)
    with pytest.raises(ValueError, match="D=4"):
        neuron(torch.zeros(1, 5, 4))
    with pytest.raises(ValueError, match="mask"):
        neuron(torch.zeros(1, 5, 3), torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"\[B, L, D\]"):
        bpsn_graded(torch.zeros(5, 3), None, **neuron._dynamics_kwargs())
    passes = BPSN(3, reset_mode="passes")
    with pytest.raises(ValueError, match=r"\[B, L, D\]"):
        bpsn_parallel(torch.zeros(5, 3), None, **passes._dynamics_kwargs())


def _lagged_dot_products(grad: torch.Tensor, seq: torch.Tensor, n: int) -> torch.Tensor:
    """``out[d, m] = Σ_{b,t} grad[b, t, d] · seq[b, t + m - n // 2, d]`` by explicit loops."""
    p, (_, length, d) = n // 2, seq.shape
    out = torch.zeros(d, n, dtype=seq.dtype)
    for m in range(n):
        for t in range(length):
            if 0 <= t + m - p < length:
                out[:, m] += (grad[:, t] * seq[:, t + m - p]).sum(0)
    return out


@pytest.mark.parametrize("budget", [16 * 2**20, 1])  # one channel group / one group per channel
@pytest.mark.parametrize(("b", "length", "n"), [(1, 1, 15), (3, 2, 3), (2, 7, 17), (3, 40, 15)])
def test_kernel_gradient_equals_explicit_lagged_sums(b, length, n, budget):
    from spikeformers.neurons.bpsn.kernels import _kernel_grad

    gen = torch.Generator().manual_seed(b * 100 + length)
    grad = torch.randn(b, length, 5, generator=gen, dtype=torch.float64)
    seq = torch.randn(b, length, 5, generator=gen, dtype=torch.float64)
    got = _kernel_grad(grad, seq, n, budget=budget)
    torch.testing.assert_close(got, _lagged_dot_products(grad, seq, n), atol=1e-10, rtol=0)


def test_bpsn_backward_replays_the_forward_spikes_under_autocast(monkeypatch):
    # Under bf16 autocast the forward convolutions run in bf16; the backward's recomputation must
    # give the same spikes (recomputed in float32, about 0.1% of them flip).
    import spikeformers.neurons.bpsn.passes as bpsn_module

    neuron = BPSN(64, kernel_size=8, reset_passes=1, detach_reset=True, v_threshold=0.5)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 50, 64, generator=gen).requires_grad_(True)
    replayed = {}
    passes = bpsn_module._passes

    def spy(*args):
        spikes, kept = passes(*args)
        if args[-1] != "none":  # the backward's recomputation: keep the last pass's potential
            replayed["v"] = kept[-1][0].clone()
        return spikes, kept

    monkeypatch.setattr(bpsn_module, "_passes", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spikes = neuron(x, torch.ones(8, 50))
    assert spikes.dtype == torch.bfloat16
    (spikes.float() * torch.randn(x.shape, generator=gen)).sum().backward()
    v = replayed["v"]
    assert v.dtype == torch.bfloat16
    assert torch.equal((v >= neuron.threshold.to(v.dtype)).to(spikes.dtype), spikes)
    assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0


# -- reset_mode="graded" (the default) --------------------------------------------------------


def _graded_loop_reference(x: torch.Tensor, mask: torch.Tensor, neuron: BPSN) -> torch.Tensor:
    """Graded BPSN written from its definition, one token at a time (independent of the module).

    Charge: ``H[t] = a Σ_i w_f[i] x̃[t-i] + (1-a) Σ_i w_b[i] x̃[t+i]`` by explicit sums. Spikes:
    an integrate-and-fire neuron with soft reset, threshold 1, residual ``v`` (1/2 at the start)
    and input ``z[t] = m[t] clamp(u[t], 0, 1)``, ``u = (H - θ)/β``; it fires where
    ``v + u[t] >= 1``, then ``v <- v + z[t] - spike`` (hard spike, no gradient through it).
    """
    b, length, d = x.shape
    xm = x * mask[..., None]
    w_f, w_b, a = neuron.weight_fwd, neuron.weight_bwd, neuron.fusion
    theta, beta = neuron.threshold, neuron.reset_strength
    k = w_f.shape[1]
    v = torch.full((b, d), 0.5, dtype=x.dtype)
    out = []
    for t in range(length):
        h_f = sum(w_f[:, i] * xm[:, t - i] for i in range(k) if t - i >= 0)
        h_b = sum(w_b[:, i] * xm[:, t + i] for i in range(k) if t + i < length)
        u = (a * h_f + (1 - a) * h_b - theta) / beta  # (B, D)
        m_t = mask[:, t, None]
        pre = v + u - 1.0
        out.append(neuron.surrogate(pre) * m_t)
        v = v + m_t * u.clamp(0.0, 1.0) - m_t * (pre.detach() >= 0).to(x.dtype)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize(("kernel_size", "length"), [(4, 11), (8, 30), (8, 5), (3, 1)])
def test_graded_bpsn_equals_a_token_loop_spikes_and_gradients(kernel_size, length):
    d = 5
    neuron = _random_bpsn(d, kernel_size=kernel_size, reset_mode="graded")
    x, mask = _inputs(4, length, d, dtype=torch.float64)
    x.requires_grad_(True)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    s_par = neuron(x, mask)
    s_loop = _graded_loop_reference(x, mask, neuron)
    assert torch.equal(s_par, s_loop)
    assert torch.equal(s_par, neuron.forward_sequential(x, mask))  # the module's own loop too
    if length >= 11:
        assert 0.05 < s_par.sum() / (mask.sum() * d) < 0.95  # spikes and silence both occur
    names = ["x"] + [n for n, _ in neuron.named_parameters()]
    for name, g_par, g_loop in zip(
        names, _grads(neuron, x, s_par, weight), _grads(neuron, x, s_loop, weight), strict=True
    ):
        assert g_par is not None and g_loop is not None, name
        assert g_par.abs().sum() > 0, name
        torch.testing.assert_close(g_par, g_loop, atol=1e-10, rtol=0, msg=name)


def test_graded_bpsn_gradient_equals_finite_differences_of_its_relaxation():
    # The spikes do not feed back (the reset is the floor of the count of the clamped excess),
    # so the fused backward (Θ' = the surrogate's g') is the exact gradient of the relaxed
    # output g(v): central differences of that output along random directions must match it.
    d = 4
    neuron = _random_bpsn(d, kernel_size=4, reset_mode="graded", seed=3)
    x, mask = _inputs(3, 12, d, dtype=torch.float64, seed=4)
    gen = torch.Generator().manual_seed(9)
    weight = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    params = [x.requires_grad_(True), *neuron.parameters()]
    grads = torch.autograd.grad((neuron(x, mask) * weight).sum(), params)

    relaxed = _random_bpsn(d, kernel_size=4, reset_mode="graded", seed=3)
    relaxed.surrogate.spiking = False  # output g(v) instead of Θ(v): smooth in every input

    def loss(values: list[torch.Tensor]) -> float:
        with torch.no_grad():
            for p, value in zip(relaxed.parameters(), values[1:], strict=True):
                p.copy_(value)
            return float((relaxed(values[0], mask) * weight).sum())

    base = [p.detach().clone() for p in params]
    eps = 1e-6
    for _ in range(4):
        direction = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in base]
        plus = loss([p + eps * e for p, e in zip(base, direction, strict=True)])
        minus = loss([p - eps * e for p, e in zip(base, direction, strict=True)])
        numeric = (plus - minus) / (2 * eps)
        analytic = sum(float((g * e).sum()) for g, e in zip(grads, direction, strict=True))
        assert abs(numeric) > 1e-3
        assert math.isclose(numeric, analytic, rel_tol=1e-6, abs_tol=1e-7)


def test_graded_bpsn_hand_trace():
    # One channel, k = 1: H = 0.5 x (w = 1/τ = 0.5). θ = 0.5, β = 1: x = 1.5 gives u = 0.25.
    # The IF residual starts at 1/2: before each token .5, .75, (1.0: fire) 0, .25, .5, .75, ...
    neuron = BPSN(1, kernel_size=1, tau=2.0, v_threshold=0.5, reset_strength=1.0).double()
    x = torch.full((1, 8, 1), 1.5, dtype=torch.float64)
    assert neuron(x)[0, :, 0].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]  # every 4th token
    # x = 2.5: u = 0.75; residual + u = 1.25 (fire), 1.0 (fire), .75, 1.5, 1.25, 1.0, .75, 1.5
    assert neuron(x + 1.0)[0, :, 0].tolist() == [1, 1, 0, 1, 1, 1, 0, 1]  # 6 of 8 = 0.75
    # A padded token adds nothing and does not fire: the count resumes after it.
    mask = torch.tensor([[1, 1, 0, 1, 1, 1, 1, 1]], dtype=torch.float64)
    assert neuron(x, mask)[0, :, 0].tolist() == [0, 1, 0, 0, 0, 0, 1, 0]


def _constant_drive_rates(neuron: torch.nn.Module, levels: list[float], length: int = 400):
    """Firing rate of each channel-0 neuron on a constant input ``c``, away from the two ends
    (the ``k`` tokens at each end see a partial charge)."""
    x = torch.tensor(levels, dtype=torch.float64)[:, None, None].expand(-1, length, 1)
    with torch.no_grad():
        spikes = neuron(x.contiguous())
    return spikes[:, 16:-16, 0].mean(1).tolist()


def _graded_rate_violation(rates: list[float]) -> str | None:
    """``None`` if the rates are strictly inside (0, 1) and strictly increasing, else why not."""
    if not all(0.0 < r < 1.0 for r in rates):
        return f"rates not strictly inside (0, 1): {rates}"
    if not all(a < b for a, b in zip(rates, rates[1:], strict=False)):
        return f"rates not strictly increasing: {rates}"
    return None


THETA = 0.5
LEVELS = [THETA * f for f in (1.1, 1.3, 1.5, 1.7, 1.9, 2.1, 2.3, 2.5, 2.7, 2.9)]  # in (θ, 3θ)


@pytest.mark.parametrize(
    ("beta", "levels"),
    [
        (2 * THETA, LEVELS),  # β = 2θ: graded over all of (θ, 3θ)
        (None, [c for c in LEVELS if c < 1.9 * THETA]),  # the default β = θ: over (θ, 2θ)
    ],
)
def test_graded_bpsn_rate_on_constant_input_increases_strictly_inside_0_1(beta, levels):
    neuron = BPSN(1, tau=2.0, v_threshold=THETA, reset_strength=beta).double()  # graded default
    rates = _constant_drive_rates(neuron, levels)
    assert _graded_rate_violation(rates) is None
    # The count of an IF neuron with input z = (c ΣK - θ)/β per step is floor(n z + 1/2) in n
    # steps, so the rate is within 1/n of z (2/n: the window's phase is arbitrary).
    gain = float(neuron.weight_fwd.detach().sum())  # ΣK = Σ w (both directions, a = 0.5)
    b = THETA if beta is None else beta
    for c, rate in zip(levels, rates, strict=True):
        assert abs(rate - (c * gain - THETA) / b) <= 2 / (400 - 32)
    # and saturates where the ramp ends: silent at or below θ, every step at θ + β and above
    assert _constant_drive_rates(neuron, [0.9 * THETA, 1.05 * (THETA + b)]) == [0.0, 1.0]


def test_graded_rate_check_fails_for_a_silent_and_an_all_or_none_neuron():
    # The check above is not vacuous: a neuron that never fires fails it, and so do the
    # earlier all-or-none reconstructions (one or two reset passes).
    class Silent(torch.nn.Module):
        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            return torch.zeros_like(x)

    assert _graded_rate_violation(_constant_drive_rates(Silent(), LEVELS)) is not None
    assert _graded_rate_violation(_constant_drive_rates(Silent(), LEVELS[:4])) is not None
    for passes in (1, 2):
        neuron = BPSN(1, tau=2.0, v_threshold=THETA, reset_mode="passes", reset_passes=passes)
        rates = _constant_drive_rates(neuron.double(), LEVELS)
        assert set(rates) <= {0.0, 1.0}, rates  # all-or-none
        assert _graded_rate_violation(rates) is not None


def test_graded_bpsn_backward_replays_the_forward_spikes_under_autocast(monkeypatch):
    # The charge runs in bf16 under autocast (the integrator in float32); the backward's
    # recomputation must reproduce the forward's spikes exactly.
    import spikeformers.neurons.bpsn.graded as bpsn_module

    neuron = BPSN(64, kernel_size=8, v_threshold=0.5)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 50, 64, generator=gen).requires_grad_(True)
    calls = []
    potential = bpsn_module._graded_potential

    def spy(*args):
        w, u = potential(*args)
        calls.append((args[0].dtype, (w >= 1).clone()))
        return w, u

    monkeypatch.setattr(bpsn_module, "_graded_potential", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spikes = neuron(x, torch.ones(8, 50))
    assert spikes.dtype == torch.bfloat16
    (spikes.float() * torch.randn(x.shape, generator=gen)).sum().backward()
    (fwd_dtype, fwd_fired), (bwd_dtype, bwd_fired) = calls
    assert fwd_dtype == bwd_dtype == torch.bfloat16  # the charge of both, in bf16
    assert torch.equal(fwd_fired, bwd_fired) and torch.equal(bwd_fired.to(spikes.dtype), spikes)
    assert 0.01 < float(spikes.detach().float().mean()) < 0.5
    assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0


@pytest.mark.parametrize("surrogate", [ATan(alpha=3.0), Sigmoid(alpha=4.0)])
def test_graded_bpsn_generic_and_fused_paths_agree(surrogate):
    # A spike module that is not a Surrogate takes the plain-autograd path; same spikes and
    # gradients as the fused Function.
    d = 4
    fused = _random_bpsn(d, reset_mode="graded")
    fused.surrogate = surrogate
    generic = _random_bpsn(d, reset_mode="graded")
    generic.surrogate = _WrappedATan()
    generic.surrogate.inner = surrogate
    x, mask = _inputs(3, 9, d, dtype=torch.float64)
    x.requires_grad_(True)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    s_f, s_g = fused(x, mask), generic(x, mask)
    assert torch.equal(s_f, s_g)
    for g_f, g_g in zip(
        _grads(fused, x, s_f, weight), _grads(generic, x, s_g, weight), strict=True
    ):
        torch.testing.assert_close(g_f, g_g, atol=1e-10, rtol=0)
