"""Event-driven products against dense ones at SpikeBERT's spike-input Linear shapes (issue 14.6).

For each Linear of a SpikeBERT block whose input is spikes or spike counts (Q/K/V and fc1 take
the residual stream, the attention output projection and fc2 the spikes of a LIF), at the
quickstart size (2 x 384, mlp 2.0, T 4, L 64, batch 32: ``M = T B L = 8192`` rows) and the
paper's (12 x 768, mlp 4.0, T 4, L 128, batch 8: ``M = 4096``), this times side by side in one
process, interleaved repeat by repeat:

- the forward product ``x @ W^T`` (``x [M, K]``, ``W [N, K]``): dense ``F.linear``; CSR
  (``to_sparse_csr`` + ``torch.sparse.mm``), with its conversion also timed alone; COO
  (``to_sparse`` + ``torch.sparse.mm``); ``torch.sparse.addmm`` (COO, bias fused); the active
  rows only (``index_select`` of rows with any spike, dense product, ``index_copy`` back); and
  the event path of :mod:`spikeformers.layers.sparse` (bool mask -> ``nonzero`` -> index lists ->
  ``embedding_bag``), conversion included;
- the weight-gradient product ``dW = grad^T @ x`` (``grad [M, N]``): dense; CSR of ``x^T``; COO;
  active rows; the event path from scratch and reusing the forward's index lists (what the
  autograd function does: only the sort by column is extra);
- ``fwd+dW``: both products of one layer, dense against the event path with one conversion.

Every sparse method's time includes converting the dense spike tensor (the layers receive dense
tensors), except the row labelled "conversion excluded". The input gradient ``grad @ W`` is dense
either way (the surrogate gradient is) and is not timed.

Spikes are sampled i.i.d. Bernoulli at the rate (not taken from a trained model): the firing
rates of the trained quickstart-size SpikeBERT (SST-2, ``sst2_spikebert_energy_test.json``) are
0.05-0.13 at the LIFs that feed the output projection and fc2, and the residual stream that
feeds Q/K/V and fc1 is about 40% nonzero (the encoder fires at 0.39), so those layers are
measured at 0.4. i.i.d. sampling has no all-zero rows (padding gives real models some), so the
active-rows method shows its overhead only.

Usage (1 torch thread then 2, one process)::

    OMP_NUM_THREADS=1 python benchmarks/sparse_products.py --threads 1 2 --out sparse_products
    python benchmarks/sparse_products.py --table benchmarks/results/sparse_products.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402
from roofline import CONFIGS as ROOFLINE_CONFIGS  # noqa: E402
from roofline import Config, make_batch  # noqa: E402

from spikeformers import create_model  # noqa: E402
from spikeformers.layers.sparse import (  # noqa: E402
    event_sum,
    sample_density,
    spike_index,
    transpose_index,
    use_events,
)

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

CONFIGS = {
    # name: (width D, MLP width, T, L, batch)
    "quickstart": (384, 768, 4, 64, 32),
    "paper": (768, 3072, 4, 128, 8),
}
BINARY_RATES = (0.05, 0.1, 0.2)  # LIF outputs feeding the output projection and fc2
RESIDUAL_RATES = (0.4,)  # nonzero fraction of the residual stream feeding Q/K/V and fc1
STEP_CONFIGS = {
    "quickstart": Config(
        "spikebert-quickstart", "spikebert-mini", 32, 64, dict(num_layers=2, mlp_ratio=2.0)
    ),
    "paper": ROOFLINE_CONFIGS["spikebert-12x768"],
}
PRODUCTS = ("forward", "dW", "fwd+dW")
SLOW = 5.0  # a method whose warm-up takes this many times dense's is timed once (its warm-up)


def layers(config: str) -> list[tuple[str, int, int, int, tuple[float, ...]]]:
    """``(layer, M, K, N, rates)`` of one SpikeBERT block's spike-input Linears."""
    d, hidden, t, n, b = CONFIGS[config]
    m = t * b * n
    return [
        ("q/k/v", m, d, d, RESIDUAL_RATES),
        ("attn out", m, d, d, BINARY_RATES),
        ("mlp fc1", m, d, hidden, RESIDUAL_RATES),
        ("mlp fc2", m, hidden, d, BINARY_RATES),
    ]


def _active_rows(x: torch.Tensor) -> torch.Tensor:
    return x.ne(0).any(1).nonzero().squeeze(1)


def forward_methods(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> dict[str, Callable]:
    """The forward products ``x [M, K] @ w[N, K]^T (+ b)`` -> ``[M, N]``, by name."""
    csr = x.to_sparse_csr()

    def rows() -> torch.Tensor:
        idx = _active_rows(x)
        out = x.new_zeros(x.shape[0], w.shape[0])
        return out.index_copy_(0, idx, x.index_select(0, idx) @ w.t())

    return {
        "dense": lambda: F.linear(x, w),
        "csr": lambda: torch.sparse.mm(x.to_sparse_csr(), w.t()),
        "csr, conversion excluded": lambda: torch.sparse.mm(csr, w.t()),
        "csr conversion alone": lambda: x.to_sparse_csr(),
        "coo": lambda: torch.sparse.mm(x.to_sparse(), w.t()),
        "sparse.addmm (coo, bias)": lambda: torch.sparse.addmm(b, x.to_sparse(), w.t()),
        "active rows": rows,
        "event (embedding_bag)": lambda: event_sum(spike_index(x), w.t().contiguous()),
    }


def grad_methods(x: torch.Tensor, g: torch.Tensor) -> dict[str, Callable]:
    """The weight-gradient products ``g [M, N]^T @ x [M, K]`` -> ``[N, K]``, by name."""
    index = spike_index(x)
    k = x.shape[1]

    def rows() -> torch.Tensor:
        idx = _active_rows(x)
        return g.index_select(0, idx).t() @ x.index_select(0, idx)

    return {
        "dense": lambda: g.t() @ x,
        "csr": lambda: torch.sparse.mm(x.t().to_sparse_csr(), g).t(),
        "coo": lambda: torch.sparse.mm(x.t().to_sparse(), g).t(),
        "active rows": rows,
        "event (embedding_bag)": lambda: event_sum(transpose_index(spike_index(x), k), g).t(),
        "event, forward's index reused": lambda: event_sum(transpose_index(index, k), g).t(),
    }


def layer_methods(x: torch.Tensor, w: torch.Tensor, g: torch.Tensor) -> dict[str, Callable]:
    """Both products of one layer (forward and ``dW``), dense against one event conversion."""
    k = x.shape[1]

    def event() -> None:
        index = spike_index(x)
        event_sum(index, w.t().contiguous())
        event_sum(transpose_index(index, k), g)

    def dense() -> None:
        F.linear(x, w)
        g.t() @ x

    return {"dense": dense, "event (embedding_bag)": event}


def time_side_by_side(methods: dict[str, Callable], reps: int) -> dict[str, tuple[float, int]]:
    """Median milliseconds and sample count per method, repeats interleaved across methods.

    Each method runs once as a warm-up; one whose warm-up takes ``SLOW`` times the first
    method's (dense) is not repeated: its warm-up is its only sample.
    """
    samples: dict[str, list[float]] = {}
    for name, fn in methods.items():
        start = time.perf_counter()
        fn()
        samples[name] = [time.perf_counter() - start]
    base = next(iter(samples.values()))[0]
    timed = {name: [] for name, (t,) in samples.items() if t <= SLOW * base}
    for _ in range(reps):
        for name in timed:
            start = time.perf_counter()
            methods[name]()
            timed[name].append(time.perf_counter() - start)
    samples |= {name: ts for name, ts in timed.items() if ts}
    return {name: (1e3 * statistics.median(ts), len(ts)) for name, ts in samples.items()}


def check(x: torch.Tensor, w: torch.Tensor, g: torch.Tensor) -> float:
    """Largest difference of the event products from the dense ones (float rounding only)."""
    fwd = event_sum(spike_index(x), w.t().contiguous()) - F.linear(x, w)
    dw = event_sum(transpose_index(spike_index(x), x.shape[1]), g).t() - g.t() @ x
    return max(fwd.abs().max().item(), dw.abs().max().item())


def run(
    configs: list[str],
    threads: list[int],
    reps: int,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    seed: int = 0,
) -> list[dict]:
    """Every (config, layer, rate, threads, product, method) -> median ms (``only``: these
    layers; ``skip``: not these methods, named ``method`` or ``product:method``)."""
    out = []
    for config in configs:
        for layer, m, k, n, rates in layers(config):
            if only and layer not in only:
                continue
            for rate in rates:
                gen = torch.Generator().manual_seed(seed)
                x = (torch.rand(m, k, generator=gen) < rate).float()  # i.i.d. spikes
                w = torch.randn(n, k, generator=gen) / k**0.5
                b = torch.zeros(n)
                g = torch.randn(m, n, generator=gen)
                err = check(x, w, g)
                for nt in threads:
                    torch.set_num_threads(nt)
                    load = os.getloadavg()[0]
                    products = {
                        "forward": forward_methods(x, w, b),
                        "dW": grad_methods(x, g),
                        "fwd+dW": layer_methods(x, w, g),
                    }
                    for product, methods in products.items():
                        methods = {
                            k: f for k, f in methods.items()
                            if not {k, f"{product}:{k}"} & set(skip or ())
                        }  # fmt: skip
                        for method, (ms, count) in time_side_by_side(methods, reps).items():
                            out.append(
                                dict(
                                    config=config, layer=layer, M=m, K=k, N=n, rate=rate,
                                    density=round(x.count_nonzero().item() / x.numel(), 4),
                                    threads=nt, product=product, method=method,
                                    ms=round(ms, 2), samples=count, load=load, max_abs_err=err,
                                )
                            )  # fmt: skip
                    print(f"{config} {layer} {m}x{k}x{n} rate {rate} threads {nt}", flush=True)
    return out


def _record_inputs(model: torch.nn.Module, seen: dict[str, list]) -> list:
    """Hooks noting each spiking Linear's input density and whether ``"auto"`` goes sparse."""

    def hook(module: torch.nn.Module, args: tuple) -> None:
        kind = module.name.split(".", 2)[-1]  # e.g. "attn.out", "mlp.fc2"
        seen.setdefault(kind, []).append((sample_density(args[0]), use_events("auto", args[0])))

    handles = []
    for name, module in model.named_modules():
        if type(module).__name__ == "SpikeBertLinear":
            module.name = name
            handles.append(module.register_forward_pre_hook(hook))
    return handles


def end_to_end(config: str, modes: list[str], steps: int, infer_reps: int) -> dict:
    """Training steps (AdamW) and inference of SpikeBERT with each ``sparse_spike_matmul``
    mode, the same initial weights and batch, steps interleaved mode by mode (medians)."""
    cfg = STEP_CONFIGS[config]
    models, opts = {}, {}
    for mode in modes:
        torch.manual_seed(0)
        models[mode] = create_model(cfg.model, **cfg.overrides, sparse_spike_matmul=mode)
        opts[mode] = torch.optim.AdamW(models[mode].parameters(), lr=1e-4)
    batch = make_batch(cfg, models[modes[0]].config.vocab_size, torch.device("cpu"))
    seen: dict[str, list] = {}
    handles = _record_inputs(models[modes[0]], seen)
    step_s: dict[str, list[float]] = {m: [] for m in modes}
    losses: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(steps + 1):  # the first is a warm-up
        for mode in modes:
            start = time.perf_counter()
            loss = models[mode](**batch).loss
            opts[mode].zero_grad(set_to_none=True)
            loss.backward()
            opts[mode].step()
            if i:
                step_s[mode].append(time.perf_counter() - start)
            losses[mode].append(loss.item())
    for h in handles:
        h.remove()
    infer_s: dict[str, list[float]] = {m: [] for m in modes}
    inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with torch.inference_mode():
        for i in range(infer_reps + 1):
            for mode in modes:
                models[mode].eval()
                start = time.perf_counter()
                models[mode](**inputs)
                if i:
                    infer_s[mode].append(time.perf_counter() - start)
    return dict(
        config=config, model=cfg.model, batch=cfg.batch, seq_len=cfg.seq_len,
        overrides=cfg.overrides, threads=torch.get_num_threads(), load=os.getloadavg()[0],
        step_s={m: statistics.median(v) for m, v in step_s.items()}, step_s_all=step_s,
        infer_s={m: statistics.median(v) for m, v in infer_s.items()}, losses=losses,
        inputs={k: dict(density=statistics.mean(d for d, _ in v),
                        auto_sparse=sum(e for _, e in v) / len(v)) for k, v in seen.items()},
    )  # fmt: skip


def step_table(runs: list[dict]) -> list[str]:
    """Markdown: per configuration, each mode's median step and inference time, and the time
    of the first mode (``off``) over each other mode's (above 1: that mode is faster)."""
    lines = [
        "| config | threads | load | mode | step s | speed-up | inference s | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        base = next(iter(run["step_s"]))
        for mode, step in run["step_s"].items():
            infer = run["infer_s"][mode]
            lines.append(
                f"| {run['config']} | {run['threads']} | {run['load']:.1f} | {mode} | {step:.3f} "
                f"| {run['step_s'][base] / step:.2f}x | {infer:.3f} "
                f"| {run['infer_s'][base] / infer:.2f}x |"
            )
    return lines


def ratio_table(rows: list[dict], product: str) -> list[str]:
    """Markdown: one line per (config, layer, rate, threads) of ``product``; per method its
    time as a multiple of dense's (below 1 is faster), ``*`` on the fastest non-dense method
    with a ``n=1`` note for a method timed once. Rows without a dense time are left out."""
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if r["product"] == product:
            key = (r["config"], r["layer"], f"{r['M']}x{r['K']}x{r['N']}", r["rate"], r["threads"])
            groups.setdefault(key, {})[r["method"]] = r
    methods = list(dict.fromkeys(r["method"] for g in groups.values() for r in g.values()))
    methods = [m for m in methods if m != "dense"]
    head = ["config", "layer", "M x K x N", "rate", "threads", "dense ms", *methods]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, by in groups.items():
        if "dense" not in by:
            continue
        dense = by["dense"]["ms"]
        ranked = [m for m in methods if m in by and "alone" not in m and "excluded" not in m]
        best = min(ranked, key=lambda m: by[m]["ms"], default=None)
        cells = []
        for m in methods:
            if m not in by:
                cells.append("")
                continue
            cell = f"{by[m]['ms'] / dense:.2f}x"
            cell += " (n=1)" if by[m]["samples"] == 1 else ""
            cells.append(f"**{cell}**" if m == best and by[m]["ms"] < dense else cell)
        lines.append("| " + " | ".join([*map(str, key), f"{dense:.1f}", *cells]) + " |")
    return lines


def markdown(result: dict) -> str:
    """The three tables (forward, ``dW``, both) with the run's load averages."""
    out = []
    for product in sorted({r["product"] for r in result["rows"]}, key=PRODUCTS.index):
        out += [f"\n{product} (time / dense time; bold: fastest, if faster than dense)\n"]
        out += ratio_table(result["rows"], product)
    if result.get("steps"):
        out += ["\nwhole steps (AdamW) and inference, `sparse_spike_matmul` per mode\n"]
        out += step_table(result["steps"])
    loads = [r["load"] for r in result["rows"] + result.get("steps", [])]
    if loads:
        out.append(f"\nload average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f}")
    return "\n".join(out)


def main() -> None:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", nargs="+", type=int, default=[1])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--layers", nargs="+", help="only these layers (default: all four)")
    p.add_argument("--skip", nargs="+", help="methods to leave out: 'method' or 'product:method'")
    p.add_argument("--products", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--steps", type=int, default=0, help="whole training steps per mode (0: none)")
    p.add_argument("--infer-reps", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=["off", "auto"])
    p.add_argument("--out", default="sparse_products")
    p.add_argument("--table", type=Path, help="print the tables of a saved result and exit")
    args = p.parse_args()
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return
    load_before = os.getloadavg()
    rows = (
        run(args.configs, args.threads, args.reps, args.layers, args.skip) if args.products else []
    )
    runs = []
    for config in args.configs if args.steps else []:
        for nt in args.threads:
            torch.set_num_threads(nt)
            runs.append(end_to_end(config, args.modes, args.steps, args.infer_reps))
            print(runs[-1], flush=True)
    result = dict(
        machine=machine(),
        config=vars(args) | {"table": None},
        load_before=load_before,
        load_after=os.getloadavg(),
        rows=rows,
        steps=runs,
    )
    print(f"saved {save(args.out, result)}")
    print(markdown(result))


if __name__ == "__main__":
    main()
