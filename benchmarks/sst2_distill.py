"""SST-2 end to end for every family from one teacher: accuracy, energy and wall time.

Steps (all on the SST-2 sentence-level split that SpikeBERT reports: 6,920 / 872 / 1,821):

1. fine-tune the teacher (the packaged MiniLM by default) on the training split;
2. for each family in ``--families``: stage 1 (general distillation from the pre-trained teacher
   on the training sentences with labels dropped, or ``--unlabelled-file``), stage 2 (task
   distillation from the fine-tuned teacher); with ``--direct``, also the same student trained
   directly with cross-entropy (no teacher);
3. score every model once on the test split (model selection used the dev split), and estimate
   per-sentence energy on the first ``--energy-samples`` test sentences (batch 1, no padding),
   paper convention and full accounting, with the ratio to the teacher;
   With ``--augment FAMILY ...``, those families' stage 2 trains on the teacher-labelled
   augmented transfer set of the training split (Tang et al. 2019 as in SpikeBERT; ``--n-iter``
   new sentences per sentence, written once to ``--out/augmented.jsonl``);
4. for SpikingBERT students, accuracy and energy against the number of simulation steps ``T`` at
   evaluation (``--eval-time-steps``).

The students are the quickstart's recipes (``spikeformers.quickstart.QUICKSTART_STUDENTS``: the
family's mini variant cut to 2 layers so that a CPU run fits in an hour).

Usage (from the repository root, shared data beside it)::

    .venv/bin/python benchmarks/sst2_distill.py --data-dir ../shared/data --out runs/sst2 \
        --families spikebert spikingbert snnbert --direct snnbert

Writes every run directory under ``--out`` and ``benchmarks/results/sst2_distill.json``
(configuration, accuracies, gaps, energies, wall times, machine). ``--resume`` reuses finished runs
(a run is finished when its ``metrics.json`` exists).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402

from spikeformers.augment import (  # noqa: E402
    AugmentConfig,
    augment_with_teacher,
    finished_transfer_set,
    make_tagger,
)
from spikeformers.cli import parse_overrides  # noqa: E402
from spikeformers.distill.distiller import DistillConfig  # noqa: E402
from spikeformers.pipeline import (  # noqa: E402
    DataArgs,
    distill,
    evaluate_model,
    finetune_teacher,
    load_data,
    train_direct,
)
from spikeformers.quickstart import QUICKSTART_STUDENTS, distill_task_steps  # noqa: E402
from spikeformers.trainer import TrainConfig  # noqa: E402
from spikeformers.utils.logging import configure_cli_logging  # noqa: E402
from spikeformers.workflows.energy import energy_of_run  # noqa: E402

# a child of the package logger, so configure_cli_logging shows it (the root logger stays
# unconfigured: logging.info() on it would install a second handler and double every line)
log = logging.getLogger("spikeformers.benchmarks.sst2_distill")
CORE = ("accuracy", "f1", "mcc", "firing_rate", "num_examples")


def _timed(times: dict, key: str, run_dir: Path, resume: bool, fn) -> None:
    """Run ``fn()`` unless ``--resume`` and ``run_dir`` already holds a finished run."""
    if resume and (run_dir / "metrics.json").is_file():
        log.info("reusing %s", run_dir)
        prev = json.loads((run_dir / "metrics.json").read_text())
        times[key] = prev.get("seconds") or prev.get("train", {}).get("seconds")
        return
    t0 = time.perf_counter()
    fn()
    times[key] = round(time.perf_counter() - t0, 1)


def _energy(run: Path, teacher: Path, data: DataArgs, n: int, overrides: dict | None = None):
    report, _ = energy_of_run(
        run, data, split="test", teacher_dir=teacher, max_samples=n, model_overrides=overrides
    )
    return {
        "samples": report.num_samples,
        "student_uj_paper": round(report.energy_pj_paper / 1e6, 4),
        "student_uj_full": round(report.energy_pj_full / 1e6, 4),
        "teacher_uj_paper": round(report.teacher.energy_pj_paper / 1e6, 4),
        "teacher_uj_full": round(report.teacher.energy_pj_full / 1e6, 4),
        "ratio_paper": round(report.ratio_paper, 4),
        "ratio_full": round(report.ratio_full, 4),
        # SpikeBERT's table prices the teacher's FLOPs (2 per MAC) at E_MAC: same counts, that
        # convention's ratio is half of ours
        "ratio_paper_flop_priced_teacher": round(report.ratio_paper / 2, 4),
    }


def _score(run: Path, data: DataArgs, overrides: dict | None = None) -> dict:
    m = evaluate_model(model_dir=run, data=data, split="test", model_overrides=overrides)
    return {k: m[k] for k in CORE if k in m}


def _augment(a: argparse.Namespace, data: DataArgs, teacher: Path, path: Path, times: dict) -> None:
    """Write the teacher-labelled transfer set once (reused with ``--resume`` if its settings,
    including the teacher, are the same)."""
    cfg = AugmentConfig(n_iter=a.n_iter, seed=a.seed, max_length=a.max_length)
    done = finished_transfer_set(path, cfg, str(teacher)) if a.resume else None
    if done is not None:
        log.info("reusing %s", path)
        times["augment"] = done.get("seconds")
        return
    splits = load_data(data)
    stats = augment_with_teacher(
        splits.train,
        str(teacher),
        num_labels=splits.task.num_labels,
        tagger=make_tagger("auto", language=splits.task.language),
        out_path=path,
        config=cfg,
        device=a.device,
        show_progress=False,
    )
    times["augment"] = round(stats.seconds, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--out", default="runs/sst2")
    p.add_argument("--teacher", default="minilm")
    p.add_argument(
        "--families", nargs="+", choices=sorted(QUICKSTART_STUDENTS), default=["spikebert"]
    )
    p.add_argument("--teacher-epochs", type=float, default=2.0)
    p.add_argument("--general-epochs", type=float, default=1.0)
    p.add_argument("--task-epochs", type=float, default=3.0)
    p.add_argument("--task-lr", type=float, default=5e-4)
    p.add_argument(
        "--evals-per-epoch", type=int, default=1, help="stage-2 validation (model selection) rate"
    )
    p.add_argument(
        "--unlabelled-file",
        action="append",
        metavar="FILE_OR_train",
        help="a stage-1 text source, repeatable (`train`: the SST-2 training sentences, labels "
        "dropped; the default), as `spikeformers distill --unlabelled-file`",
    )
    p.add_argument(
        "--split-long-texts",
        action="store_true",
        help="cut the --unlabelled-file files' paragraphs into pieces that fit --max-length "
        "instead of truncating them (`train` is never cut)",
    )
    p.add_argument(
        "--direct",
        nargs="*",
        default=[],
        choices=sorted(QUICKSTART_STUDENTS),
        help="families whose student is also trained directly (CE, no teacher)",
    )
    p.add_argument(
        "--augment",
        nargs="*",
        default=[],
        choices=sorted(QUICKSTART_STUDENTS),
        help="families whose stage 2 trains on the augmented transfer set",
    )
    p.add_argument("--n-iter", type=int, default=20, help="augmented sentences per sentence")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="student config overrides on top of the recipe's (every family), e.g. num_layers=4",
    )
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument(
        "--max-train-samples", type=int, help="seeded training subset (smoke runs; default: all)"
    )
    p.add_argument(
        "--max-eval-samples", type=int, help="seeded dev/test subsets (smoke runs; default: all)"
    )
    p.add_argument("--energy-samples", type=int, default=200)
    p.add_argument("--eval-time-steps", nargs="*", type=int, default=[4, 8, 16, 32, 64])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--resume", action="store_true", help="reuse finished runs under --out")
    p.add_argument("--name", default="sst2_distill", help="results file name")
    a = p.parse_args()
    try:  # the CLI's --set parser: JSON values where they parse, strings otherwise (pooling=cls)
        extra = parse_overrides(a.set)
    except ValueError as e:
        p.error(str(e))
    configure_cli_logging()
    logging.getLogger("transformers").setLevel(logging.ERROR)

    out = Path(a.out)
    data = DataArgs(
        task="sst2",
        data_dir=a.data_dir,
        max_length=a.max_length,
        max_train_samples=a.max_train_samples,
        max_eval_samples=a.max_eval_samples,
    )
    common = dict(device=a.device, overwrite=True, show_progress=False)
    times: dict = {}
    teacher_dir = out / "teacher"
    _timed(
        times,
        "teacher",
        teacher_dir,
        a.resume,
        lambda: finetune_teacher(
            data=data,
            out_dir=teacher_dir,
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
        ),
    )
    results: dict = {"teacher": _score(teacher_dir, data)}
    task_train = TrainConfig(
        epochs=a.task_epochs, lr=a.task_lr, seed=a.seed, evals_per_epoch=a.evals_per_epoch
    )
    aug_file = out / "augmented.jsonl"
    if a.augment:
        _augment(a, data, teacher_dir, aug_file, times)

    students = {
        f: dataclasses.replace(s, overrides={**s.overrides, **extra})
        for f, s in QUICKSTART_STUDENTS.items()
        if f in a.families
    }
    for family in a.families:
        spec = students[family]
        fam = out / family
        _timed(
            times,
            f"{family}/stage1",
            fam / "stage1",
            a.resume,
            lambda spec=spec, fam=fam: distill(
                stage="general",
                out_dir=fam / "stage1",
                model=spec.variant,
                teacher=a.teacher,
                data=data,
                unlabelled_file=a.unlabelled_file,
                split_long_texts=a.split_long_texts,
                distill_config=DistillConfig.for_stage("general", **spec.general),
                train=TrainConfig(epochs=a.general_epochs, lr=1e-3, seed=a.seed),
                model_overrides=spec.overrides,
                **common,
            ),
        )
        student = fam / ("student-augmented" if family in a.augment else "student")
        _timed(
            times,
            f"{family}/stage2",
            student,
            a.resume,
            lambda spec=spec, fam=fam, student=student, family=family: distill_task_steps(
                spec,
                model=str(fam / "stage1"),
                out_dir=student,
                teacher=str(teacher_dir),
                data=data,
                train=task_train,
                augmented_file=str(aug_file) if family in a.augment else None,
                **common,
            ),
        )
        runs = {"distilled": student}
        if family in a.direct:
            _timed(
                times,
                f"{family}/direct",
                fam / "direct",
                a.resume,
                lambda spec=spec, fam=fam: train_direct(
                    out_dir=fam / "direct",
                    model=spec.variant,
                    tokenizer=a.teacher,
                    data=data,
                    train=task_train,
                    model_overrides=spec.overrides,
                    **common,
                ),
            )
            runs["direct"] = fam / "direct"
        for kind, run in runs.items():
            r = _score(run, data)
            r["gap_points"] = round(100 * (results["teacher"]["accuracy"] - r["accuracy"]), 2)
            r["energy"] = _energy(run, teacher_dir, data, a.energy_samples)
            results[f"{family}/{kind}"] = r
        if family == "spikingbert" and a.eval_time_steps:
            results["spikingbert/distilled"]["vs_time_steps"] = [
                {
                    "time_steps": t,
                    **_score(student, data, {"time_steps": t}),
                    "energy": _energy(
                        student, teacher_dir, data, a.energy_samples, {"time_steps": t}
                    ),
                }
                for t in a.eval_time_steps
            ]
        log.info("%s: %s", family, json.dumps({k: v for k, v in results.items()}))

    summary = {
        "task": "sst2",
        "split": "test",
        "config": vars(a) | {"students": {f: vars(s) for f, s in students.items()}},
        "results": results,
        "seconds": times,
        "machine": machine(),
    }
    path = save(a.name, summary)
    print(json.dumps(summary, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
