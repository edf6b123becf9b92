"""Fused vs reference multi-step LIF: one layer forward+backward, and a SpikeBERT student step.

Both implementations run in one process, interleaved (the order alternates every repeat), on the
same inputs, so machine noise hits each alike; compare the ratios. The reference is the plain
autograd graph (:func:`spikeformers.neurons.lif_functional.lif_multistep_reference`, selected with
``LIF(fused=False)``). Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lif_speed.py [--threads 1] [--repeats 15]

Writes ``benchmarks/results/lif_speed.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402

from spikeformers import create_model  # noqa: E402
from spikeformers.evaluation import forward_logits  # noqa: E402
from spikeformers.models.base import classification_loss  # noqa: E402
from spikeformers.neurons import LIF  # noqa: E402

IMPLS = ("fused", "reference")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _interleaved(
    fns: dict[str, Callable[[], None]], device: torch.device, repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per call of each function, alternating the order every repeat."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(repeats):
        for k in keys if r % 2 == 0 else keys[::-1]:
            _sync(device)
            t0 = time.perf_counter()
            fns[k]()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return times


def _summary(times: dict[str, list[float]]) -> dict:
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {
        "median_ms": med,
        "min_ms": {k: min(v) * 1e3 for k, v in times.items()},
        "speedup": med["reference"] / med["fused"],
    }


def saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``fn`` runs."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[(t.untyped_storage().data_ptr(), t.storage_offset())] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def bench_layer(shape: tuple[int, ...], device: torch.device, repeats: int) -> dict:
    """One ``LIF()`` (SpikeBERT defaults: tau 2, hard reset, detach_reset, ATan 2), ``shape``."""
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randn(shape, generator=g) * 1.5 + 0.5).to(device)
    w = torch.randn(shape, generator=g).to(device)  # upstream gradient
    lifs = {"fused": LIF(fused=True), "reference": LIF(fused=False)}
    x = x0.clone().requires_grad_(True)
    with torch.no_grad():
        same = torch.equal(lifs["fused"](x0), lifs["reference"](x0))
    grads = {}
    for k, lif in lifs.items():
        (grads[k],) = torch.autograd.grad(lif(x), x, w)
    max_grad_diff = (grads["fused"] - grads["reference"]).abs().max().item()

    def fwd_bwd(lif: nn.Module) -> Callable[[], None]:
        def run() -> None:
            x.grad = None
            lif(x).backward(w)

        return run

    def fwd(lif: nn.Module) -> Callable[[], None]:
        def run() -> None:
            lif(x)

        return run

    out = {
        "shape": list(shape),
        "spikes_equal": same,
        "max_abs_grad_diff_fp32": max_grad_diff,
        "saved_for_backward_MiB": {
            k: saved_bytes(lambda m=m: m(x)) / 2**20 for k, m in lifs.items()
        },
    }
    out["forward_backward"] = _summary(
        _interleaved({k: fwd_bwd(m) for k, m in lifs.items()}, device, repeats, warmup=2)
    )
    out["forward_only"] = _summary(
        _interleaved({k: fwd(m) for k, m in lifs.items()}, device, repeats, warmup=2)
    )
    return out


def bench_student(device: torch.device, repeats: int, batch: int, seq_len: int) -> dict:
    """spikebert-mini (2 layers, mlp_ratio 2) train step: forward, backward, fused AdamW."""
    overrides = dict(num_layers=2, mlp_ratio=2.0, vocab_size=30522)
    models = {}
    for k in IMPLS:
        torch.manual_seed(0)
        m = create_model("spikebert-mini", **overrides).to(device).train()
        for mod in m.modules():
            if isinstance(mod, LIF):
                mod.fused = k == "fused"
        models[k] = m
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30522, (batch, seq_len), generator=g).to(device)
    b = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": None}
    labels = torch.randint(0, 2, (batch,), generator=g).to(device)
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-5, fused=True) for k, m in models.items()}

    def step(k: str) -> Callable[[], None]:
        def run() -> None:
            opts[k].zero_grad(set_to_none=True)
            loss = classification_loss(forward_logits(models[k], b), labels)
            loss.backward()
            opts[k].step()

        return run

    # Before any update both models are identical: their logits must match bit for bit.
    with torch.no_grad():
        same = torch.equal(
            forward_logits(models["fused"], b), forward_logits(models["reference"], b)
        )
    cfg = models["fused"].config
    out = {
        "model": "spikebert-mini",
        "overrides": overrides,
        "hidden_size": cfg.hidden_size,
        "time_steps": cfg.time_steps,
        "batch": batch,
        "seq_len": seq_len,
        "n_lif": sum(isinstance(m, LIF) for m in models["fused"].modules()),
        "logits_equal_at_init": same,
    }
    out["train_step"] = _summary(
        _interleaved({k: step(k) for k in IMPLS}, device, repeats, warmup=1)
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--step-repeats", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=40)
    p.add_argument("--out", default="lif_speed")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    load_before = os.getloadavg()
    layers = [bench_layer((4, a.batch_size, a.seq_len, d), device, a.repeats) for d in (384, 768)]
    for r in layers:
        fb, fo = r["forward_backward"], r["forward_only"]
        print(
            f"LIF {r['shape']}: fwd+bwd {fb['median_ms']['reference']:.1f} -> "
            f"{fb['median_ms']['fused']:.1f} ms ({fb['speedup']:.2f}x); fwd "
            f"{fo['median_ms']['reference']:.1f} -> {fo['median_ms']['fused']:.1f} ms "
            f"({fo['speedup']:.2f}x); spikes equal {r['spikes_equal']}",
            flush=True,
        )
    student = bench_student(device, a.step_repeats, a.batch_size, a.seq_len)
    ts = student["train_step"]
    print(
        f"student step: {ts['median_ms']['reference']:.0f} -> {ts['median_ms']['fused']:.0f} ms "
        f"({ts['speedup']:.2f}x); logits equal {student['logits_equal_at_init']}",
        flush=True,
    )
    info = machine() | {
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    result = {
        "machine": info,
        "device": str(device),
        "repeats": a.repeats,
        "step_repeats": a.step_repeats,
        "command": "OMP_NUM_THREADS=1 .venv/bin/python " + " ".join(sys.argv),
        "lif_layer": layers,
        "student_step": student,
    }
    print(save(a.out, result))


if __name__ == "__main__":
    main()
