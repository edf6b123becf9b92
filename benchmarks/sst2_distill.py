"""SST-2 end to end: teacher fine-tuning, stage 1, stage 2, test evaluation (+ direct baseline).

Usage (from the repository root, shared data beside it)::

    .venv/bin/python benchmarks/sst2_distill.py --data-dir ../shared/data --out runs/sst2

Writes every run directory under ``--out`` and a summary to
``benchmarks/results/sst2_distill.json`` (configuration, accuracies, gap, wall times, machine).
Model selection uses the SST-2 dev split; the test split is scored once at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402

from spikeformers.distill.distiller import DistillConfig  # noqa: E402
from spikeformers.pipeline import (  # noqa: E402
    DataArgs,
    distill,
    evaluate_model,
    finetune_teacher,
    train_direct,
)
from spikeformers.trainer import TrainConfig  # noqa: E402
from spikeformers.utils.logging import configure_cli_logging  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--out", default="runs/sst2")
    p.add_argument("--teacher", default="minilm")
    p.add_argument("--student", default="spikebert-mini")
    p.add_argument(
        "--set",
        nargs="*",
        default=["num_layers=2", "mlp_ratio=2.0"],
        help="student overrides KEY=VALUE",
    )
    p.add_argument("--teacher-epochs", type=float, default=2.0)
    p.add_argument("--general-epochs", type=float, default=1.0)
    p.add_argument("--task-epochs", type=float, default=3.0)
    p.add_argument(
        "--unlabelled-file",
        default=None,
        help="stage-1 text (default: the SST-2 training sentences, labels dropped)",
    )
    p.add_argument("--direct", action="store_true", help="also train the student directly (CE)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--skip-teacher", action="store_true", help="reuse OUT/teacher")
    a = p.parse_args()
    configure_cli_logging()
    logging.getLogger("transformers").setLevel(logging.ERROR)

    out = Path(a.out)
    data = DataArgs(task="sst2", data_dir=a.data_dir, max_length=a.max_length)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    times = {}
    common = dict(device=a.device, overwrite=True, show_progress=False)

    t0 = time.perf_counter()
    if not a.skip_teacher:
        finetune_teacher(
            data=data,
            out_dir=out / "teacher",
            teacher=a.teacher,
            train=TrainConfig(
                epochs=a.teacher_epochs,
                lr=1e-4,
                weight_decay=0.01,
                warmup_ratio=0.1,
                schedule="linear",
                evals_per_epoch=2,
                seed=a.seed,
            ),
            **common,
        )
    times["teacher"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    distill(
        stage="general",
        out_dir=out / "stage1",
        model=a.student,
        teacher=a.teacher,
        data=data,
        unlabelled_file=a.unlabelled_file,
        train=TrainConfig(epochs=a.general_epochs, lr=1e-3, seed=a.seed),
        model_overrides=overrides,
        **common,
    )
    times["stage1"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    distill(
        stage="task",
        out_dir=out / "student",
        model=str(out / "stage1"),
        teacher=str(out / "teacher"),
        data=data,
        distill_config=DistillConfig.for_stage("task"),
        train=TrainConfig(epochs=a.task_epochs, lr=5e-4, seed=a.seed),
        **common,
    )
    times["stage2"] = time.perf_counter() - t0

    if a.direct:
        t0 = time.perf_counter()
        train_direct(
            out_dir=out / "direct",
            model=a.student,
            tokenizer=a.teacher,
            data=data,
            train=TrainConfig(epochs=a.task_epochs, lr=5e-4, seed=a.seed),
            model_overrides=overrides,
            **common,
        )
        times["direct"] = time.perf_counter() - t0

    results = {}
    for name in ("teacher", "student", *(["direct"] if a.direct else [])):
        m = evaluate_model(model_dir=out / name, data=data, split="test", device=a.device)
        results[name] = {
            k: m[k] for k in ("accuracy", "f1", "mcc", "firing_rate", "num_examples") if k in m
        }
    gap = results["teacher"]["accuracy"] - results["student"]["accuracy"]
    summary = {
        "task": "sst2",
        "split": "test",
        "config": vars(a) | {"student_overrides": overrides},
        "results": results,
        "gap_points": round(100 * gap, 2),
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "machine": machine(),
    }
    path = save("sst2_distill", summary)
    print(json.dumps(summary, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
