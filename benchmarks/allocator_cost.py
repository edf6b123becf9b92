"""CPU cost of glibc's fixed mmap threshold: training steps with and without it, alternating.

For one roofline configuration (``benchmarks/roofline.py``'s ``CONFIGS``), ``--rounds`` rounds of
two fresh worker processes, one with glibc's default allocator and one that calls
:func:`spikeformers.utils.allocator.set_malloc_mmap_threshold` after building the model and
optimizer (where the trainer calls it), alternating so both see the same load. Each worker runs
one warm-up and ``--steps`` training steps (AdamW) and records per step user and system CPU
seconds and minor page faults (``getrusage``; every mapped block is fresh zero-filled memory, so
the threshold's cost shows as page faults and system time), its peak RSS and the losses.
(``mallopt`` must come before the heap has grown: set later, freed heap blocks are reused first
and the threshold changes nothing, hence fresh processes.)

    PYTHONPATH=src python benchmarks/allocator_cost.py --config snnbert-quickstart --steps 3

Writes ``benchmarks/results/<out>.json`` and prints the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402
from roofline import CONFIGS, QUICK, make_batch  # noqa: E402


def _steps(model, opt, batch, n: int) -> list[dict]:
    out = []
    for i in range(n + 1):  # the first is a warm-up
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        if i:
            out.append(
                {
                    "user_s": r1.ru_utime - r0.ru_utime,
                    "sys_s": r1.ru_stime - r0.ru_stime,
                    "minor_faults": r1.ru_minflt - r0.ru_minflt,
                    "loss": loss.item(),
                }
            )
    return out


def _median(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in ("user_s", "sys_s", "minor_faults")}


def run_worker(cfg_name: str, quick: bool, steps: int, fixed: bool) -> dict:
    """One process: model, optimizer, then (``fixed``) the threshold, then the steps."""
    from spikeformers import create_model
    from spikeformers.utils.allocator import LOW_MEMORY_MMAP_THRESHOLD, set_malloc_mmap_threshold

    cfg = (QUICK if quick else CONFIGS)[cfg_name]
    torch.manual_seed(0)
    model = create_model(cfg.model, **cfg.overrides).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = make_batch(cfg, model.config.vocab_size, torch.device("cpu"))
    applied = set_malloc_mmap_threshold(LOW_MEMORY_MMAP_THRESHOLD) if fixed else False
    rows = _steps(model, opt, batch, steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"fixed": fixed, "applied": applied, "steps": rows, "peak_rss_MiB": peak}


def main(argv: list[str] | None = None) -> None:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--quick", action="store_true", help="roofline.py's tiny configurations")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--worker", choices=["default", "fixed"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.worker:
        print(json.dumps(run_worker(a.config, a.quick, a.steps, a.worker == "fixed")))
        return
    runs: dict[str, list[dict]] = {"default": [], "fixed": []}
    for _ in range(a.rounds):
        for mode in runs:
            cmd = [sys.executable, __file__, "--worker", mode, "--config", a.config,
                   "--steps", str(a.steps), "--threads", str(a.threads)]  # fmt: skip
            out = subprocess.run(cmd + (["--quick"] if a.quick else []), check=True,
                                 capture_output=True, text=True).stdout  # fmt: skip
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
    result = {"config": a.config, "runs": runs, "loadavg": os.getloadavg(), "machine": machine()}
    for mode, rs in runs.items():
        m = _median([s for r in rs for s in r["steps"]])
        result[f"median_{mode}"] = m
        peaks = ", ".join(f"{r['peak_rss_MiB']:.0f}" for r in rs)
        print(f"{mode}: user {m['user_s']:.2f} s, sys {m['sys_s']:.2f} s, "
              f"{m['minor_faults']:.0f} minor faults per step; peak RSS {peaks} MiB")  # fmt: skip
    if a.out:
        print(f"wrote {save(a.out, result)}")


if __name__ == "__main__":
    main()
