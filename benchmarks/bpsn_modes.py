"""BPSN ``reset_mode="graded"`` (default) against ``"passes"`` (the earlier neuron).

Prints, for each mode: the firing rate on a constant input (``BPSN(1, tau=2, v_threshold=0.5)``,
400 tokens, rate away from the 16 tokens at each end), the operators of one layer's and of an
snnbert-mini training forward + backward (``count_ops`` of ``bpsn_vs_lif.py``), the forward +
backward time of one neuron layer (``NeuronLayer`` of ``bpsn_vs_lif.py``: input [16, L, 384],
interleaved repetitions, min and median), and the mean firing rate of every BPSN of a freshly
initialised snnbert-mini on random token ids (and of block 0's attention neuron).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bpsn_modes.py --reps 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bpsn_vs_lif as harness  # noqa: E402

from spikeformers import create_model  # noqa: E402
from spikeformers.neurons.bpsn import BPSN  # noqa: E402

MODES = {"passes": "bpsn-passes", "graded": "bpsn", "lif": "lif"}  # harness setting names
LEVELS = (0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.05, 1.25, 1.45)


def constant_rates(mode: str) -> list[float]:
    neuron = BPSN(1, tau=2.0, v_threshold=0.5, reset_mode=mode).double()
    x = torch.tensor(LEVELS, dtype=torch.float64)[:, None, None].expand(-1, 400, 1)
    with torch.no_grad():
        return neuron(x.contiguous())[:, 16:-16, 0].mean(1).tolist()


def init_rates(mode: str) -> tuple[float, float]:
    torch.manual_seed(0)
    model = create_model("snnbert-mini", vocab_size=1000, reset_mode=mode).eval()
    seen: list[tuple[torch.nn.Module, float]] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((m, float(o.mean()))))
        for m in model.modules()
        if isinstance(m, BPSN)
    ]
    with torch.no_grad():
        model(torch.randint(5, 1000, (4, 32)))
    for h in hooks:
        h.remove()
    attn = next(r for m, r in seen if m is model.blocks[0].attn.attn_neuron)
    return sum(r for _, r in seen) / len(seen), attn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 128])
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    args = harness.parse_args(["--layers", "4", "--threads", str(a.threads)])
    print("constant input c:", LEVELS)
    for mode in ("passes", "graded"):
        print(f"{mode}: rates", [round(r, 3) for r in constant_rates(mode)])
        print(f"{mode}: init firing (mean, attention 0) %.3f %.3f" % init_rates(mode))
    for length in a.lengths:
        layers = {m: harness.NeuronLayer(args, s, length) for m, s in MODES.items()}
        for layer in layers.values():
            layer.step()
        times: dict[str, list[float]] = {m: [] for m in layers}
        for _ in range(a.reps):
            for m, layer in layers.items():
                times[m].append(layer.step())
        for m, layer in layers.items():
            t = times[m]
            print(
                f"L={length} {m}: layer fwd+bwd min {1e3 * min(t):.1f} ms, "
                f"median {1e3 * statistics.median(t):.1f} ms, ops {harness.count_ops(layer.run)}"
            )
    for m, setting in MODES.items():
        trainee = harness.Trainee(args, setting, 128)
        b = trainee.batch
        ops = harness.count_ops(
            lambda t=trainee, b=b: t.model(
                b["ids"], attention_mask=b["mask"], labels=b["labels"]
            ).loss.backward()
        )
        print(f"snnbert-mini (4 x 384) L=128 {m}: training fwd+bwd ops {ops}")


if __name__ == "__main__":
    main()
