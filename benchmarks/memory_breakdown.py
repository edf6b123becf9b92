"""Where a training step's memory goes: saved tensors per module, live bytes over the step.

For one roofline configuration (``benchmarks/roofline.py``'s ``CONFIGS``), in a fresh process:

1. **Saved for backward**: one forward under ``torch.autograd.graph.saved_tensors_hooks`` that
   books every tensor autograd saves (parameters excluded; each storage once) to the module
   whose forward was running, summed over blocks (``blocks.2.attn.q.lif`` -> ``attn.q.lif``).
   Storages are counted whole (a saved view of a larger tensor books all of it), and what other
   hooks take over (``save_packed``'s bytes, ``torch.utils.checkpoint``'s inputs) is not seen
   here: the live bytes of part 2 are the reference.
2. **Live bytes over a step**: ``torch.profiler`` with ``profile_memory`` and its memory
   timeline (the categories of ``torch.profiler._memory_profiler``: parameter, optimizer state,
   input, temporary, activation, gradient, autograd detail, unknown), sampled at the step's peak
   and at the end of the forward; the phase (forward, backward, optimizer) where the peak falls.
3. **Peak RSS** of a plain step (``ru_maxrss``): with glibc's default allocator this includes
   freed blocks the allocator keeps; run with ``MALLOC_MMAP_THRESHOLD_=65536`` in the
   environment to see RSS follow live bytes.

Only public APIs (``create_model``, ``forward``), so it runs against any checkout::

    PYTHONPATH=src python benchmarks/memory_breakdown.py --config spikebert-4x256 --out mb_new
    PYTHONPATH=/tmp/old/src python benchmarks/memory_breakdown.py --config spikebert-4x256 \
        --out mb_old

Writes ``benchmarks/results/<out>.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402
from roofline import CONFIGS, QUICK, Config, make_batch  # noqa: E402

MiB = 2**20


def _short(name: str) -> str:
    """``blocks.3.attn.q.lif`` -> ``attn.q.lif`` (the block index and model prefix dropped)."""
    parts = name.split(".")
    while parts and (parts[0].isdigit() or parts[0] in ("blocks", "layers", "encoder")):
        parts = parts[1:]
    return ".".join(parts) or "(model)"


def saved_by_module(model: nn.Module, batch: dict) -> dict:
    """Bytes autograd saves during one forward, per module (see the module docstring)."""
    stack: list[str] = ["(model)"]
    names = {m: _short(n) for n, m in model.named_modules()}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, tuple[str, int]] = {}

    def pre(mod: nn.Module, _args: object) -> None:
        stack.append(names.get(mod, type(mod).__name__))

    def post(_mod: nn.Module, _args: object, _out: object) -> None:
        stack.pop()

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen[ptr] = (stack[-1], t.untyped_storage().nbytes())
        return t

    handles = [nn.modules.module.register_module_forward_pre_hook(pre),
               nn.modules.module.register_module_forward_hook(post)]  # fmt: skip
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model(**batch).loss
    finally:
        for h in handles:
            h.remove()
    by_module: dict[str, int] = defaultdict(int)
    for where, nbytes in seen.values():
        by_module[where] += nbytes
    del loss
    return dict(sorted(by_module.items(), key=lambda kv: -kv[1]))


def live_timeline(model: nn.Module, opt: torch.optim.Optimizer, batch: dict) -> dict:
    """Live bytes by category at the forward's end and at the step's peak (profiler timeline)."""
    from torch.profiler import ProfilerActivity, profile, record_function
    from torch.profiler._memory_profiler import _CATEGORY_TO_INDEX, MemoryProfileTimeline

    marks = {}
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:  # fmt: skip
        with record_function("## forward"):
            loss = model(**batch).loss
        with record_function("## backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("## optimizer"):
            opt.step()
    t0 = prof.profiler.kineto_results.trace_start_ns() / 1000  # events: us after this
    for e in prof.profiler.function_events:
        if e.name.startswith("## "):
            marks[e.name[3:]] = (t0 + e.time_range.start, t0 + e.time_range.end)
    times, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline("cpu")
    cats = ["?"] + [str(c).split(".")[-1].lower() if c else "unknown" for c in _CATEGORY_TO_INDEX]
    base = min(marks["forward"][0], *[t for t in times if t > 0])

    def row(i: int) -> dict:
        return {c: sizes[i][j] / MiB for j, c in enumerate(cats) if j and sizes[i][j]}

    totals = [sum(s) for s in sizes]
    i_peak = max(range(len(totals)), key=totals.__getitem__)
    t_peak = times[i_peak]
    phase = next((k for k, (a, b) in marks.items() if a <= t_peak <= b), "between")
    fwd_end = max(i for i, t in enumerate(times) if t <= marks["forward"][1])
    return {
        "peak_live_MiB": totals[i_peak] / MiB,
        "peak_phase": phase,
        "peak_at_ms": (t_peak - base) / 1000,
        "peak_by_category_MiB": row(i_peak),
        "forward_end_live_MiB": totals[fwd_end] / MiB,
        "forward_end_by_category_MiB": row(fwd_end),
        "phases_ms": {k: ((a - base) / 1000, (b - base) / 1000) for k, (a, b) in marks.items()},
    }


def run(cfg: Config) -> dict:  # noqa: D103
    from spikeformers import create_model

    torch.manual_seed(0)
    model = create_model(cfg.model, **cfg.overrides)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = make_batch(cfg, model.config.vocab_size, torch.device("cpu"))
    model.train()
    for _ in range(2):  # warm-up, then the optimizer state exists as in later steps
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    del loss
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    opt.zero_grad(set_to_none=True)
    saved = saved_by_module(model, batch)
    timeline = live_timeline(model, opt, batch)
    return {
        "config": cfg.name,
        "peak_rss_MiB_plain_steps": rss,
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "saved_total_MiB": sum(saved.values()) / MiB,
        "saved_by_module_MiB": {k: v / MiB for k, v in saved.items()},
        **timeline,
    }


def main(argv: list[str] | None = None) -> None:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="a roofline.py configuration name")
    p.add_argument("--quick", action="store_true", help="roofline.py's tiny configurations")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="benchmarks/results/<out>.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    r = run((QUICK if a.quick else CONFIGS)[a.config])
    import spikeformers

    print(
        f"{r['config']}: peak RSS {r['peak_rss_MiB_plain_steps']:.0f} MiB (2 plain steps), "
        f"peak live {r['peak_live_MiB']:.0f} MiB in {r['peak_phase']}, live at forward end "
        f"{r['forward_end_live_MiB']:.0f} MiB, saved (hooks) {r['saved_total_MiB']:.0f} MiB"
    )
    print("at peak:", {k: round(v) for k, v in r["peak_by_category_MiB"].items()})
    print("forward end:", {k: round(v) for k, v in r["forward_end_by_category_MiB"].items()})
    print("| module (all blocks) | saved MiB |\n|---|---|")
    for k, v in list(r["saved_by_module_MiB"].items())[:15]:
        print(f"| {k} | {v:.1f} |")
    if a.out:
        r.update(machine=machine(), loadavg=os.getloadavg(),
                 spikeformers_path=str(Path(spikeformers.__file__).resolve().parent))  # fmt: skip
        print(f"wrote {save(a.out, r)}")


if __name__ == "__main__":
    main()
