"""Training throughput and inference latency: spiking students next to their teacher.

All models run in one process, on the same batches, alternating, so machine noise hits each
alike; report ratios. Usage::

    .venv/bin/python benchmarks/throughput.py [--device cuda] [--students spikebert-mini ...]

Writes ``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402

from spikeformers import create_model  # noqa: E402
from spikeformers.distill.teacher import load_teacher  # noqa: E402
from spikeformers.evaluation import forward_logits  # noqa: E402
from spikeformers.models.base import classification_loss  # noqa: E402
from spikeformers.trainer import TrainConfig, build_optimizer  # noqa: E402


def _batch(b: int, n: int, vocab: int, device) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab, (b, n), generator=g)
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "labels": torch.randint(0, 2, (b,), generator=g).to(device),
    }


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--students",
        nargs="*",
        default=[
            "spikebert-mini:num_layers=2,mlp_ratio=2.0",
            "spikebert-mini",
            "spikingbert-mini:num_layers=2,hidden_size=192,time_steps=8",
            "snnbert-mini:num_layers=2,mlp_ratio=2.0",
        ],
        help="NAME[:KEY=VALUE,...] (default: the quickstart students and spikebert-mini)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    device = torch.device(a.device)

    teacher = load_teacher(None, num_labels=2).to(device)
    vocab = teacher.config.vocab_size
    models = {"teacher (MiniLM 6x384)": teacher}
    for spec in a.students:
        name, _, ov = spec.partition(":")
        overrides = {k: json.loads(v) for k, v in (kv.split("=") for kv in ov.split(",") if kv)}
        label = name + (f" ({ov})" if ov else "")
        models[label] = create_model(name, vocab_size=vocab, **overrides).to(device)

    batch = _batch(a.batch_size, a.seq_len, vocab, device)
    one = {k: v[:1] for k, v in batch.items()}
    opts = {
        k: build_optimizer(list(m.parameters()), TrainConfig(lr=1e-5)) for k, m in models.items()
    }

    def train_step(name):
        m = models[name]
        m.train()
        loss = classification_loss(forward_logits(m, batch), batch["labels"])
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()

    @torch.no_grad()
    def infer(name, b):
        models[name].eval()
        forward_logits(models[name], b)

    for name in models:  # warm-up
        train_step(name)
        infer(name, batch)
    raw = {name: {"train": [], "infer_batch": [], "infer_one": []} for name in models}
    for _ in range(a.repeats):  # interleave models so noise is shared
        for name in models:
            raw[name]["train"] += _time(lambda n=name: train_step(n), device, 1)
            raw[name]["infer_batch"] += _time(lambda n=name: infer(n, batch), device, 1)
            raw[name]["infer_one"] += _time(lambda n=name: infer(n, one), device, 3)
    rows = {}
    for name, r in raw.items():
        tr = statistics.median(r["train"])
        ib = statistics.median(r["infer_batch"])
        io = statistics.median(r["infer_one"])
        rows[name] = {
            "params_M": round(sum(q.numel() for q in models[name].parameters()) / 1e6, 2),
            "train_examples_per_s": round(a.batch_size / tr, 1),
            "infer_examples_per_s": round(a.batch_size / ib, 1),
            "latency_one_ms": round(1000 * io, 1),
        }
    base = rows["teacher (MiniLM 6x384)"]
    load = os.getloadavg()  # shared machines: how busy it was
    for r in rows.values():
        r["train_speed_vs_teacher"] = round(
            r["train_examples_per_s"] / base["train_examples_per_s"], 2
        )
        r["latency_vs_teacher"] = round(r["latency_one_ms"] / base["latency_one_ms"], 2)
    print(
        "| model | params (M) | train ex/s | infer ex/s | latency 1 seq (ms) | "
        "train speed vs teacher | latency vs teacher |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['params_M']} | {r['train_examples_per_s']} | "
            f"{r['infer_examples_per_s']} | {r['latency_one_ms']} | "
            f"{r['train_speed_vs_teacher']}x | {r['latency_vs_teacher']}x |"
        )
    save(
        "throughput",
        {"config": vars(a), "rows": rows, "machine": machine(), "loadavg_end": load},
    )


if __name__ == "__main__":
    main()
