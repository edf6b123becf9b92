"""Roofline of a training step: counted FLOPs, time, achieved FLOP/s against the GEMM peak, memory.

For each configuration (a registered model plus overrides, a batch size and a sequence length)
one fresh subprocess builds the model and an AdamW optimizer, runs warm-up steps and then timed
supervised training steps (``forward`` with labels -> ``loss.backward()`` -> ``optimizer.step()``,
each part timed on its own), counts the matrix-product FLOPs of one step with
``torch.utils.flop_counter.FlopCounterMode`` (forward + backward; elementwise work is not
counted), and times inference (``eval()`` + ``torch.inference_mode``) on the same batch. Peak
memory is the subprocess's peak RSS on CPU (``ru_maxrss``, everything the process ever held:
interpreter, weights, optimizer state, activations) and ``torch.cuda.max_memory_allocated`` on
CUDA. The parent measures the machine's fp32 GEMM peak (best of a few square ``mm``) in the
same run, with the same thread count, so ``achieved / peak`` is read on one machine state.

It uses only public APIs (``spikeformers.create_model`` and the models' ``forward``), so the
same file runs against any checkout: put that checkout's ``src`` first on ``PYTHONPATH``::

    PYTHONPATH=src python benchmarks/roofline.py --out roofline_branch
    PYTHONPATH=/path/to/main/src python benchmarks/roofline.py --out roofline_main
    python benchmarks/roofline.py --compare 'benchmarks/results/roofline_main*.json' \
        'benchmarks/results/roofline_branch*.json'         # ratios, config by config

``--quick`` runs tiny configurations for a smoke test. Writes ``benchmarks/results/<out>.json``
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402


@dataclass(frozen=True)
class Config:
    """One row of the table: ``create_model(model, **overrides)`` on ``[batch, seq_len]`` ids."""

    name: str
    model: str
    batch: int
    seq_len: int
    overrides: dict = field(default_factory=dict)


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("spikebert-4x256", "spikebert", 32, 64,
               dict(num_layers=4, hidden_size=256, num_heads=8, time_steps=4)),
        Config("spikebert-12x768", "spikebert", 8, 128),
        Config("snnbert-quickstart", "snnbert-mini", 32, 64, dict(num_layers=2, mlp_ratio=2.0)),
        Config("snnbert-12x768", "snnbert", 8, 128),
        Config("spikingbert-quickstart", "spikingbert-mini", 32, 64,
               dict(num_layers=2, hidden_size=192, time_steps=8)),
        Config("spikingbert-4x768", "spikingbert", 8, 128, dict(time_steps=8)),
    )
}  # fmt: skip

QUICK: dict[str, Config] = {
    c.name: c
    for c in (
        Config("spikebert-tiny", "spikebert-tiny", 4, 16),
        Config("snnbert-tiny", "snnbert-tiny", 4, 16),
        Config("spikingbert-tiny", "spikingbert-mini", 4, 16,
               dict(num_layers=1, hidden_size=48, time_steps=4)),
    )
}  # fmt: skip


def make_batch(cfg: Config, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A fixed random batch: ids ``[B, L]``, lengths in ``[L/2, L]`` (padded), binary labels."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000 if vocab > 2000 else 1, vocab, (cfg.batch, cfg.seq_len), generator=g)
    lengths = torch.randint(cfg.seq_len // 2, cfg.seq_len + 1, (cfg.batch,), generator=g)
    mask = (torch.arange(cfg.seq_len)[None, :] < lengths[:, None]).long()  # (B, L)
    ids = ids * mask  # pad id 0
    labels = torch.randint(0, 2, (cfg.batch,), generator=g)
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    return {k: v.to(device) for k, v in out.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _now(device: torch.device) -> float:
    _sync(device)
    return time.perf_counter()


def gemm_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best measured fp32 ``mm`` rate of two ``n x n`` matrices, in FLOP/s."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = _now(device)
        torch.mm(a, b)
        best = min(best, _now(device) - t)
    return 2.0 * n**3 / best


def count_step_flops(model: torch.nn.Module, batch: dict) -> tuple[int, int]:
    """Matrix-product FLOPs of one training step's forward and backward (no optimizer)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as fwd_counter:
        loss = model(**batch).loss
    fwd = fwd_counter.get_total_flops()
    with FlopCounterMode(display=False) as bwd_counter:
        loss.backward()
    model.zero_grad(set_to_none=True)
    return fwd, bwd_counter.get_total_flops()


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_worker(
    cfg: Config,
    device: torch.device,
    steps: int,
    infer_reps: int,
    ckpt: bool = False,
    warmup: int = 3,
) -> dict:
    """Everything for one configuration, in this (fresh) process; ``ckpt``: the model's
    gradient checkpointing on (as ``--gradient-checkpointing`` of train/distill); ``warmup``
    untimed steps first. On a CPU the allocator is still growing its heap over the first steps
    (fresh pages from the kernel: page faults), so one warm-up step is not enough: at SpikeBERT
    4x256 the 2nd-3rd steps still took 1.3-1.6x the later ones (stop 14, quiet)."""
    from spikeformers import create_model

    torch.manual_seed(0)
    model = create_model(cfg.model, **cfg.overrides).to(device)
    if ckpt:
        model.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = make_batch(cfg, model.config.vocab_size, device)
    rss_setup = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        cuda_base = torch.cuda.memory_allocated(device)
    model.train()
    parts: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": [], "step": []}
    cpu_s: list[float] = []  # process CPU time per step: less sensitive to a shared machine
    faults: list[int] = []  # minor page faults per step: fresh memory from the kernel
    losses = []
    for i in range(steps + warmup):  # the first ``warmup`` steps are not timed
        c0 = time.process_time()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = _now(device)
        loss = model(**batch).loss
        t1 = _now(device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = _now(device)
        opt.step()
        t3 = _now(device)
        losses.append(loss.item())
        if i >= warmup:
            parts["forward"].append(t1 - t0)
            parts["backward"].append(t2 - t1)
            parts["optimizer"].append(t3 - t2)
            parts["step"].append(t3 - t0)
            cpu_s.append(time.process_time() - c0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    peak = {"peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        peak["cuda_max_allocated_MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
        peak["cuda_base_MiB"] = cuda_base / 2**20
    model.eval()
    lat = []
    with torch.inference_mode():
        for i in range(infer_reps + 1):
            t = _now(device)
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            if i:
                lat.append(_now(device) - t)
    model.train()
    fwd_flops, bwd_flops = count_step_flops(model, batch)  # last: it must not set the peak
    med = {k: statistics.median(v) for k, v in parts.items()}
    flops = fwd_flops + bwd_flops
    return {
        "config": asdict(cfg),
        "gradient_checkpointing": ckpt,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "flops_forward": fwd_flops,
        "flops_step": flops,
        "time_s": med,
        "step_s_all": parts["step"],
        "step_cpu_s": statistics.median(cpu_s),
        "minor_faults_per_step": statistics.median(faults),
        "achieved_flops_per_s": flops / med["step"],
        "rss_after_setup_MiB": rss_setup,
        **peak,
        "infer_latency_s": statistics.median(lat),
        "infer_seq_per_s": cfg.batch / statistics.median(lat),
        "losses": losses,
    }


def _spawn(cfg: Config, args: argparse.Namespace) -> dict:
    """Run one configuration in a fresh interpreter (clean peak RSS); returns its JSON."""
    cmd = [sys.executable, __file__, "--worker", cfg.name, "--device", args.device,
           "--steps", str(args.steps), "--infer-reps", str(args.infer_reps),
           "--warmup", str(args.warmup),
           "--threads", str(args.threads)] + (["--quick"] if args.quick else []) + (
        ["--gradient-checkpointing"] if args.gradient_checkpointing else []) + (
        ["--set", *args.set] if args.set else [])  # fmt: skip
    env = os.environ.copy()
    if args.malloc_mmap_threshold:  # glibc: serve big blocks by mmap, return them on free
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{cfg.name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict], peak: float | None = None) -> str:
    """The Markdown table of ``rows`` (worker results) against the GEMM ``peak`` (FLOP/s).

    A row's own ``gemm_peak_flops_per_s`` (set by :func:`load_rows`) takes precedence.
    """
    lines = [
        "| config | GFLOP/step | step s (fwd / bwd / opt) | step CPU s | GFLOP/s | "
        "of GEMM peak (GFLOP/s) | peak RSS MiB (after setup) | infer ms | infer seq/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["time_s"]
        peak_r = r.get("gemm_peak_flops_per_s", peak)
        mem = f"{r['peak_rss_MiB']:.0f} ({r['rss_after_setup_MiB']:.0f})"
        if "cuda_max_allocated_MiB" in r:
            mem += f", CUDA {r['cuda_max_allocated_MiB']:.0f}"
        lines.append(
            f"| {r['config']['name']} | {r['flops_step'] / 1e9:.1f} | "
            f"{t['step']:.3f} ({t['forward']:.3f} / {t['backward']:.3f} / {t['optimizer']:.3f}) | "
            f"{r['step_cpu_s']:.2f} | "
            f"{r['achieved_flops_per_s'] / 1e9:.1f} | {r['achieved_flops_per_s'] / peak_r:.0%} "
            f"of {peak_r / 1e9:.0f} | "
            f"{mem} | {1000 * r['infer_latency_s']:.1f} | {r['infer_seq_per_s']:.1f} |"
        )
    return "\n".join(lines)


def load_rows(pattern: str) -> list[dict]:
    """Rows of every result file matching the glob ``pattern``, each with its run's GEMM peak."""
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"no result file matches {pattern!r}")
    rows = []
    for f in files:
        result = json.loads(Path(f).read_text())
        rows += [{**r, "gemm_peak_flops_per_s": result["gemm_peak_flops_per_s"]}
                 for r in result["rows"]]  # fmt: skip
    return rows


def compare(base: list[dict], new: list[dict]) -> str:
    """Markdown table of ``new`` against ``base`` (two result files), per configuration.

    Speed-ups are ``base time / new time`` (> 1: new is faster); memory ratios are
    ``new / base`` (< 1: new uses less); "above setup" subtracts each run's RSS after building
    the model and batch (interpreter, weights), leaving what training itself adds.
    """
    old = {r["config"]["name"]: r for r in base}
    lines = [
        "| config | FLOPs new/base | step speed-up (wall) | step speed-up (CPU) | "
        "peak RSS new/base | above setup new/base | inference speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in new:
        b = old.get(r["config"]["name"])
        if b is None:
            continue
        grow = [x["peak_rss_MiB"] - x["rss_after_setup_MiB"] for x in (r, b)]
        lines.append(
            f"| {r['config']['name']} | {r['flops_step'] / b['flops_step']:.2f} | "
            f"{b['time_s']['step'] / r['time_s']['step']:.2f}x | "
            f"{b['step_cpu_s'] / r['step_cpu_s']:.2f}x | "
            f"{r['peak_rss_MiB'] / b['peak_rss_MiB']:.2f} | {grow[0] / grow[1]:.2f} | "
            f"{b['infer_latency_s'] / r['infer_latency_s']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", help="names (default: all; --quick: the tiny ones)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (after --warmup)")
    p.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="untimed training steps first (the CPU allocator's heap is still growing over the "
        "first steps; until stop 14 there was 1)",
    )
    p.add_argument("--infer-reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quick", action="store_true", help="tiny configurations (smoke test)")
    p.add_argument(
        "--malloc-mmap-threshold",
        type=int,
        default=0,
        metavar="BYTES",
        help="set glibc's MALLOC_MMAP_THRESHOLD_ in the workers (e.g. 65536): freed blocks go "
        "back to the OS, so peak RSS tracks live tensors, not allocator high-water marks",
    )
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="train with the model's gradient checkpointing (families that support it)",
    )
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every configuration, e.g. memory_saving=on",
    )
    p.add_argument("--out", default="roofline", help="benchmarks/results/<out>.json")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("BASE_GLOB", "NEW_GLOB"),
        help="print the tables and the ratio table of two sets of result files (glob patterns, "
        "e.g. main's and a branch's) and exit",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.compare:
        base, new = (load_rows(pattern) for pattern in a.compare)
        print(f"base ({a.compare[0]}):\n\n{table(base)}\n\nnew ({a.compare[1]}):\n\n")
        print(f"{table(new)}\n\nnew against base:\n\n{compare(base, new)}")
        return
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    known = QUICK if a.quick else CONFIGS
    if a.set:
        from spikeformers.cli.options import parse_overrides

        extra = parse_overrides(a.set)
        known = {n: replace(c, overrides={**c.overrides, **extra}) for n, c in known.items()}
    if a.worker:
        row = run_worker(
            known[a.worker], device, a.steps, a.infer_reps, a.gradient_checkpointing, a.warmup
        )
        print(json.dumps(row))
        return
    names = a.configs or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; known: {sorted(known)}")
    peak_before = gemm_peak(device)
    rows = []
    for n in names:
        rows.append(_spawn(known[n], a))
        print(f"{n}: done", file=sys.stderr, flush=True)
    peak = max(peak_before, gemm_peak(device))
    print(f"GEMM fp32 peak {peak / 1e9:.1f} GFLOP/s (before {peak_before / 1e9:.1f})\n")
    print(table(rows, peak))
    import spikeformers

    result = {
        "config": vars(a),
        "spikeformers_path": str(Path(spikeformers.__file__).resolve().parent),
        "gemm_peak_flops_per_s": peak,
        "rows": rows,
        "machine": machine(),
        "loadavg_end": os.getloadavg(),
    }
    print(f"\nwrote {save(a.out, result)}")


if __name__ == "__main__":
    main()
