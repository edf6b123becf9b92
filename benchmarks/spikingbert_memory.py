"""SpikingBERT training-step memory and time vs the simulation length T.

The equilibrium model simulates ``T`` steps under ``torch.no_grad()`` and differentiates through
the rate equilibrium (implicit differentiation), so training memory should not grow with ``T``;
only the simulation time does. The baseline is backpropagation through time (BPTT) of the same
network: the same weights and the same per-step code (``SpikingBertLayer.populations``), with
the IF neurons' Heaviside replaced by an ATan surrogate and the whole simulation kept in the
autograd graph (reset detached, as SpikingJelly's ``detach_reset``), loss on the last layer's
[CLS] rate.

Each (mode, T) runs in a fresh subprocess: one warm-up step, then ``--steps`` timed training
steps (forward + backward + AdamW). Reported per run:

- ``peak_MB``: on CPU the process's peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``,
  read by the worker itself at exit: the same number ``RUSAGE_CHILDREN`` gives the parent for a
  single child, but not cumulative over earlier children); on CUDA
  ``torch.cuda.max_memory_allocated``.
- ``delta_MB``: that peak minus the peak before the first step (model, optimizer and data
  built), i.e. what training itself adds. On CPU it is coarse (allocator caching counts).
- ``saved_MB``: bytes autograd saves for backward during one forward (unique storages,
  parameters excluded; ``torch.autograd.graph.saved_tensors_hooks``): the part that BPTT makes
  grow with ``T``.
- ``step_s``: median wall time of a training step; ``fwd_s`` (simulation, or the BPTT forward)
  and ``bwd_s`` (adjoint solves + backprop, or BPTT's backward) of it.

Usage::

    python benchmarks/spikingbert_memory.py               # CPU, about 2 minutes on 2 cores
    python benchmarks/spikingbert_memory.py --device cuda --threads 0

Writes a Markdown table to stdout and ``benchmarks/results/spikingbert_memory.json``.
``--threads 1`` is the CPU default: on shared cores multi-threaded small ops mostly wait.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

from spikeformers.models.spikingbert import (  # noqa: E402
    POPULATIONS,
    SpikingBertConfig,
    SpikingBertForSequenceClassification,
)
from spikeformers.neurons.surrogate import ATan  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--time-steps", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--modes", nargs="+", default=["implicit", "bptt"], choices=["implicit", "bptt"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--feedback", action="store_true", help="add the feedback connection")
    p.add_argument("--solver", default="fixed_point", help="adjoint solver")
    p.add_argument("--steps", type=int, default=2, help="timed steps per run")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    p.add_argument("--out", default="spikingbert_memory", help="results/<name>.json")
    p.add_argument("--worker", nargs=2, metavar=("MODE", "T"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def model_config(args: argparse.Namespace, T: int) -> SpikingBertConfig:
    return SpikingBertConfig(
        vocab_size=args.vocab,
        num_layers=args.layers,
        hidden_size=args.hidden,
        num_heads=args.heads,
        time_steps=T,
        max_position_embeddings=max(64, args.seq_len),
        feedback=args.feedback,
        solver=args.solver,
    )


def bptt_loss(model: SpikingBertForSequenceClassification, ids, mask, labels) -> torch.Tensor:
    """The same simulation as ``model.simulate`` but with a surrogate spike and a full graph."""
    cfg = model.config
    surrogate = ATan()
    x = model.embeddings(ids)
    bias = model.attention_bias(mask, x.dtype)
    b, n, _ = x.shape
    mem = [
        {p: x.new_zeros(b, n, w) for p, w in zip(POPULATIONS, layer.sizes, strict=True)}
        for layer in model.layers
    ]
    last_o = [x.new_zeros(b, n, cfg.hidden_size) for _ in model.layers]
    count = x.new_zeros(b, n, cfg.hidden_size)
    for _ in range(cfg.time_steps):
        h = x
        for idx, layer in enumerate(model.layers):

            def fire(name, current, m=mem[idx]):
                u = m[name] + current
                s = surrogate(u - cfg.v_threshold)
                m[name] = u - cfg.v_threshold * s.detach()
                return s

            pops = layer.populations(layer.layer_input(h, last_o[idx]), bias, fire)
            last_o[idx] = h = pops.o
        count = count + h
    logits = model.classifier(count[:, 0] / cfg.time_steps)
    return torch.nn.functional.cross_entropy(logits, labels)


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def saved_mb(fn) -> float:
    """MiB of unique non-parameter storages autograd saves while ``fn()`` runs."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if not isinstance(t, torch.nn.Parameter):
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()) / 2**20


def worker(args: argparse.Namespace, mode: str, T: int) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SpikingBertForSequenceClassification(model_config(args, T)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, args.vocab, (args.batch_size, args.seq_len), generator=g).to(device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch_size,), generator=g).to(device)
    extras: dict = {}

    def loss_fn() -> torch.Tensor:
        if mode == "bptt":
            return bptt_loss(model, ids, mask, labels)
        out = model(ids, attention_mask=mask, labels=labels)
        extras.update(out.extras)
        return out.loss

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        loss = loss_fn()
        sync()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync()
        t2 = time.perf_counter()
        opt.step()
        sync()
        return time.perf_counter() - t0, t1 - t0, t2 - t1

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_mb(device)
    step()  # warm-up (also creates the AdamW state)
    times = [step() for _ in range(args.steps)]
    peak = peak_mb(device)
    total, fwd, bwd = ([t[i] for t in times] for i in range(3))
    result = {
        "mode": mode,
        "T": T,
        "peak_MB": round(peak, 1),
        "delta_MB": round(peak - before, 1),
        "step_s": round(statistics.median(total), 4),
        "fwd_s": round(statistics.median(fwd), 4),
        "bwd_s": round(statistics.median(bwd), 4),
        "step_times_s": [round(t, 4) for t in total],
    }
    if mode == "implicit":
        result["adjoint_iters"] = [s.iterations for s in extras["adjoint"]]
        result["equilibrium_residual"] = [
            round(float(r), 4) for r in extras["equilibrium_residual"]
        ]
    result["saved_MB"] = round(saved_mb(loss_fn), 2)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args, args.worker[0], int(args.worker[1]))))
        return
    passthrough = list(argv if argv is not None else sys.argv[1:])
    runs = []
    t_start = time.time()
    for mode in args.modes:
        for T in args.time_steps:
            cmd = [sys.executable, __file__, *passthrough, "--worker", mode, str(T)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{mode} T={T}: {runs[-1]}", file=sys.stderr)
    cfg = model_config(args, args.time_steps[0])
    summary = {}
    for mode in args.modes:
        rows = {r["T"]: r for r in runs if r["mode"] == mode}
        lo, hi = min(rows), max(rows)
        summary[mode] = {
            f"peak_ratio_T{hi}_vs_T{lo}": round(rows[hi]["peak_MB"] / rows[lo]["peak_MB"], 3),
            f"time_ratio_T{hi}_vs_T{lo}": round(rows[hi]["step_s"] / rows[lo]["step_s"], 2),
        }
    result = {
        "benchmark": "spikingbert_memory",
        "machine": machine(),
        "device": args.device,
        "threads": args.threads,
        "config": {k: v for k, v in cfg.to_dict().items() if k != "time_steps"},
        "data": {"batch_size": args.batch_size, "seq_len": args.seq_len},
        "timed_steps": args.steps,
        "runs": runs,
        "summary": summary,
        "wall_s": round(time.time() - t_start, 1),
    }
    path = save(args.out, result)
    print("| mode | T | peak MB | delta MB | saved MB | step s | fwd s | bwd s | adjoint iters |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        iters = r.get("adjoint_iters", "-")
        print(
            f"| {r['mode']} | {r['T']} | {r['peak_MB']:.0f} | {r['delta_MB']:.0f} | "
            f"{r['saved_MB']:.1f} | {r['step_s']:.3f} | {r['fwd_s']:.3f} | {r['bwd_s']:.3f} | "
            f"{iters} |"
        )
    print(f"\nsummary: {json.dumps(summary)}\nwrote {path}")


if __name__ == "__main__":
    main()
