"""Time ``spikeformers.evaluation.evaluate`` on the embedded validation split, before vs after.

A randomly initialised ``spikebert-mini`` (``--layers`` blocks, ``--mlp-ratio``, seed 0) with the
quickstart teacher's (MiniLM) tokenizer scores the 487 validation texts of the embedded default
data (Rotten Tomatoes) in batches of ``--batch-size``, built as the ``evaluate`` workflow builds
them (``spikeformers.workflows.loaders.loader``; length-bucketed where the code under test has
``padding_invariant``). Each worker process does one warm-up ``evaluate`` and ``--reps`` timed ones
and prints the seconds as JSON.

Compare two source trees, one process at a time, alternating (the machine may be shared, so
report the ratio of the medians)::

    PYTHONPATH=src python benchmarks/eval_speed.py --compare /work/main/src src --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def worker(args: argparse.Namespace) -> dict:
    """Seconds of each timed ``evaluate`` call, the accuracy and the firing rate."""
    import torch

    from spikeformers import create_model, evaluation
    from spikeformers.distill.teacher import load_tokenizer
    from spikeformers.pipeline import DataArgs, load_data
    from spikeformers.workflows.loaders import loader

    torch.manual_seed(0)
    tok = load_tokenizer("minilm")
    data = DataArgs(max_length=args.max_length)
    splits = load_data(data)
    model = create_model(
        "spikebert-mini",
        vocab_size=tok.vocab_size,
        num_labels=2,
        num_layers=args.layers,
        mlp_ratio=args.mlp_ratio,
    ).eval()
    kw = {}
    if hasattr(evaluation, "padding_invariant"):  # the code under test can bucket
        kw["group_by_length"] = evaluation.padding_invariant(model)
    batches = loader(list(splits.validation), tok, data, args.batch_size, shuffle=False, **kw)
    dev = torch.device("cpu")
    evaluation.evaluate(model, batches, splits.task, dev)  # warm-up
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        res = evaluation.evaluate(model, batches, splits.task, dev)
        times.append(time.perf_counter() - t0)
    return {
        "times": times,
        "accuracy": res["accuracy"],
        "firing_rate": res["firing_rate"],
        "num_examples": res["num_examples"],
        "bucketed": bool(kw.get("group_by_length")),
        "positions": sum(int(b["attention_mask"].numel()) for b in batches),
    }


def compare(args: argparse.Namespace) -> None:
    """Alternate worker processes over the two source trees; print medians and their ratio."""
    before, after = args.compare
    runs: dict[str, list[dict]] = {before: [], after: []}
    cmd = [sys.executable, __file__, "--worker"] + [
        f"--{k.replace('_', '-')}={v}"
        for k, v in vars(args).items()
        if k in ("layers", "mlp_ratio", "batch_size", "max_length", "reps")
    ]
    for _ in range(args.rounds):
        for src in (before, after):
            env = dict(os.environ, PYTHONPATH=src)
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[src].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {s: statistics.median(t for r in rs for t in r["times"]) for s, rs in runs.items()}
    summary = {
        src: {
            "median_s": med[src],
            "seq_per_s": runs[src][0]["num_examples"] / med[src],
            "accuracy": runs[src][0]["accuracy"],
            "firing_rate": runs[src][0]["firing_rate"],
            "bucketed": runs[src][0]["bucketed"],
            "positions": runs[src][0]["positions"],
            "times": [t for r in runs[src] for t in r["times"]],
        }
        for src in (before, after)
    }
    summary["speedup_before_over_after"] = med[before] / med[after]
    print(json.dumps(summary, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--mlp-ratio", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--reps", type=int, default=3, help="timed evaluate calls per process")
    p.add_argument("--rounds", type=int, default=3, help="processes per tree (--compare)")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE_SRC", "AFTER_SRC"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.compare:
        compare(args)
    else:
        print(json.dumps(worker(args)))


if __name__ == "__main__":
    main()
