"""Training-step time with spike packing and neuron recomputation toggled apart, one process.

The models' ``memory_saving`` field switches both together; this script separates them on one
model and one batch, interleaving the four variants step by step so that drift on a shared
machine hits all of them alike (median of ``--reps`` steps after one warm-up each). Packing is
switched through the model's ``config.memory_saving`` (read at each forward), recomputation
through the modules' ``recompute`` attribute. The first committed version replaced
``memory_saving_active`` instead, which made recomputation follow packing: its ``pack off`` and
``recompute off`` rows were really both off and both on (its both-on/both-off pair was right).
Every variant computes the same numbers (tested in ``tests/models/test_spikebert_fast.py``);
only time differs.

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/memory_saving_toggles.py --family spikebert
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

SIZES = {  # the roofline's spikebert-4x256 and snnbert-quickstart configurations
    "spikebert": ("spikebert", dict(num_layers=4, hidden_size=256, num_heads=8, time_steps=4)),
    "snnbert": ("snnbert-mini", dict(num_layers=2, mlp_ratio=2.0)),
}
VARIANTS = {"both on": (True, True), "pack off": (False, True), "recompute off": (True, False),
            "both off": (False, False)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=list(SIZES), default="spikebert")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="benchmarks/results/<out>.json (default: none)")
    a = p.parse_args(argv)
    from spikeformers import create_model

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    variant, over = SIZES[a.family]
    model = create_model(variant, vocab_size=30522, num_labels=2, **over)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30522, (32, 64), generator=g)
    lengths = torch.randint(32, 65, (32,), generator=g)
    mask = (torch.arange(64)[None] < lengths[:, None]).long()
    ids, labels = ids * mask, torch.randint(0, 2, (32,), generator=g)

    def use(pack: bool, recompute: bool) -> None:
        # packing follows the config (read at each forward); recomputation each module's own
        # switch (a bool wins over the config's mode). Nothing else is patched: an earlier
        # version replaced memory_saving_active, which made recomputation follow packing too.
        model.config = dataclasses.replace(model.config, memory_saving="on" if pack else "off")
        for m in model.modules():
            if hasattr(m, "recompute"):
                m.recompute = recompute

    faults: dict[str, list[int]] = {k: [] for k in VARIANTS}

    def step(name: str | None = None) -> float:
        f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t = time.perf_counter() - t
        if name:  # minor page faults: fresh memory from the kernel (allocator state)
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)
        return t

    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for v in VARIANTS.values():
        use(*v)
        step()
    for _ in range(a.reps):
        for k, v in VARIANTS.items():
            use(*v)
            times[k].append(step(k))
    base = statistics.median(times["both on"])
    rows = []
    for k, ts in times.items():
        med = statistics.median(ts)
        flt = statistics.median(faults[k])
        rows.append(
            {
                "variant": k,
                "median_s": med,
                "speedup_vs_both_on": base / med,
                "steps": ts,
                "minor_faults_per_step": flt,
            }
        )
        print(
            f"{a.family} {k:14s} median {med:.3f} s  speed vs both on {base / med:.2f}x  "
            f"minor faults/step {flt:.0f}"
        )
    if a.out:
        print(save(a.out, {"config": vars(a), "rows": rows, "machine": machine()}))


if __name__ == "__main__":
    main()
