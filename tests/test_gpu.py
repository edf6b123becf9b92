"""GPU checks: on CUDA, every neuron and model computes what the CPU references compute.

Skipped without CUDA (this project's CI has no GPU); run them where one is present with
``pytest -m gpu`` or ``bash scripts/gpu_check.sh`` (which also times the benchmarks there).
Values are compared in float64 with TF32 off, so cuDNN's and cuBLAS's summation orders stay far
below the tolerances and spikes must agree exactly. ``SPIKEFORMERS_TEST_DEVICE=cpu`` runs the
same tests against the CPU instead (it checks the tests' plumbing, not a GPU).
"""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

from spikeformers import create_model, list_models
from spikeformers.cli import main
from spikeformers.neurons.lif_functional import lif_multistep, lif_multistep_reference
from spikeformers.neurons.surrogate import ATan
from tests.conftest import tiny_overrides
from tests.neurons.test_bpsn import _grads, _inputs, _random_bpsn
from tests.test_cli import FAST, TINY, _data_flags

DEVICE = torch.device(os.environ.get("SPIKEFORMERS_TEST_DEVICE", "cuda"))
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU"
    ),
]


@pytest.fixture(autouse=True)
def _no_tf32():
    if DEVICE.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize(
    ("reset_passes", "detach_reset"), [(0, False), (1, False), (1, True), (2, False)]
)
def test_bpsn_on_device_matches_the_cpu_sequential_reference(reset_passes, detach_reset):
    d = 130  # several channel groups in the kernel gradient
    neuron = _random_bpsn(d, kernel_size=8, reset_passes=reset_passes, detach_reset=detach_reset)
    x, mask = _inputs(4, 29, d, dtype=torch.float64)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    x_ref = x.clone().requires_grad_(True)
    s_ref = neuron.forward_sequential(x_ref, mask)
    g_ref = _grads(neuron, x_ref, s_ref, weight)

    moved = copy.deepcopy(neuron).to(DEVICE)
    x_dev = x.to(DEVICE).requires_grad_(True)
    s_dev = moved(x_dev, mask.to(DEVICE))
    assert s_dev.device.type == DEVICE.type
    assert torch.equal(s_dev.cpu(), s_ref)
    assert 0.05 < float(s_ref.detach().mean()) < 0.95
    for g_dev, g in zip(_grads(moved, x_dev, s_dev, weight.to(DEVICE)), g_ref, strict=True):
        if g is None:  # β without reset passes
            assert g_dev is None
            continue
        torch.testing.assert_close(g_dev.cpu(), g, atol=1e-9, rtol=0)


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_fused_lif_on_device_matches_the_cpu_reference(reset):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 5, 7, generator=g, dtype=torch.float64) * 1.5 + 0.5
    w = torch.randn(x.shape, generator=g, dtype=x.dtype)
    kw = dict(tau=2.0, reset=reset, detach_reset=True, surrogate=ATan())
    x_ref = x.clone().requires_grad_(True)
    s_ref = lif_multistep_reference(x_ref, **kw)
    (g_ref,) = torch.autograd.grad((s_ref * w).sum(), x_ref)
    x_dev = x.to(DEVICE).requires_grad_(True)
    s_dev = lif_multistep(x_dev, **kw)
    (g_dev,) = torch.autograd.grad((s_dev * w.to(DEVICE)).sum(), x_dev)
    assert torch.equal(s_dev.cpu(), s_ref)
    torch.testing.assert_close(g_dev.cpu(), g_ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", list_models())
def test_every_variant_computes_the_same_loss_and_gradients_on_device(name):
    torch.manual_seed(0)
    model = create_model(name, **tiny_overrides(50, name=name)).double().train()
    moved = copy.deepcopy(model).to(DEVICE)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 50, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # one padded row
    labels = torch.tensor([0, 1, 1])
    out = model(ids, attention_mask=mask, labels=labels)
    out_dev = moved(ids.to(DEVICE), attention_mask=mask.to(DEVICE), labels=labels.to(DEVICE))
    torch.testing.assert_close(out_dev.logits.cpu(), out.logits, atol=1e-8, rtol=0)
    out.loss.backward()
    out_dev.loss.backward()
    for (pname, p), p_dev in zip(model.named_parameters(), moved.parameters(), strict=True):
        if p.grad is None:
            assert p_dev.grad is None, pname
            continue
        torch.testing.assert_close(p_dev.grad.cpu(), p.grad, atol=1e-8, rtol=1e-6, msg=pname)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cli_trains_and_distills_on_device(tmp_path, tiny_teacher_dir, csv_data, capsys, precision):
    if precision == "fp16" and DEVICE.type != "cuda":
        pytest.skip("fp16 training needs CUDA")
    common = [*_data_flags(csv_data), *FAST, "--device", str(DEVICE), "--precision", precision]
    teacher = str(tiny_teacher_dir)
    argv = ["train", "--model", "snnbert-tiny", "--tokenizer", teacher, *common]
    assert main([*argv, "--out", str(tmp_path / "direct")]) == 0
    argv = ["distill", "--stage", "task", "--model", "spikebert-tiny", "--teacher", teacher]
    assert main([*argv, *TINY, *common, "--out", str(tmp_path / "kd")]) == 0
    capsys.readouterr()
    for run in ("direct", "kd"):
        metrics = json.loads((tmp_path / run / "metrics.json").read_text())
        assert 0.0 <= metrics["test"]["accuracy"] <= 1.0, run
        rc = json.loads((tmp_path / run / "run_config.json").read_text())
        assert rc["train"]["precision"] == precision, run
