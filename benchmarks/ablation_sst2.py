"""Reduced SpikeBERT ablation (Table 3) on SST-2 (or another task) that fits a 2-core CPU.

Usage (from the repository root, shared data beside it)::

    .venv/bin/python benchmarks/ablation_sst2.py --data-dir ../shared/data
    .venv/bin/python benchmarks/ablation_sst2.py --task mr --name ablation_mr  # MR, same setup

Same code path as ``spikeformers ablate`` (:func:`spikeformers.ablation.run_ablation`), with a
reduced setup: a seeded subset of the training set, a small student, MiniLM as the teacher
(fine-tuned here on the same subset unless ``--teacher`` names one), ``n_iter`` 5 instead of 20,
and the same number of stage-2 optimizer steps for every variant (so "w/o augmentation" is not
also "fewer steps"). Validation (SST-2: dev, 872) selects, the test set (SST-2: 1,821; tasks
without splits get a seeded stratified one) scores. Writes ``benchmarks/results/<name>.md`` and
``.json`` (configuration, seeds, per-run numbers, wall times, machine).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, machine  # noqa: E402

from spikeformers.ablation import VARIANT_NAMES, AblationConfig, markdown_table, run_ablation  # noqa: E402
from spikeformers.augment import AugmentConfig  # noqa: E402
from spikeformers.pipeline import DataArgs  # noqa: E402
from spikeformers.trainer import TrainConfig  # noqa: E402
from spikeformers.utils.io import write_json  # noqa: E402
from spikeformers.utils.logging import configure_cli_logging  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="sst2", help="named task (SST-2 is the paper's headline)")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--out", default="runs/ablation_sst2")
    p.add_argument("--teacher", default=None, help="fine-tuned teacher (default: fine-tune here)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--variants", nargs="+", default=list(VARIANT_NAMES))
    p.add_argument("--max-train-samples", type=int, default=500)
    p.add_argument("--max-eval-samples", type=int, default=None, help="val/test subset size")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--student", default="spikebert-tiny")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="student overrides")
    p.add_argument("--teacher-epochs", type=float, default=3.0)
    p.add_argument("--stage1-epochs", type=float, default=1.0)
    p.add_argument("--stage2-steps", type=int, default=100)
    p.add_argument("--n-iter", type=int, default=5)
    p.add_argument("--name", default="ablation_sst2", help="results file name")
    p.add_argument("--device", default=None)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args()
    configure_cli_logging()
    logging.getLogger("transformers").setLevel(logging.ERROR)

    cfg = AblationConfig(
        data=DataArgs(
            task=a.task,
            data_dir=a.data_dir,
            max_length=a.max_length,
            max_train_samples=a.max_train_samples,
            max_eval_samples=a.max_eval_samples,
        ),
        out_dir=a.out,
        teacher=a.teacher,
        pretrained_teacher="minilm",
        model=a.student,
        model_overrides={k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)},
        seeds=tuple(a.seeds),
        variants=tuple(a.variants),
        teacher_train=TrainConfig(
            epochs=a.teacher_epochs,
            lr=1e-4,
            weight_decay=0.01,
            warmup_ratio=0.1,
            schedule="linear",
            batch_size=32,
        ),
        stage1_train=TrainConfig(epochs=a.stage1_epochs, lr=1e-3, batch_size=32),
        # epochs is only an upper bound here: every variant stops after the same step count
        stage2_train=TrainConfig(epochs=1000, max_steps=a.stage2_steps, lr=1e-3, batch_size=32),
        augment=AugmentConfig(n_iter=a.n_iter),
        device=a.device,
        resume=a.resume,
    )
    t0 = time.perf_counter()
    doc = run_ablation(cfg, show_progress=False)
    doc["benchmark"] = {
        "script": "benchmarks/ablation_sst2.py",
        "argv": sys.argv[1:],
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "machine": machine(),
        "note": (
            f"reduced study: {a.task} train subset, small student, MiniLM teacher, n_iter "
            f"{a.n_iter}, equal stage-2 step budget for every variant; not comparable in absolute "
            "terms to the paper's full-size runs"
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{a.name}.json", doc)
    md = markdown_table(doc) + (
        f"\nReduced setup: {a.max_train_samples} {a.task} training sentences (seeded subset), "
        f"`{a.student}` {' '.join(a.set)}, MiniLM-L6 teacher "
        + (
            f"`{a.teacher}` (given), "
            if a.teacher
            else f"fine-tuned {a.teacher_epochs:g} epochs on the subset, "
        )
        + f"stage 1 {a.stage1_epochs:g} epoch on the subset's sentences, stage 2 {a.stage2_steps} "
        f"optimizer steps (batch 32, lr 1e-3, cosine) for every variant, n_iter {a.n_iter}, "
        f"max length {a.max_length}, validation/test "
        f"{'full' if a.max_eval_samples is None else f'seeded subsets of {a.max_eval_samples}'}. "
        f"Machine: {doc['benchmark']['machine'].get('cpu')}, "
        f"{doc['benchmark']['machine']['cpu_count']} cores (shared). "
        f"Command: `python benchmarks/ablation_sst2.py {' '.join(sys.argv[1:])}`.\n"
    )
    (RESULTS / f"{a.name}.md").write_text(md, encoding="utf-8")
    print(md)
    print(json.dumps(doc["seconds"], indent=2))


if __name__ == "__main__":
    main()
