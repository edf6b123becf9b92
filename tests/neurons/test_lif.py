"""LIF dynamics against hand-computed membrane traces, plus gradients, shapes and the module shell.

Notation in the comments: ``H`` is the potential after charging, ``S`` the spike, ``V`` the
potential after the reset (what ``return_v`` returns).
"""

from __future__ import annotations

import copy
import math
import pickle
import zlib

import pytest
import torch
from torch import nn

from spikeformers.neurons import LIF, ATan, Sigmoid, lif_multistep
from spikeformers.neurons.lif_functional import lif_multistep_fusable, lif_multistep_reference


def run(xs: list[float], **kw) -> tuple[list[float], list[float]]:
    """Run lif_multistep on a scalar sequence in float64; return (spikes, post-reset v)."""
    x_seq = torch.tensor(xs, dtype=torch.float64)
    s, v = lif_multistep(x_seq, surrogate=ATan(), return_v=True, **kw)
    return s.tolist(), v.tolist()


def g_atan2(u: float) -> float:
    # ATan surrogate derivative with alpha = 2: 2 / (2 (1 + (pi/2 * 2 * u)^2)) = 1 / (1 + (pi u)^2)
    return 1.0 / (1.0 + (math.pi * u) ** 2)


# --------------------------------------------------------------------------------------------
# Hand-computed traces (tau = 2, v_threshold = 1 unless stated)
# --------------------------------------------------------------------------------------------

X_RESET = [1.5, 2.5, 1.4, 2.0, 0.0, 3.0]


def test_lif_hard_reset_trace_by_hand() -> None:
    # decay_input: H = V + (X - V) / 2, V starts at 0; hard reset sets V = 0 after a spike.
    # t0: H = 0    + (1.5 - 0   )/2 = 0.75   < 1  S=0  V=0.75
    # t1: H = 0.75 + (2.5 - 0.75)/2 = 1.625 >= 1  S=1  V=0
    # t2: H = 0    + (1.4 - 0   )/2 = 0.7    < 1  S=0  V=0.7
    # t3: H = 0.7  + (2.0 - 0.7 )/2 = 1.35  >= 1  S=1  V=0
    # t4: H = 0    + (0.0 - 0   )/2 = 0      < 1  S=0  V=0
    # t5: H = 0    + (3.0 - 0   )/2 = 1.5   >= 1  S=1  V=0
    s, v = run(X_RESET, tau=2.0, v_threshold=1.0, reset="hard")
    assert s == [0, 1, 0, 1, 0, 1]
    assert v == pytest.approx([0.75, 0.0, 0.7, 0.0, 0.0, 0.0])


def test_lif_soft_reset_subtracts_threshold_by_hand() -> None:
    # Same input; soft reset V = H - 1 after a spike, so the residue carries over.
    # t0: H = 0        + (1.5 - 0       )/2 = 0.75       S=0  V=0.75
    # t1: H = 0.75     + (2.5 - 0.75    )/2 = 1.625      S=1  V=0.625
    # t2: H = 0.625    + (1.4 - 0.625   )/2 = 1.0125     S=1  V=0.0125   (hard reset: no spike)
    # t3: H = 0.0125   + (2.0 - 0.0125  )/2 = 1.00625    S=1  V=0.00625
    # t4: H = 0.00625  + (0.0 - 0.00625 )/2 = 0.003125   S=0  V=0.003125
    # t5: H = 0.003125 + (3.0 - 0.003125)/2 = 1.5015625  S=1  V=0.5015625
    s, v = run(X_RESET, tau=2.0, v_threshold=1.0, reset="soft")
    assert s == [0, 1, 1, 1, 0, 1]
    assert v == pytest.approx([0.75, 0.625, 0.0125, 0.00625, 0.003125, 0.5015625])


X_DECAY = [0.5, 0.4, 0.7, 1.2, 0.0, 0.9]


def test_lif_decay_input_true_scales_input_by_tau() -> None:
    # H = V + (X - V)/2 = V/2 + X/2
    # t0: 0      /2 + 0.5/2 = 0.25
    # t1: 0.25   /2 + 0.4/2 = 0.325
    # t2: 0.325  /2 + 0.7/2 = 0.5125
    # t3: 0.5125 /2 + 1.2/2 = 0.85625
    # t4: 0.85625/2 + 0  /2 = 0.428125
    # t5: 0.428125/2 + 0.9/2 = 0.6640625      never reaches 1: no spikes
    s, v = run(X_DECAY, tau=2.0, v_threshold=1.0, decay_input=True)
    assert s == [0, 0, 0, 0, 0, 0]
    assert v == pytest.approx([0.25, 0.325, 0.5125, 0.85625, 0.428125, 0.6640625])


def test_lif_decay_input_false_adds_raw_input() -> None:
    # H = V - V/2 + X = V/2 + X, hard reset to 0.
    # t0: 0    /2 + 0.5 = 0.5     S=0  V=0.5
    # t1: 0.5  /2 + 0.4 = 0.65    S=0  V=0.65
    # t2: 0.65 /2 + 0.7 = 1.025   S=1  V=0
    # t3: 0    /2 + 1.2 = 1.2     S=1  V=0
    # t4: 0    /2 + 0.0 = 0       S=0  V=0
    # t5: 0    /2 + 0.9 = 0.9     S=0  V=0.9
    s, v = run(X_DECAY, tau=2.0, v_threshold=1.0, decay_input=False)
    assert s == [0, 0, 1, 1, 0, 0]
    assert v == pytest.approx([0.5, 0.65, 0.0, 0.0, 0.0, 0.9])


def test_lif_nonzero_v_reset_is_rest_and_reset_potential() -> None:
    # v_reset = 0.5: V starts at 0.5, leaks towards 0.5 and is reset to 0.5.
    # H = V + (X - (V - 0.5))/2
    # t0: 0.5 + (0.0 - 0  )/2 = 0.5   S=0  V=0.5   (rest is stable with zero input)
    # t1: 0.5 + (1.2 - 0  )/2 = 1.1   S=1  V=0.5
    # t2: 0.5 + (1.0 - 0  )/2 = 1.0   S=1  V=0.5   (exactly at threshold: H(0) = 1)
    # t3: 0.5 + (0.4 - 0  )/2 = 0.7   S=0  V=0.7
    # t4: 0.7 + (1.6 - 0.2)/2 = 1.4   S=1  V=0.5
    s, v = run([0.0, 1.2, 1.0, 0.4, 1.6], tau=2.0, v_threshold=1.0, v_reset=0.5)
    assert s == [0, 1, 1, 0, 1]
    assert v == pytest.approx([0.5, 0.5, 0.5, 0.7, 0.5])


def test_lif_negative_v_reset_soft_no_decay_input() -> None:
    # v_reset = -0.5, soft reset, decay_input=False: H = V - (V + 0.5)/2 + X, V starts at -0.5.
    # t0: -0.5 - ( 0  )/2 + 1.0 = 0.5    S=0  V=0.5
    # t1:  0.5 - ( 1.0)/2 + 1.5 = 1.5    S=1  V=1.5 - 1 = 0.5
    # t2:  0.5 - ( 1.0)/2 + 0.0 = 0.0    S=0  V=0.0
    # t3:  0.0 - ( 0.5)/2 + 0.0 = -0.25  S=0  V=-0.25
    s, v = run([1.0, 1.5, 0.0, 0.0], tau=2.0, v_reset=-0.5, reset="soft", decay_input=False)
    assert s == [0, 1, 0, 0]
    assert v == pytest.approx([0.5, 0.5, 0.0, -0.25])


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_lif_spec_example_constant_input_fires_every_other_step(reset: str) -> None:
    # spec/snnbert.md: constant input 0.8, threshold 0.5, tau 2, with reset fires 0 1 0 1 ...
    # hard: H = 0.4 (S=0, V=0.4), H = 0.4 + (0.8-0.4)/2 = 0.6 (S=1, V=0), and the pair repeats.
    # soft: H = 0.4  (S=0)            V=0.4
    #       H = 0.6  (S=1)            V=0.1
    #       H = 0.1 + 0.7/2 = 0.45    V=0.45
    #       H = 0.45 + 0.35/2 = 0.625 (S=1) V=0.125
    #       H = 0.125 + 0.675/2 = 0.4625     V=0.4625
    #       H = 0.4625 + 0.3375/2 = 0.63125 (S=1) V=0.13125
    #       H = 0.13125 + 0.66875/2 = 0.465625   V=0.465625
    #       H = 0.465625 + 0.334375/2 = 0.6328125 (S=1) V=0.1328125
    # (Without any reset V -> 0.4, 0.6, 0.7, 0.75, ... stays above 0.5: 0 1 1 1 1 1 1 1.)
    s, v = run([0.8] * 8, tau=2.0, v_threshold=0.5, reset=reset)
    assert s == [0, 1, 0, 1, 0, 1, 0, 1]
    if reset == "hard":
        assert v == pytest.approx([0.4, 0, 0.4, 0, 0.4, 0, 0.4, 0])
    else:
        expected = [0.4, 0.1, 0.45, 0.125, 0.4625, 0.13125, 0.465625, 0.1328125]
        assert v == pytest.approx(expected)


def test_lif_tau_one_has_no_memory() -> None:
    # tau = 1, decay_input: H = V + (X - V) = X, so S[t] = H(X[t] - v_th) regardless of history.
    x = torch.tensor([0.3, 1.0, 0.99, 5.0, -1.0], dtype=torch.float64)
    s = lif_multistep(x, tau=1.0, reset="soft", surrogate=ATan())
    assert s.tolist() == [0, 1, 0, 1, 0]


def test_lif_multistep_empty_time_axis() -> None:
    s, v = lif_multistep(torch.zeros(0, 3), tau=2.0, surrogate=ATan(), return_v=True)
    assert s.shape == (0, 3) and v.shape == (0, 3)


# --------------------------------------------------------------------------------------------
# Gradients through the reset
# --------------------------------------------------------------------------------------------


def two_step_grads(x0: float, x1: float, **kw) -> list[float]:
    x = torch.tensor([x0, x1], dtype=torch.float64, requires_grad=True)
    s = lif_multistep(x, tau=2.0, v_threshold=1.0, surrogate=ATan(alpha=2.0), **kw)
    s.sum().backward()
    return x.grad.tolist()


# Chain rule for L = S0 + S1 with tau = 2, v_th = 1, g = g_atan2, H0 = x0 / 2:
#   dL/dx1 = g(H1 - 1) * dH1/dx1 = g(H1 - 1) / 2
#   dL/dx0 = g(H0 - 1) / 2 + g(H1 - 1) * dH1/dV0 * dV0/dx0,  with dH1/dV0 = 1 - 1/2 = 1/2
# hard: V0 = (1 - S0) H0      -> dV0/dx0 = (1 - S0)/2 - H0 * dS0/dx0, dS0/dx0 = g(H0 - 1)/2
# soft: V0 = H0 - S0          -> dV0/dx0 = 1/2 - dS0/dx0
# detach_reset drops the dS0/dx0 term from dV0/dx0.


def test_detach_reset_gradients_hard_reset_after_spike() -> None:
    # x0 = 2.4: H0 = 1.2, S0 = 1, V0 = 0; x1 = 2.2: H1 = 0 + 2.2/2 = 1.1, S1 = 1.
    g0, g1 = g_atan2(0.2), g_atan2(0.1)
    # detached: dV0/dx0 = (1 - 1)/2 = 0
    detached = two_step_grads(2.4, 2.2, reset="hard", detach_reset=True)
    assert detached == pytest.approx([g0 / 2, g1 / 2])
    # attached: dV0/dx0 = 0 - 1.2 * g0/2 = -0.6 g0  ->  dS1/dx0 = g1/2 * (-0.6 g0) = -0.3 g0 g1
    attached = two_step_grads(2.4, 2.2, reset="hard", detach_reset=False)
    assert attached == pytest.approx([g0 / 2 - 0.3 * g0 * g1, g1 / 2])


def test_detach_reset_gradients_hard_reset_without_spike() -> None:
    # The surrogate lets the reset path carry gradient even when S0 = 0.
    # x0 = 1.6: H0 = 0.8, S0 = 0, V0 = 0.8; x1 = 1.4: H1 = 0.8 + (1.4 - 0.8)/2 = 1.1, S1 = 1.
    g0, g1 = g_atan2(-0.2), g_atan2(0.1)
    # detached: dV0/dx0 = 1/2  ->  dS1/dx0 = g1/4
    detached = two_step_grads(1.6, 1.4, reset="hard", detach_reset=True)
    assert detached == pytest.approx([g0 / 2 + g1 / 4, g1 / 2])
    # attached: dV0/dx0 = 1/2 - 0.8 * g0/2 = 1/2 - 0.4 g0  ->  dS1/dx0 = g1/2 * (1/2 - 0.4 g0)
    attached = two_step_grads(1.6, 1.4, reset="hard", detach_reset=False)
    assert attached == pytest.approx([g0 / 2 + g1 / 2 * (0.5 - 0.4 * g0), g1 / 2])


def test_detach_reset_gradients_soft_reset() -> None:
    # x0 = 2.4: H0 = 1.2, S0 = 1, V0 = 0.2; x1 = 2.0: H1 = 0.2 + (2.0 - 0.2)/2 = 1.1, S1 = 1.
    g0, g1 = g_atan2(0.2), g_atan2(0.1)
    # detached: dV0/dx0 = 1/2  ->  dS1/dx0 = g1/4
    detached = two_step_grads(2.4, 2.0, reset="soft", detach_reset=True)
    assert detached == pytest.approx([g0 / 2 + g1 / 4, g1 / 2])
    # attached: dV0/dx0 = 1/2 - g0/2  ->  dS1/dx0 = g1 (1 - g0) / 4
    attached = two_step_grads(2.4, 2.0, reset="soft", detach_reset=False)
    assert attached == pytest.approx([g0 / 2 + g1 * (1 - g0) / 4, g1 / 2])


def reference_lif(x_seq, *, tau, v_th, v_reset, reset, detach_reset, decay_input, sg):
    """Independent re-implementation in SpikingJelly's per-step style (charge, fire, reset)."""
    v = torch.zeros_like(x_seq[0]) + v_reset
    out_s, out_v = [], []
    for t in range(x_seq.shape[0]):
        x = x_seq[t]
        h = v + (x - (v - v_reset)) / tau if decay_input else v - (v - v_reset) / tau + x
        spike = sg(h - v_th)
        r = spike.detach() if detach_reset else spike
        v = h * (1 - r) + v_reset * r if reset == "hard" else h - v_th * r
        out_s.append(spike)
        out_v.append(v)
    return torch.stack(out_s), torch.stack(out_v)


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("decay_input", [True, False])
def test_lif_matches_reference_values_and_gradients(reset, detach_reset, decay_input) -> None:
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(6, 3, 4, generator=gen, dtype=torch.float64) * 3.0).requires_grad_(True)
    w = torch.randn(6, 3, 4, generator=gen, dtype=torch.float64)  # random upstream gradient
    kw = dict(tau=3.0, v_reset=-0.2, reset=reset, detach_reset=detach_reset)
    s, v = lif_multistep(
        x, v_threshold=1.1, decay_input=decay_input, surrogate=Sigmoid(), return_v=True, **kw
    )
    s_ref, v_ref = reference_lif(x, v_th=1.1, decay_input=decay_input, sg=Sigmoid(), **kw)
    torch.testing.assert_close(s, s_ref)
    torch.testing.assert_close(v, v_ref)
    assert 0 < s.mean().item() < 1  # the inputs exercise both branches
    (g,) = torch.autograd.grad((s * w).sum(), x)
    (g_ref,) = torch.autograd.grad((s_ref * w).sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_detach_reset_changes_gradient_but_not_spikes() -> None:
    gen = torch.Generator().manual_seed(2)
    x = (torch.rand(5, 8, generator=gen) * 3.0).requires_grad_(True)
    grads, spikes = [], []
    for detach in (True, False):
        s = lif_multistep(x, tau=2.0, detach_reset=detach, surrogate=ATan())
        spikes.append(s.detach())
        (g,) = torch.autograd.grad(s.sum(), x)
        grads.append(g)
    assert torch.equal(spikes[0], spikes[1])
    assert not torch.allclose(grads[0], grads[1])
    # The last step's input only affects the last spike, not through any reset.
    torch.testing.assert_close(grads[0][-1], grads[1][-1])


@pytest.mark.parametrize(
    ("fn", "kw"),
    [
        (lif_multistep, {"fused": True}),
        (lif_multistep, {"fused": False}),
        (lif_multistep_reference, {}),
    ],
)
def test_default_detaches_the_reset_like_the_module_and_configs(fn, kw) -> None:
    # One default everywhere: LIF, the model configs and the functional API detach the reset.
    # x = [3.0, 0.5], tau 2, hard reset to 0, threshold 1:
    #   H0 = 3/2 = 1.5, S0 = 1, V0 = (1 - S0) H0 = 0;  H1 = V0 + (0.5 - V0)/2 = 0.25, S1 = 0.
    # dS1/dx1 = g'(H1 - 1) / 2. dS1/dx0 = g'(H1 - 1) / 2 * dV0/dx0, and with the reset detached
    # dV0/dx0 = (1 - S0) / 2 = 0 (without it: -H0 g'(H0 - 1) / 2 = -0.75 g'(0.5) != 0).
    x = torch.tensor([3.0, 0.5], dtype=torch.float64, requires_grad=True)
    s = fn(x, tau=2.0, surrogate=ATan(), **kw)
    assert s.tolist() == [1.0, 0.0]
    (g,) = torch.autograd.grad(s[1], x)
    assert g[0].item() == 0.0
    assert g[1].item() == pytest.approx(g_atan2(0.25 - 1.0) / 2.0, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Module shell, shapes, dtypes, modes
# --------------------------------------------------------------------------------------------


def test_lif_module_matches_functional() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(4, 2, 3, generator=gen) * 3
    lif = LIF(tau=3.0, v_threshold=0.7, v_reset=0.1, reset="soft", decay_input=False)
    expected = lif_multistep(
        x, tau=3.0, v_threshold=0.7, v_reset=0.1, reset="soft", detach_reset=True,
        decay_input=False, surrogate=ATan(),
    )  # fmt: skip
    assert torch.equal(lif(x), expected)


def test_lif_shapes_dtype_and_gradient_reach_input() -> None:
    T, B, L, D = 4, 2, 3, 5
    gen = torch.Generator().manual_seed(4)
    x = (torch.rand(T, B, L, D, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    s = LIF()(x)
    assert s.shape == (T, B, L, D)
    assert s.dtype == torch.float64
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    s.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float64
    assert (x.grad != 0).all()


def test_lif_elements_are_independent_across_non_time_axes() -> None:
    # Permuting batch/token/feature positions permutes the output the same way: no axis mixing.
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(4, 2, 3, 5, generator=gen) * 3
    lif = LIF()
    perm = torch.randperm(2 * 3 * 5, generator=gen)
    flat = x.reshape(4, -1)
    torch.testing.assert_close(lif(flat[:, perm]), lif(flat)[:, perm])
    torch.testing.assert_close(lif(x[:, 1:]), lif(x)[:, 1:])


def test_lif_train_and_eval_identical_outputs_and_gradients() -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(4, 2, 3, 5, generator=gen) * 3
    lif = LIF()
    results = []
    for mode in (True, False):
        lif.train(mode)
        xi = x.clone().requires_grad_(True)
        s = lif(xi)
        s.sum().backward()
        results.append((s.detach(), xi.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_lif_keeps_no_state_between_calls() -> None:
    gen = torch.Generator().manual_seed(7)
    x1, x2 = torch.rand(2, 4, 3, generator=gen) * 3
    lif = LIF()
    first = lif(x2)
    lif(x1)
    assert torch.equal(lif(x2), first)
    assert list(lif.buffers()) == [] and lif.state_dict() == {}


def test_lif_default_surrogate_is_fresh_atan_per_neuron() -> None:
    a, b = LIF(), LIF()
    assert isinstance(a.surrogate, ATan) and a.surrogate.alpha == 2.0
    assert a.surrogate is not b.surrogate
    assert LIF(surrogate_alpha=3.0).surrogate.alpha == 3.0


def test_lif_surrogate_by_name_and_by_module() -> None:
    lif = LIF(surrogate="sigmoid", surrogate_alpha=2.5)
    assert isinstance(lif.surrogate, Sigmoid) and lif.surrogate.alpha == 2.5
    sg = ATan(alpha=1.5)
    assert LIF(surrogate=sg).surrogate is sg
    with pytest.raises(ValueError, match="surrogate_alpha"):
        LIF(surrogate=sg, surrogate_alpha=2.0)
    with pytest.raises(ValueError, match="unknown surrogate"):
        LIF(surrogate="relu")
    with pytest.raises(TypeError, match="surrogate"):
        LIF(surrogate=torch.sigmoid)  # a plain function has no repr/state: not accepted


def test_lif_repr_lists_hyperparameters() -> None:
    text = repr(LIF(tau=10.0, v_threshold=0.5, reset="soft"))
    for part in (
        "tau=10.0",
        "v_threshold=0.5",
        "v_reset=0.0",
        "reset='soft'",
        "detach_reset=True",
        "decay_input=True",
        "(surrogate): ATan(alpha=2.0, spiking=True)",
    ):
        assert part in text


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_lif_pickle_and_deepcopy(clone) -> None:
    lif = LIF(tau=4.0, surrogate="sigmoid")
    twin = clone(lif)
    x = torch.rand(3, 2, 4) * 3
    assert torch.equal(twin(x), lif(x))
    assert twin.surrogate is not lif.surrogate


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(tau=0.5), "tau"),
        (dict(tau=float("nan")), "tau"),
        (dict(v_threshold=0.0), "v_threshold"),
        (dict(v_threshold=-1.0), "v_threshold"),
        (dict(v_reset=1.0), "v_reset"),
        (dict(reset="none"), "reset"),
    ],
)
def test_invalid_hyperparameters_raise(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LIF(**kw)
    full = dict(tau=2.0) | kw
    with pytest.raises(ValueError, match=match):
        lif_multistep(torch.zeros(2, 3), surrogate=ATan(), **full)


def test_lif_multistep_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="time dimension"):
        lif_multistep(torch.tensor(1.0), tau=2.0, surrogate=ATan())
    with pytest.raises(TypeError, match="floating point"):
        lif_multistep(torch.ones(3, 2, dtype=torch.long), tau=2.0, surrogate=ATan())


def test_lif_works_inside_sequential_with_other_modules() -> None:
    net = nn.Sequential(LIF(), LIF(v_threshold=0.5))
    x = torch.rand(4, 2, 6) * 3
    assert net(x).shape == (4, 2, 6)


# --------------------------------------------------------------------------------------------
# Fused implementation (the default) against the plain autograd reference
# --------------------------------------------------------------------------------------------

# (tau, v_threshold, v_reset): SpikeBERT's defaults, tau = 1 (no memory), and an odd mix.
NEURONS = [(2.0, 1.0, 0.0), (1.0, 0.5, -0.3), (3.7, 1.3, 0.4)]
SURROGATE_CASES = [(ATan, 2.0), (ATan, 0.7), (Sigmoid, 4.0), (Sigmoid, 1.5)]


def random_currents(shape: tuple[int, ...], seed: int, dtype=torch.float64) -> torch.Tensor:
    """Random currents around the threshold, a third of them on a 1/8 grid (exact H == v_th ties
    and exact zeros occur)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 1.5 + 0.8
    grid = torch.randint(-8, 24, shape, generator=gen).to(torch.float64) / 8
    pick = torch.rand(shape, generator=gen) < 1 / 3
    return torch.where(pick, grid, x).to(dtype)


def fused_and_reference(x: torch.Tensor, w: torch.Tensor, **kw):
    """(spikes, dL/dx) of the fused path and of the reference, with L = sum(w * spikes)."""
    out = []
    for fn in (lif_multistep, lif_multistep_reference):
        xi = x.detach().clone().requires_grad_(True)
        s = fn(xi, **kw)
        (g,) = torch.autograd.grad((s * w).sum(), xi)
        out.append((s.detach(), g))
    return out


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize(("sg_cls", "alpha"), SURROGATE_CASES)
@pytest.mark.parametrize(("tau", "v_th", "v_reset"), NEURONS)
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_fused_matches_reference_grid(
    reset, detach_reset, decay_input, tau, v_th, v_reset, sg_cls, alpha, steps
) -> None:
    seed = zlib.crc32(repr((reset, detach_reset, decay_input, tau, steps, alpha)).encode())
    x = random_currents((steps, 3, 7), seed)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    kw = dict(
        tau=tau, v_threshold=v_th, v_reset=v_reset, reset=reset, detach_reset=detach_reset,
        decay_input=decay_input, surrogate=sg_cls(alpha=alpha),
    )  # fmt: skip
    assert lif_multistep_fusable(x, kw["surrogate"])
    (s, g), (s_ref, g_ref) = fused_and_reference(x, w, **kw)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)
    # Without a graph the fused path also returns V, bit for bit (up to the sign of zero).
    with torch.no_grad():
        s_v, v = lif_multistep(x, return_v=True, **kw)
        s_v_ref, v_ref = lif_multistep_reference(x, return_v=True, **kw)
    assert torch.equal(s_v, s_v_ref) and torch.equal(v, v_ref) and torch.equal(s_v, s)


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("detach_reset", [True, False])
def test_fused_matches_reference_float32(reset: str, detach_reset: bool) -> None:
    x = random_currents((4, 8, 5, 16), 11, dtype=torch.float32)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(12))
    # v_threshold 0.3 and tau 3 are not exact in binary: rounding must match the reference's.
    kw = dict(
        tau=3.0, v_threshold=0.3, v_reset=0.1, reset=reset, detach_reset=detach_reset,
        surrogate=ATan(),
    )  # fmt: skip
    x = x * 0.5
    (s, g), (s_ref, g_ref) = fused_and_reference(x, w, **kw)
    assert s.dtype == torch.float32 and torch.equal(s, s_ref)
    assert 0.1 < s.mean().item() < 0.9
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [lambda x: x[..., 0], lambda x: x[:, 0, 0, :2], lambda x: x, lambda x: x.transpose(1, 3)],
)
def test_fused_any_trailing_shape_and_strides(make) -> None:
    x = make(random_currents((5, 2, 3, 4), 13))
    w = torch.ones_like(x)
    (s, g), (s_ref, g_ref) = fused_and_reference(x, w, tau=2.0, surrogate=ATan())
    assert s.shape == x.shape and torch.equal(s, s_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)


def test_fused_module_default_and_flag() -> None:
    x = random_currents((4, 2, 3, 5), 14).requires_grad_(True)
    fused, ref = LIF(), LIF(fused=False)
    assert fused.fused and not ref.fused
    s, s_ref = fused(x), ref(x)
    assert torch.equal(s, s_ref)
    assert s.grad_fn is not None and "LIFMultistep" in type(s.grad_fn).__name__
    assert "LIFMultistep" not in type(s_ref.grad_fn).__name__
    (g,) = torch.autograd.grad(s.sum(), x)
    (g_ref,) = torch.autograd.grad(s_ref.sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)
    for mode in (True, False):  # train and eval alike
        fused.train(mode)
        assert torch.equal(fused(x.detach()), s_ref.detach())


def test_fused_falls_back_where_it_does_not_apply() -> None:
    x = torch.rand(3, 4) * 3
    assert lif_multistep_fusable(x, ATan()) and lif_multistep_fusable(x.double(), Sigmoid())
    assert not lif_multistep_fusable(x.half(), ATan())  # other dtypes
    assert not lif_multistep_fusable(x, ATan(spiking=False))  # the smooth primitive
    assert not lif_multistep_fusable(x, nn.Sigmoid())  # any other module

    class Hard(ATan):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 1.0

    assert not lif_multistep_fusable(x, Hard())  # a custom forward
    sg = ATan()
    handle = sg.register_forward_hook(lambda *args: None)
    assert not lif_multistep_fusable(x, sg)  # the fused path would skip the hook
    handle.remove()
    assert lif_multistep_fusable(x, sg)
    # A smooth spike module takes the reference and still works.
    xs = x.clone().requires_grad_(True)
    out = lif_multistep(xs, tau=2.0, surrogate=ATan(spiking=False))
    assert out.grad_fn is not None and not torch.equal(out, out.round())


def test_fused_surrogate_subclass_with_own_closed_form() -> None:
    class Triangle(Sigmoid):  # a closed-form derivative the fused path takes via `_grad`
        @classmethod
        def _grad(cls, x: torch.Tensor, alpha: float) -> torch.Tensor:
            return (1.0 - (alpha * x).abs()).clamp(min=0.0) * alpha

    x = random_currents((4, 6), 15)
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    kw = dict(tau=2.0, detach_reset=False, surrogate=Triangle(alpha=0.8))
    (s, g), (s_ref, g_ref) = fused_and_reference(x, w, **kw)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)


def test_fused_higher_order_gradients_need_reference() -> None:
    x = random_currents((3, 4), 17).requires_grad_(True)
    (g,) = torch.autograd.grad(LIF()(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()  # the fused backward is not differentiable again
    (g2,) = torch.autograd.grad(LIF(fused=False)(x).sum(), x, create_graph=True)
    torch.testing.assert_close(g, g2.detach(), rtol=1e-9, atol=1e-12)
    g2.sum().backward()  # the reference graph is


class _LinearisedProbe(torch.autograd.Function):
    """Forward: the LIF dynamics with each spike linearised around ``x0``,
    ``S = S0 + g(U) - g(U0)`` with ``g`` the surrogate's smooth primitive (``S0``, ``U0`` are the
    spikes and ``H - v_th`` at ``x0``), a smooth function whose derivative at ``x0`` is exactly
    the surrogate gradient of the LIF. Backward: the fused LIF's backward at ``x0``. So
    ``gradcheck`` at ``x0`` compares the hand-written backward with finite differences."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, x0: torch.Tensor, kw: dict) -> torch.Tensor:
        ctx.x0, ctx.kw = x0, kw
        return linearised_lif(x, x0, **kw)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        with torch.enable_grad():
            x0 = ctx.x0.detach().requires_grad_(True)
            s = lif_multistep(x0, **ctx.kw)
            assert "LIFMultistep" in type(s.grad_fn).__name__
            (g,) = torch.autograd.grad(s, x0, grad)
        return g, None, None


def linearised_lif(
    x, x0, *, tau, v_threshold, v_reset, reset, detach_reset, decay_input, surrogate
):
    s0, u0 = [], []
    for point in (x0, x):
        v = torch.full_like(x[0], v_reset)
        out = []
        for t in range(x.shape[0]):
            h = (
                v + (point[t] - (v - v_reset)) / tau
                if decay_input
                else v - (v - v_reset) / tau + point[t]
            )
            u = h - v_threshold
            if point is x0:
                s0.append((u >= 0).to(x.dtype))
                u0.append(u)
                s = s0[t]
            else:
                s = s0[t] + surrogate.primitive(u) - surrogate.primitive(u0[t])
            r = s0[t] if detach_reset else s
            v = r * v_reset + (1 - r) * h if reset == "hard" else h - r * v_threshold
            out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("sg_cls", [ATan, Sigmoid])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_fused_backward_gradcheck(reset, detach_reset, decay_input, sg_cls) -> None:
    # Step functions have zero finite differences, so gradcheck runs on the linearised dynamics,
    # whose exact derivative at x0 is the surrogate gradient that the fused backward returns.
    x0 = random_currents((4, 3), 18)
    kw = dict(
        tau=2.5, v_threshold=0.9, v_reset=-0.2, reset=reset, detach_reset=detach_reset,
        decay_input=decay_input, surrogate=sg_cls(alpha=1.5),
    )  # fmt: skip
    assert torch.equal(linearised_lif(x0, x0, **kw), lif_multistep(x0, **kw))
    x = x0.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda xi: _LinearisedProbe.apply(xi, x0, kw), (x,), eps=1e-6, atol=1e-6, rtol=1e-5
    )
