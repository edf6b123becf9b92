"""Stage-2 step time with and without the teacher-output cache (and with frozen embeddings).

The quickstart's stage 2 (SpikeBERT student from a stage-1 run, the fine-tuned MiniLM teacher,
SpikeBERT's loss weights, batch 32 of the embedded Rotten Tomatoes training split, length-grouped
as in training) is timed in interleaved blocks of optimizer steps per setting, so a load change on
a shared machine hits every setting alike; the table gives the median step time and the ratio to
the live teacher. Also reported: the cache's build time and size.

Usage::

    python benchmarks/teacher_cache_speed.py --teacher RUN/teacher --stage1 RUN/stage1
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

SETTINGS = {
    "live teacher": {"cache": False, "freeze": False},
    "cached teacher": {"cache": True, "freeze": False},
    "live teacher, frozen embeddings": {"cache": False, "freeze": True},
    "cached teacher, frozen embeddings": {"cache": True, "freeze": True},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", type=Path, required=True, help="fine-tuned teacher run folder")
    p.add_argument("--stage1", type=Path, required=True, help="stage-1 student run folder")
    p.add_argument("--block", type=int, default=10, help="steps per block")
    p.add_argument("--rounds", type=int, default=3, help="blocks per setting")
    p.add_argument("--name", default="teacher_cache_speed")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from spikeformers.data import encode_examples
    from spikeformers.distill.distiller import DistillConfig, Distiller
    from spikeformers.distill.teacher import freeze, load_teacher, load_tokenizer
    from spikeformers.pipeline import DataArgs, load_data
    from spikeformers.trainer import TrainConfig, build_optimizer, build_scheduler, train_step
    from spikeformers.workflows.loaders import train_loader as _train_loader
    from spikeformers.workflows.students import resolve_student as _student

    a = parse_args(argv)
    torch.manual_seed(0)
    data = DataArgs(max_length=64)
    splits = load_data(data)
    tok = load_tokenizer(a.teacher)
    teacher = freeze(load_teacher(a.teacher, num_labels=splits.task.num_labels))
    base = _student(str(a.stage1), tok, splits, {})
    train = TrainConfig(epochs=5, lr=1e-3, batch_size=32)
    ds = encode_examples(splits.train, tok, max_length=data.max_length)
    runs = {}
    cache_info = {}
    for name, s in SETTINGS.items():
        student = copy.deepcopy(base)
        if s["freeze"]:
            student.get_input_embeddings().weight.requires_grad_(False)
        d = Distiller(student, teacher, DistillConfig.for_stage("task"))
        if s["cache"]:
            t0 = time.perf_counter()
            cache = d.cache_teacher_outputs(ds, batch_size=64, pad_token_id=tok.pad_token_id)
            cache_info = {"build_s": time.perf_counter() - t0, "MB": cache.nbytes() / 2**20}
        d.train()
        params = d.trainable_parameters()
        opt = build_optimizer(params, train)
        runs[name] = {
            "d": d,
            "params": params,
            "opt": opt,
            "sched": build_scheduler(opt, train, 10_000),
            "batches": iter(_train_loader(splits.train, tok, data, train, None)),
            "times": [],
        }
    for _ in range(a.rounds):
        for r in runs.values():
            for _ in range(a.block):
                b = next(r["batches"])
                b.pop("loss_scale", None)
                t0 = time.perf_counter()
                train_step(r["d"], b, r["opt"], r["sched"], r["params"], train.grad_clip)
                r["times"].append(time.perf_counter() - t0)
    live = statistics.median(runs["live teacher"]["times"])
    rows = []
    print("| setting | median step s | vs live teacher |\n|---|---|---|")
    for name, r in runs.items():
        med = statistics.median(r["times"])
        rows.append({"setting": name, "median_step_s": med, "steps": len(r["times"])})
        print(f"| {name} | {med:.3f} | {live / med:.2f}x faster |")
    print(f"cache: built in {cache_info['build_s']:.1f} s, {cache_info['MB']:.0f} MB")
    info = machine() | {"loadavg_end": os.getloadavg()}
    path = save(a.name, {"machine": info, "rows": rows, "cache": cache_info, "args": vars(a)})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
