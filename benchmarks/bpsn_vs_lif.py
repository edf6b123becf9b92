"""BPSN vs a sequential LIF under individual coding: training speed, memory, synaptic operations.

SNN-BERT (Su et al., Neural Networks 180 (2024) 106630) claims that its Bidirectional Parallel
Spiking Neuron trains 3.5x faster with 3.8x less memory than (most likely) a serial neuron under
individual coding, and that individual coding needs far fewer operations than repeat coding
(``T = 4``). This script measures the project's reconstruction of both claims on one model:

1. **Training step** of the same SNN-BERT (``spikeformers.models.snnbert``), ``neuron="bpsn"``
   (all tokens in parallel) vs ``neuron="lif"`` (a LIF looping over the ``L`` tokens), same
   weights seed, same random data: median wall time of ``--steps`` steps (forward + backward +
   AdamW; direct training with cross-entropy, no distillation features) after ``--warmup``
   steps, and of its forward + backward part alone (the rest is AdamW, which is the same for
   both neurons: on CPU it is a large fixed share because of the ``V x D`` embedding table).
   The settings are timed in one process, interleaved step by step, so that all of them see the
   same background load. ``--neurons lif bpsn repeat`` adds the other coding as a setting:
   SpikeBERT (``spikeformers.models.spikebert``, LIF, every token re-entered at each of
   ``--time-steps`` steps) of the same depth, width and heads, timed and measured the same way,
   plus a table of BPSN against it. The paper does not name the target of its 3.5x / 3.8x; this
   is the other plausible one.
2. **Memory**, each (neuron, L) in a fresh subprocess: ``saved_MB``, the activations autograd
   saves for backward in one forward (unique storages, parameters excluded, via
   ``torch.autograd.graph.saved_tensors_hooks``: the part the neuron choice changes, the same on
   CPU and CUDA; a custom autograd Function's ``save_for_backward`` goes through the same hooks);
   and ``step_peak_MB``, the peak of live tensor bytes during one training step (the second one,
   so the AdamW state already exists) above the live bytes at its start: activations, gradients
   and temporaries. It is allocator-level on both devices: ``torch.cuda.max_memory_allocated`` on
   CUDA, the CPU allocator's running total from ``torch.profiler`` (``profile_memory=True``) on
   CPU. ``static_MB`` (parameters + AdamW state) is added for ``total_peak_MB``. The old CPU
   measure, peak RSS (``ru_maxrss``) minus the RSS before the first step, is kept in the JSON as
   ``rss_peak_delta_MB`` only: ``ru_maxrss`` is a process-lifetime maximum that also counts the
   allocator's caching and fragmentation and the model construction, so it is coarse.
3. **Synaptic operations per sequence** (forward, one sequence of ``L`` tokens), counted by
   forward pre-hooks on every ``nn.Linear`` inside the blocks: a Linear whose input holds
   non-negative integer spike counts costs ``sum(input) * out_features`` accumulates (one per
   spike per synapse). The attention products, the distillation transforms and the classifier are
   not counted. Individual coding (SNN-BERT, each token once) is compared with repeat coding
   (SpikeBERT at the same depth and width, every token re-entered ``T`` times); all models are
   randomly initialised, so firing rates are those at initialisation, not of trained models.
   The dense bound (every input spiking once) is ``L * N * (4 + 2r) * D^2`` for individual coding
   and ``T`` times that for repeat coding.
4. **Neuron only**: one neuron layer of width ``D`` exactly as the model builds it (BPSN vs
   ``TokenLIF``), forward + backward of ``sum(spikes * w)`` on a random ``[B, L, D]`` input with
   an all-ones mask (as the model gets): median wall time of ``--neuron-reps`` interleaved
   repetitions, saved activations and allocator-level peak, measured in this process. It
   isolates the neuron from the ``Linear`` layers, embeddings and optimiser that dominate a step.

Usage::

    python benchmarks/bpsn_vs_lif.py                 # CPU, 2-3 minutes on 2 shared cores
    python benchmarks/bpsn_vs_lif.py --device cuda --threads 0

Writes a Markdown table to stdout and ``benchmarks/results/bpsn_vs_lif.json``.

Threads: ``--threads 1`` is the CPU default because on shared cores a multi-threaded OpenMP op
waits for descheduled threads, inflating every small op by up to 100x and burying the
comparison in noise; ``--threads 0`` keeps PyTorch's default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import spikeformers
from spikeformers.models.snnbert import (
    SnnBertConfig,
    SnnBertForSequenceClassification,
    build_token_neuron,
)

RESULTS = Path(__file__).resolve().parent / "results" / "bpsn_vs_lif.json"

# Neuron settings compared in the training benchmark (config overrides of SnnBertConfig); the
# first is the baseline the ratios refer to.
NEURONS = {
    "lif": {"neuron": "lif"},
    "bpsn": {"neuron": "bpsn"},  # the default: reset_mode="graded"
    "bpsn-passes": {"neuron": "bpsn", "reset_mode": "passes", "reset_passes": 1},
    "bpsn-noreset": {"neuron": "bpsn", "reset_mode": "passes", "reset_passes": 0},
}
# Not an SNN-BERT neuron but the other coding: SpikeBERT (LIF, every token re-entered at each of
# --time-steps steps) at the same depth, width and heads. Training step and memory only.
REPEAT = "repeat"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 128], help="sequence lengths L")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=384, help="width D (MiniLM teacher: 384)")
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--vocab", type=int, default=30522, help="BERT/MiniLM vocabulary size")
    p.add_argument("--time-steps", type=int, default=4, help="T of the repeat-coding baseline")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    p.add_argument(
        "--neuron-reps", type=int, default=20, help="timed reps of the neuron-only comparison"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads; 0 = torch default")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--neurons",
        nargs="+",
        default=["lif", "bpsn"],
        choices=[*NEURONS, REPEAT],
        help="settings to train; ratios are relative to the first. "
        f"'{REPEAT}' is SpikeBERT (repeat coding, LIF, T = --time-steps) of the same size",
    )
    p.add_argument("--worker", nargs=2, metavar=("NEURON", "L"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def model_kwargs(args: argparse.Namespace) -> dict:
    return dict(
        vocab_size=args.vocab,
        num_layers=args.layers,
        hidden_size=args.hidden,
        num_heads=args.heads,
        max_position_embeddings=max(512, *args.lengths),
    )


def build_model(args: argparse.Namespace, setting: str) -> nn.Module:
    """The classifier trained for one setting of ``--neurons`` (see ``NEURONS`` and ``REPEAT``)."""
    if setting == REPEAT:
        from spikeformers.models.spikebert import (
            SpikeBertConfig,
            SpikeBertForSequenceClassification,
        )

        return SpikeBertForSequenceClassification(
            SpikeBertConfig(**model_kwargs(args), time_steps=args.time_steps)
        )
    return SnnBertForSequenceClassification(SnnBertConfig(**model_kwargs(args), **NEURONS[setting]))


def make_batch(args: argparse.Namespace, length: int, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(5, args.vocab, (args.batch_size, length), generator=g)
    labels = torch.randint(0, 2, (args.batch_size,), generator=g)
    mask = torch.ones_like(ids)
    return {k: v.to(device) for k, v in dict(ids=ids, mask=mask, labels=labels).items()}


def _rss_mb() -> float | None:
    """Current resident set size (Linux ``/proc``); ``None`` elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB else


def saved_tensor_mb(module: nn.Module, forward: Callable[[], object]) -> float:
    """MiB of distinct non-parameter storages autograd saves while ``forward()`` runs."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return sum(seen.values()) / 2**20


def saved_activation_mb(model: nn.Module, batch: dict) -> float:
    """MiB of distinct non-parameter storages autograd saves during one forward of ``model``."""
    return saved_tensor_mb(
        model, lambda: model(batch["ids"], attention_mask=batch["mask"], labels=batch["labels"])
    )


def peak_alloc_mb(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak of live tensor bytes while ``fn()`` runs, above those live when it starts (MiB).

    CUDA: ``max_memory_allocated`` after ``reset_peak_memory_stats``. CPU: the running total of
    the CPU allocator's allocations and frees recorded by ``torch.profiler`` with
    ``profile_memory=True`` (it starts at 0 when profiling starts). ``None`` if the profiler's
    event tree is not available in this PyTorch.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    try:
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        stack = list(prof.profiler.kineto_results.experimental_event_tree())
        peak = 0
        while stack:
            node = stack.pop()
            if node.tag == _EventType.Allocation:
                peak = max(peak, node.extra_fields.total_allocated)
            stack.extend(node.children)
    except (ImportError, AttributeError, RuntimeError):  # private API; absent in other versions
        return None
    return peak / 2**20


def count_ops(fn: Callable[[], object]) -> int | None:
    """Non-view ATen operators dispatched while ``fn()`` runs, backward included.

    Below autograd, so these are the operators that compute: on CUDA each launches at least one
    kernel. The count depends on the code path, not on the device or the load. ``None`` if
    PyTorch's dispatch-mode hook (a semi-private API) is not available.
    """
    try:
        from torch.utils._python_dispatch import TorchDispatchMode
    except ImportError:
        return None

    class _Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            self.n += not func.is_view
            return func(*args, **(kwargs or {}))

    with _Count() as counter:
        fn()
    return counter.n


def static_mb(model: nn.Module, opt: torch.optim.Optimizer) -> float:
    """MiB of parameters plus optimiser state tensors."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    for state in opt.state.values():
        total += sum(v.numel() * v.element_size() for v in state.values() if torch.is_tensor(v))
    return total / 2**20


class Trainee:
    """One SNN-BERT with its AdamW optimiser and a fixed batch; ``step()`` returns seconds.

    ``last_fwd_bwd`` holds the forward + backward part of the last step (the rest is AdamW).
    """

    def __init__(self, args: argparse.Namespace, neuron: str, length: int) -> None:
        self.device = torch.device(args.device)
        torch.manual_seed(0)  # same initial weights for every neuron setting
        self.model = build_model(args, neuron).to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.batch = make_batch(args, length, self.device)
        self.last_fwd_bwd = 0.0

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def step(self) -> float:
        self.sync()
        t0 = time.perf_counter()
        b = self.batch
        out = self.model(b["ids"], attention_mask=b["mask"], labels=b["labels"])
        out.loss.backward()
        self.sync()
        self.last_fwd_bwd = time.perf_counter() - t0
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sync()
        return time.perf_counter() - t0


def memory_worker(args: argparse.Namespace) -> dict:
    """Memory of one (neuron, L) training step; runs in a fresh process."""
    neuron, length = args.worker[0], int(args.worker[1])
    t = Trainee(args, neuron, length)
    cuda = t.device.type == "cuda"
    t.sync()
    rss_base = None if cuda else _rss_mb()
    t.step()  # the first step also allocates the AdamW state
    step_peak = peak_alloc_mb(t.step, t.device)  # activations + gradients + temporaries
    static = static_mb(t.model, t.opt)
    rss_peak = None if cuda or rss_base is None else _peak_rss_mb() - rss_base
    b = t.batch
    return {
        "neuron": neuron,
        "L": length,
        "ops_fwd_bwd": count_ops(
            lambda: t.model(b["ids"], attention_mask=b["mask"], labels=b["labels"]).loss.backward()
        ),
        "saved_MB": saved_activation_mb(t.model, t.batch),
        "step_peak_MB": step_peak,
        "static_MB": static,
        "total_peak_MB": None if step_peak is None else static + step_peak,
        "peak_kind": "cuda_max_memory_allocated" if cuda else "cpu_allocator_profiler",
        "rss_peak_delta_MB": rss_peak,
    }


def time_training(
    args: argparse.Namespace, length: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Step times and their forward + backward parts per neuron setting, interleaved by step.

    Interleaving makes every setting see the same background load (shared machines drift).
    """
    trainees = {n: Trainee(args, n, length) for n in args.neurons}
    for _ in range(args.warmup):
        for t in trainees.values():
            t.step()
    times: dict[str, list[float]] = {n: [] for n in trainees}
    fwd_bwd: dict[str, list[float]] = {n: [] for n in trainees}
    for _ in range(args.steps):
        for n, t in trainees.items():
            times[n].append(t.step())
            fwd_bwd[n].append(t.last_fwd_bwd)
    return times, fwd_bwd


class NeuronLayer:
    """One neuron layer as the model builds it, with a fixed input; ``step()`` returns seconds."""

    def __init__(self, args: argparse.Namespace, neuron: str, length: int) -> None:
        self.device = torch.device(args.device)
        cfg = SnnBertConfig(**model_kwargs(args), **NEURONS[neuron])
        torch.manual_seed(0)
        self.neuron = build_token_neuron(cfg, args.hidden).to(self.device)
        g = torch.Generator().manual_seed(1)
        shape = (args.batch_size, length, args.hidden)
        self.x = torch.randn(shape, generator=g).to(self.device).requires_grad_(True)
        self.w = torch.randn(shape, generator=g).to(self.device)
        self.mask = torch.ones(shape[:2], device=self.device)

    def forward(self) -> torch.Tensor:
        return self.neuron(self.x, self.mask)

    def run(self) -> None:
        (self.forward() * self.w).sum().backward()
        self.x.grad = None
        self.neuron.zero_grad(set_to_none=True)

    def step(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        self.run()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0


def neuron_only(args: argparse.Namespace, length: int) -> list[dict]:
    """Forward + backward of one neuron layer per setting: interleaved times, saved, peak."""
    layers = {n: NeuronLayer(args, n, length) for n in args.neurons if n in NEURONS}
    for _ in range(2):
        for layer in layers.values():
            layer.step()
    times: dict[str, list[float]] = {n: [] for n in layers}
    for _ in range(args.neuron_reps):
        for n, layer in layers.items():
            times[n].append(layer.step())
    rows = []
    for n, layer in layers.items():
        with torch.no_grad():
            rate = float(layer.forward().mean())
        rows.append(
            {
                "neuron": n,
                "L": length,
                "shape": [args.batch_size, length, args.hidden],
                "fwd_bwd_ms_median": 1e3 * statistics.median(times[n]),
                "fwd_bwd_ms_min": 1e3 * min(times[n]),
                "ops_fwd_bwd": count_ops(layer.run),
                "saved_MB": saved_tensor_mb(layer.neuron, layer.forward),
                "peak_MB": peak_alloc_mb(layer.run, layer.device),
                "firing_rate": rate,
            }
        )
    return rows


def count_synops(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> dict:
    """Accumulates per sequence in the blocks' Linear layers (see the module docstring)."""
    totals = {"sops": 0.0, "spikes": 0.0, "inputs": 0.0, "dense_macs": 0.0}

    def hook(mod: nn.Linear, inp: tuple[torch.Tensor, ...]) -> None:
        x = inp[0]
        if bool((x >= 0).all()) and bool((x == x.round()).all()):
            totals["sops"] += float(x.sum()) * mod.out_features
            totals["spikes"] += float(x.sum())
            totals["inputs"] += x.numel()
        else:  # a real-valued input would be a MAC per element and synapse
            totals["dense_macs"] += x.numel() * mod.out_features

    hooks = [
        m.register_forward_pre_hook(hook)
        for m in model.blocks.modules()  # type: ignore[attr-defined]
        if isinstance(m, nn.Linear)
    ]
    with torch.no_grad():
        model(ids, attention_mask=mask)
    for h in hooks:
        h.remove()
    b = ids.shape[0]
    return {
        "sops_per_seq": totals["sops"] / b,
        "dense_macs_per_seq": totals["dense_macs"] / b,
        "mean_input_spike_count": totals["spikes"] / max(totals["inputs"], 1.0),
    }


def synops(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Individual (SNN-BERT) vs repeat (SpikeBERT, ``T``) coding at every length."""
    from spikeformers.models.spikebert import SpikeBertConfig, SpikeBertForSequenceClassification

    kw = model_kwargs(args)
    variants = {
        "snnbert bpsn (individual)": {"neuron": "bpsn"},
        "snnbert lif (individual)": {"neuron": "lif"},
        # SpikeBERT's encoding (Heaviside at 0: about half the inputs spike), to compare like
        # with like against the repeat-coding row below.
        "snnbert bpsn, heaviside encoder (individual)": {"neuron": "bpsn", "encoder": "heaviside"},
    }
    models: dict[str, nn.Module] = {}
    for name, over in variants.items():
        torch.manual_seed(0)
        models[name] = SnnBertForSequenceClassification(SnnBertConfig(**kw, **over))
    torch.manual_seed(0)
    models[f"spikebert lif (repeat, T={args.time_steps})"] = SpikeBertForSequenceClassification(
        SpikeBertConfig(**kw, time_steps=args.time_steps)
    )
    d, n, r = args.hidden, args.layers, 4.0
    rows = []
    for length in args.lengths:
        batch = make_batch(args, length, device)
        dense = length * n * (4 + 2 * r) * d * d
        for name, model in models.items():
            model.to(device).eval()
            repeat = args.time_steps if name.startswith("spikebert") else 1
            rows.append(
                {
                    "model": name,
                    "L": length,
                    **count_synops(model, batch["ids"], batch["mask"]),
                    "dense_bound_per_seq": dense * repeat,
                }
            )
    return rows


def machine_info(args: argparse.Namespace) -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "spikeformers": spikeformers.__version__,
        "python": platform.python_version(),
        "device": args.device,
        "torch_threads": args.threads or torch.get_num_threads(),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    return info


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}x"


def _mb(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}"


def _coding_table(result: dict) -> list[str]:
    """Lines of a table of BPSN (individual coding) against repeat coding, if both were run."""
    if not {"bpsn", REPEAT} <= set(result["config"]["neurons"]):
        return []
    T = result["config"]["time_steps"]
    lines = [
        "",
        f"| L | BPSN (individual) vs SpikeBERT LIF (repeat, T={T}) | step speed-up | "
        "fwd+bwd speed-up | saved acts less | step peak less | total peak less |",
        "|---|---|---|---|---|---|---|",
    ]
    by = {(r["neuron"], r["L"]): r for r in result["training"]}
    for length in result["config"]["lengths"]:
        b, r = by[("bpsn", length)], by[(REPEAT, length)]
        cells = [
            _ratio(r[k], b[k])
            for k in (
                "step_s_median",
                "fwd_bwd_s_median",
                "saved_MB",
                "step_peak_MB",
                "total_peak_MB",
            )
        ]
        lines.append(f"| {length} | | {' | '.join(cells)} |")
    return lines


def markdown(result: dict) -> str:
    """Markdown tables: training cost (ratios vs the first setting), one neuron layer, BPSN vs
    repeat coding (when both ran) and synaptic operations. "ops fwd+bwd" is :func:`count_ops`."""
    neurons = result["config"]["neurons"]
    base_name = neurons[0]
    lines = [
        f"| L | neuron | step s (median) | speed-up vs {base_name} | step s (min) | speed-up | "
        "fwd+bwd s (median) | speed-up | saved acts MB | less | step peak MB | less | "
        "total peak MB | less | ops fwd+bwd |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["neuron"], r["L"]): r for r in result["training"]}
    for length in result["config"]["lengths"]:
        base = by[(base_name, length)]
        for name in neurons:
            r = by[(name, length)]
            lines.append(
                f"| {length} | {name} | {r['step_s_median']:.3f} | "
                f"{_ratio(base['step_s_median'], r['step_s_median'])} | {r['step_s_min']:.3f} | "
                f"{_ratio(base['step_s_min'], r['step_s_min'])} | "
                f"{r['fwd_bwd_s_median']:.3f} | "
                f"{_ratio(base['fwd_bwd_s_median'], r['fwd_bwd_s_median'])} | "
                f"{_mb(r['saved_MB'])} | "
                f"{_ratio(base['saved_MB'], r['saved_MB'])} | {_mb(r['step_peak_MB'])} | "
                f"{_ratio(base['step_peak_MB'], r['step_peak_MB'])} | "
                f"{_mb(r['total_peak_MB'])} | "
                f"{_ratio(base['total_peak_MB'], r['total_peak_MB'])} | "
                f"{r.get('ops_fwd_bwd', 'n/a')} |"
            )
    layer_names = [n for n in neurons if n in NEURONS]  # repeat coding has no layer row
    lines += [
        "",
        "| L | neuron layer [B, L, D] | fwd+bwd ms (median) | speed-up vs first | "
        "fwd+bwd ms (min) | speed-up | saved MB | less | peak MB | less | firing rate | "
        "ops fwd+bwd |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["neuron"], r["L"]): r for r in result["neuron_only"]}
    for length in result["config"]["lengths"] if layer_names else []:
        base = by[(layer_names[0], length)]
        for name in layer_names:
            r = by[(name, length)]
            lines.append(
                f"| {length} | {name} {r['shape']} | {r['fwd_bwd_ms_median']:.1f} | "
                f"{_ratio(base['fwd_bwd_ms_median'], r['fwd_bwd_ms_median'])} | "
                f"{r['fwd_bwd_ms_min']:.1f} | "
                f"{_ratio(base['fwd_bwd_ms_min'], r['fwd_bwd_ms_min'])} | "
                f"{_mb(r['saved_MB'])} | {_ratio(base['saved_MB'], r['saved_MB'])} | "
                f"{_mb(r['peak_MB'])} | {_ratio(base['peak_MB'], r['peak_MB'])} | "
                f"{r['firing_rate']:.3f} | {r.get('ops_fwd_bwd', 'n/a')} |"
            )
    lines += _coding_table(result)
    lines += [
        "",
        "| L | model | SOPs / sequence | mean input spike count | dense bound / sequence | "
        "SOPs vs snnbert bpsn |",
        "|---|---|---|---|---|---|",
    ]
    ref = {}
    for r in result["synops"]:
        ref.setdefault(r["L"], r["sops_per_seq"])
    for r in result["synops"]:
        lines.append(
            f"| {r['L']} | {r['model']} | {_si(r['sops_per_seq'])} | "
            f"{r['mean_input_spike_count']:.3f} | {_si(r['dense_bound_per_seq'])} | "
            f"{_ratio(r['sops_per_seq'], ref[r['L']])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(memory_worker(args)))
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    info = machine_info(args)
    t0 = time.perf_counter()
    # Memory first, while this process is small: on Linux a child's ru_maxrss starts from its
    # parent's RSS at fork time, so forking after the timing models exist would hide the peaks.
    passthrough = sys.argv[1:] if argv is None else argv
    memory = {}
    for length in args.lengths:
        for neuron in args.neurons:
            cmd = [sys.executable, __file__, *passthrough, "--worker", neuron, str(length)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode:
                raise SystemExit(f"worker {neuron} L={length} failed:\n{proc.stderr}")
            memory[neuron, length] = json.loads(proc.stdout.strip().splitlines()[-1])
    training = []
    for length in args.lengths:
        times, fwd_bwd = time_training(args, length)
        for neuron in args.neurons:
            ts = times[neuron]
            row = memory[neuron, length] | {
                "step_s_median": statistics.median(ts),
                "step_s_min": min(ts),
                "step_s_all": ts,
                "fwd_bwd_s_median": statistics.median(fwd_bwd[neuron]),
                "fwd_bwd_s_all": fwd_bwd[neuron],
            }
            training.append(row)
            print(
                f"{neuron:>12} L={length}: {row['step_s_median']:.3f} s/step, "
                f"saved {row['saved_MB']:.0f} MB, step peak {_mb(row['step_peak_MB'])} MB",
                file=sys.stderr,
            )
    info["loadavg_after_training"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    layer_rows = []
    for length in args.lengths:
        layer_rows += neuron_only(args, length)
    for r in layer_rows:
        print(
            f"{r['neuron']:>12} L={r['L']} layer: {r['fwd_bwd_ms_median']:.1f} ms fwd+bwd, "
            f"saved {r['saved_MB']:.1f} MB, peak {_mb(r['peak_MB'])} MB",
            file=sys.stderr,
        )
    sops = synops(args, torch.device(args.device))
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    config = {k: v for k, v in vars(args).items() if k not in ("worker", "out")} | {
        "mlp_ratio": 4.0,
        "optimizer": "AdamW(lr=1e-4)",
        "data": "uniform random ids, no pad",
        "model_config": SnnBertConfig(**model_kwargs(args)).to_dict(),
    }
    result = {
        "benchmark": "bpsn_vs_lif",
        "machine": info,
        "config": config,
        "training": training,
        "neuron_only": layer_rows,
        "synops": sops,
        "wall_s": time.perf_counter() - t0,
    }
    table = markdown(result)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
