"""The SpikeBERT ablation study (Lv et al., arXiv 2308.15122, Table 3) as one reproducible run.

Each variant is a declarative :class:`Variant`: which stages run, which stage-2 loss weights are
zeroed and whether stage 2 trains on the augmented transfer set. :func:`run_ablation` turns the
variants into calls of :mod:`spikeformers.workflows` for every seed and writes a Markdown and a
JSON table (mean ± sample std over seeds of the test metric; model selection on validation).

Variants (the paper's Table 3; "paper Δ" is its average over MR, SST-2, Subj and SST-5):

- ``full``: stage 1 (feature distillation from the pre-trained teacher on unlabelled text), then
  stage 2 (all four terms, from the fine-tuned teacher, on the augmented set);
- ``no_stage1``: stage 2 from a freshly initialised student (word embeddings copied from the
  teacher when the widths match, exactly as the full method's stage 1 starts);
- ``no_stage2``: the stage-1 student fine-tuned on the *original* training set with cross-entropy
  on gold labels only: no teacher, no augmentation (the paper removes task distillation; the model
  still needs a classifier trained on the task, and plain CE fine-tuning is that);
- ``no_augment``: stage 2 on the original training set;
- ``no_feat`` / ``no_emb`` / ``no_kl`` / ``no_ce``: stage 2 with ``w_feat`` / ``w_emb`` /
  ``w_logit`` / ``w_ce`` set to 0 (stage 1 is unchanged: it has only the feature term).

Shared work is done once: the fine-tuned teacher (fine-tuned here when none is given) for all
seeds; per seed, one augmented file (augmentation seed = run seed) and one stage-1 student.

Stage-2 length: by default every variant trains the same number of *epochs* (as the paper), so
the augmented variants take ~``n_iter`` times more steps than ``no_augment`` / ``no_stage2``. For
an equal compute budget give ``stage2_train`` a large ``epochs`` and a ``max_steps``.
``resume=True`` reuses a finished run only if its ``run_config.json`` records the same settings
and nothing it was built on (teacher, augmented file, stage-1 student) was remade.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from spikeformers.augment import (
    AugmentConfig,
    Tagger,
    augment_with_teacher,
    finished_transfer_set,
    make_tagger,
)
from spikeformers.distill.distiller import DistillConfig
from spikeformers.trainer import TrainConfig
from spikeformers.utils.io import write_json
from spikeformers.workflows import (
    TEACHER_TRAIN_DEFAULTS,
    DataArgs,
    distill,
    finetune_teacher,
    load_data,
    train_direct,
)
from spikeformers.workflows.students import DEFAULT_STUDENT

logger = logging.getLogger(__name__)

# The paper's ablated weights (Table 3); w_attn is not part of SpikeBERT.
WEIGHTS = ("w_emb", "w_ce", "w_logit", "w_feat")


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One row of the ablation table, as a description of what runs."""

    name: str
    """Short id (``--variants`` value, run folder name)."""
    label: str
    """Row label in the table."""
    stage1: bool = True
    """Start stage 2 from the stage-1 student (else from a fresh student)."""
    stage2: Literal["distill", "finetune"] = "distill"
    """``distill``: task distillation; ``finetune``: CE on gold labels, no teacher."""
    augment: bool = True
    """Stage 2 trains on the augmented transfer set (else on the original training set)."""
    zero_weights: tuple[str, ...] = ()
    """Stage-2 ``DistillConfig`` weights set to 0."""
    paper_delta: float | None = None
    """The paper's Table 3 change vs. the full method (avg of 4 English sets, points)."""

    def __post_init__(self) -> None:
        unknown = set(self.zero_weights) - set(WEIGHTS)
        if unknown:
            raise ValueError(f"variant {self.name}: unknown weights {sorted(unknown)}")
        if self.stage2 == "finetune" and (self.augment or self.zero_weights):
            raise ValueError(
                f"variant {self.name}: CE fine-tuning has no teacher, so no augmentation or "
                "loss weights"
            )

    def task_config(self, base: DistillConfig) -> DistillConfig:
        """The stage-2 distillation config: ``base`` with this variant's weights zeroed."""
        return dataclasses.replace(base, **{w: 0.0 for w in self.zero_weights})

    def expected_terms(self, base: DistillConfig) -> tuple[str, ...]:
        """Loss terms stage 2 computes (``("ce",)`` for CE fine-tuning)."""
        if self.stage2 == "finetune":
            return ("ce",)
        return self.task_config(base).active_terms


VARIANTS: tuple[Variant, ...] = (
    Variant(name="full", label="SpikeBERT (full)"),
    Variant(name="no_stage1", label="w/o stage 1", stage1=False, paper_delta=-3.23),
    Variant(
        name="no_stage2", label="w/o stage 2", stage2="finetune", augment=False, paper_delta=-3.16
    ),
    Variant(name="no_augment", label="w/o data augmentation", augment=False, paper_delta=-0.76),
    Variant(name="no_feat", label="w/o feature loss", zero_weights=("w_feat",), paper_delta=-1.90),
    Variant(name="no_emb", label="w/o embedding loss", zero_weights=("w_emb",), paper_delta=-1.74),
    Variant(name="no_kl", label="w/o logit KL", zero_weights=("w_logit",), paper_delta=-3.03),
    Variant(name="no_ce", label="w/o CE", zero_weights=("w_ce",), paper_delta=-0.17),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


def get_variant(name: str) -> Variant:
    """The variant called ``name``."""
    for v in VARIANTS:
        if v.name == name:
            return v
    raise ValueError(f"unknown variant {name!r}; choose from {VARIANT_NAMES}")


@dataclass(frozen=True, kw_only=True)
class AblationConfig:
    """Everything one ablation study needs (sizes and epochs are configurable for CPU runs)."""

    data: DataArgs = field(default_factory=DataArgs)
    """The task (validation selects, test scores)."""
    out_dir: str = "runs/ablation"
    """Folder receiving every run, ``ablation.md`` and ``ablation.json``."""
    teacher: str | None = None
    """Teacher fine-tuned on the task; ``None``: fine-tune ``pretrained_teacher`` here first."""
    pretrained_teacher: str | None = "minilm"
    """Pre-trained teacher of stage 1 (and the start of teacher fine-tuning)."""
    model: str = DEFAULT_STUDENT
    """Registered student variant."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Student config overrides, e.g. ``{"num_layers": 2}``."""
    seeds: tuple[int, ...] = (0,)
    """One full study per seed (training, shuffling and augmentation seeds)."""
    variants: tuple[str, ...] = VARIANT_NAMES
    """Which rows to run."""
    teacher_train: TrainConfig = field(default_factory=lambda: TEACHER_TRAIN_DEFAULTS)
    """Teacher fine-tuning settings (used only when ``teacher`` is ``None``)."""
    stage1_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1.0, lr=1e-3))
    """Stage-1 settings (its ``seed`` is replaced per seed)."""
    stage2_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3.0, lr=5e-4))
    """Stage-2 settings, also used by the CE fine-tuning of ``no_stage2``."""
    distill: DistillConfig = field(default_factory=lambda: DistillConfig.for_stage("task"))
    """Stage-2 loss weights of the full method."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Augmentation settings (its ``seed`` is replaced per seed)."""
    tagger: str = "auto"
    """POS tagger name (:func:`spikeformers.augment.make_tagger`)."""
    spacy_model: str | None = None
    """spaCy pipeline package for ``tagger="spacy"``."""
    unlabelled_file: str | list[str] | None = None
    """Stage-1 text sources (see :func:`spikeformers.pipeline.distill`); default: the task's
    training sentences with labels dropped."""
    device: str | None = None
    """``cpu``, ``cuda``...; default CUDA when present."""
    resume: bool = False
    """Reuse finished runs (a ``metrics.json``) in ``out_dir`` instead of training again."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"duplicate seeds {self.seeds}")
        for name in self.variants:
            get_variant(name)
        if self.distill.stage != "task":
            raise ValueError("AblationConfig.distill must be a task-stage DistillConfig")


# --------------------------------------------------------------------------------------------
# Running


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(_plain(value), default=str))


def _done(run_dir: Path, resume: bool, **expect: Any) -> dict | None:
    """The metrics of a finished run in ``run_dir`` whose recorded settings match ``expect``.

    Only with ``resume``; a run made with other settings (``run_config.json`` differs in any key
    of ``expect``) is trained again rather than silently reused.
    """
    metrics, rc = run_dir / "metrics.json", run_dir / "run_config.json"
    if not (resume and metrics.is_file() and rc.is_file()):
        return None
    recorded = json.loads(rc.read_text(encoding="utf-8"))
    changed = [k for k, v in expect.items() if recorded.get(k) != _as_json(v)]
    if changed:
        logger.info("not reusing %s: %s changed", run_dir, ", ".join(changed))
        return None
    logger.info("reusing %s", run_dir)
    return json.loads(metrics.read_text(encoding="utf-8"))


def _run_settings(variant: Variant, cfg: AblationConfig, seed: int) -> dict:
    """Settings of a variant's run that ``--resume`` checks against its ``run_config.json``."""
    out: dict[str, Any] = {"train": dataclasses.replace(cfg.stage2_train, seed=seed)}
    if variant.stage2 == "distill":
        out["distill"] = variant.task_config(cfg.distill)
    if not variant.stage1:
        out["model"] = cfg.model
    return out


def _student_run(
    variant: Variant,
    cfg: AblationConfig,
    *,
    seed: int,
    teacher: str,
    stage1_dir: Path | None,
    aug_file: Path | None,
    run_dir: Path,
    show_progress: bool,
) -> dict:
    train = dataclasses.replace(cfg.stage2_train, seed=seed)
    # do_test: the table reports each variant's test score (selection stays on validation).
    common = dict(
        out_dir=run_dir,
        train=train,
        device=cfg.device,
        overwrite=True,
        show_progress=show_progress,
        do_test=True,
    )
    if variant.stage1:
        model, overrides = str(stage1_dir), None
    else:
        model, overrides = cfg.model, dict(cfg.model_overrides)
    if variant.stage2 == "finetune":
        return train_direct(
            model=model, tokenizer=teacher, data=cfg.data, model_overrides=overrides, **common
        )
    # the transfer set replaces the training split; its stored teacher logits feed the KL
    extra = {"augmented_file": str(aug_file)} if variant.augment else {}
    return distill(
        stage="task",
        model=model,
        teacher=teacher,
        data=cfg.data,
        distill_config=variant.task_config(cfg.distill),
        model_overrides=overrides,
        **extra,
        **common,
    )


def _record(variant: Variant, seed: int, metrics: dict, run_dir: Path, seconds: float) -> dict:
    test = metrics.get("test") or {}
    val = metrics.get("validation") or {}
    return {
        "variant": variant.name,
        "seed": seed,
        "test": {k: v for k, v in test.items() if isinstance(v, int | float)},
        "validation": {k: v for k, v in val.items() if isinstance(v, int | float)},
        "steps": metrics.get("steps"),
        "train_seconds": metrics.get("seconds"),
        "seconds": round(seconds, 1),
        "run_dir": str(run_dir),
    }


def run_ablation(
    cfg: AblationConfig, *, tagger: Tagger | None = None, show_progress: bool = True
) -> dict:
    """Run every selected variant for every seed and write ``ablation.md`` / ``ablation.json``.

    Args:
        cfg: The study.
        tagger: A ready POS tagger (default: built from ``cfg.tagger``; tests pass a stub).
        show_progress: Show the training and augmentation progress bars.

    Returns:
        The JSON document that was written (config, per-run records, summary, wall time).
    """
    start = time.perf_counter()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants = [get_variant(n) for n in cfg.variants]
    splits = load_data(cfg.data)
    task = splits.task
    metric = task.metric
    times: dict[str, float] = {}

    teacher_metrics = None
    teacher = cfg.teacher
    # What was (re)made in this call: runs built on it are never reused by --resume.
    remade = {"teacher": False, "augment": False, "stage1": False}
    if teacher is None:
        t0 = time.perf_counter()
        teacher_dir = out / "teacher"
        t_train = dataclasses.replace(cfg.teacher_train, seed=cfg.seeds[0])
        teacher_metrics = _done(
            teacher_dir, cfg.resume, teacher=cfg.pretrained_teacher, data=cfg.data, train=t_train
        )
        if teacher_metrics is None:
            remade["teacher"] = True
            teacher_metrics = finetune_teacher(
                data=cfg.data,
                out_dir=teacher_dir,
                teacher=cfg.pretrained_teacher,
                train=t_train,
                do_test=True,  # the table reports the teacher's test score
                device=cfg.device,
                overwrite=True,
                show_progress=show_progress,
            )
        teacher = str(teacher_dir)
        times["teacher"] = round(time.perf_counter() - t0, 1)

    need_aug = any(v.augment for v in variants)
    if need_aug and tagger is None:
        tagger = make_tagger(cfg.tagger, language=task.language, spacy_model=cfg.spacy_model)
    records: list[dict] = []
    aug_stats: dict[int, dict] = {}
    for seed in cfg.seeds:
        work = out / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        aug_used = None
        remade["augment"] = remade["stage1"] = False
        if need_aug:
            aug_file = work / "augmented.jsonl"
            aug_cfg = dataclasses.replace(cfg.augment, seed=seed, max_length=cfg.data.max_length)
            t0 = time.perf_counter()
            done = None
            if cfg.resume and not remade["teacher"]:
                done = finished_transfer_set(aug_file, aug_cfg, teacher)
            if done is not None:
                aug_stats[seed] = done
            else:
                remade["augment"] = True
                stats = augment_with_teacher(
                    splits.train,
                    teacher,
                    num_labels=task.num_labels,
                    tagger=tagger,
                    out_path=aug_file,
                    config=aug_cfg,
                    device=cfg.device,
                    show_progress=show_progress,
                )
                aug_stats[seed] = {**dataclasses.asdict(stats), "rows": stats.rows}
            times[f"seed{seed}/augment"] = round(time.perf_counter() - t0, 1)
            aug_used = aug_file

        stage1_dir = None
        if any(v.stage1 for v in variants):
            stage1_dir = work / "stage1"
            s1_train = dataclasses.replace(cfg.stage1_train, seed=seed)
            t0 = time.perf_counter()
            expect = dict(
                model=cfg.model,
                teacher=cfg.pretrained_teacher,
                data=cfg.data,
                unlabelled_file=cfg.unlabelled_file,
                train=s1_train,
                model_overrides=dict(cfg.model_overrides),
            )
            if _done(stage1_dir, cfg.resume, **expect) is None:
                remade["stage1"] = True
                distill(
                    stage="general",
                    out_dir=stage1_dir,
                    **expect,
                    device=cfg.device,
                    overwrite=True,
                    show_progress=show_progress,
                )
            times[f"seed{seed}/stage1"] = round(time.perf_counter() - t0, 1)

        for v in variants:
            run_dir = work / v.name
            t0 = time.perf_counter()
            logger.info("ablation seed %d: %s (%s)", seed, v.name, v.label)
            upstream = (
                (v.stage1 and remade["stage1"])
                or (v.augment and remade["augment"])
                or (v.stage2 == "distill" and remade["teacher"])
            )
            reuse = cfg.resume and not upstream
            metrics = _done(run_dir, reuse, **_run_settings(v, cfg, seed)) or _student_run(
                v,
                cfg,
                seed=seed,
                teacher=teacher,
                stage1_dir=stage1_dir,
                aug_file=aug_used,
                run_dir=run_dir,
                show_progress=show_progress,
            )
            records.append(_record(v, seed, metrics, run_dir, time.perf_counter() - t0))

    summary = summarize(records, variants, metric=metric)
    doc = {
        "task": task.name,
        "metric": metric,
        "split": "test",
        "selection": "validation",
        "seeds": list(cfg.seeds),
        "config": _plain(cfg),
        "teacher": {"path": teacher, "metrics": teacher_metrics},
        "augmentation": aug_stats,
        "variants": {
            v.name: {
                **dataclasses.asdict(v),
                "stage2_terms": list(v.expected_terms(cfg.distill)),
            }
            for v in variants
        },
        "runs": records,
        "summary": summary,
        "seconds": {**times, "total": round(time.perf_counter() - start, 1)},
    }
    write_json(out / "ablation.json", doc)
    (out / "ablation.md").write_text(markdown_table(doc), encoding="utf-8")
    return doc


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------------
# Summaries


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def summarize(records: list[dict], variants: list[Variant], *, metric: str) -> dict:
    """Per variant: mean and sample std over seeds of the test / validation metric (in %)."""
    out = {}
    full = None
    for v in variants:
        rows = [r for r in records if r["variant"] == v.name]
        test = [100 * r["test"][metric] for r in rows if metric in r["test"]]
        val = [100 * r["validation"][metric] for r in rows if metric in r["validation"]]
        rates = [r["test"]["firing_rate"] for r in rows if "firing_rate" in r["test"]]
        t_mean, t_std = _mean_std(test)
        v_mean, v_std = _mean_std(val)
        out[v.name] = {
            "label": v.label,
            "n": len(rows),
            "test_mean": t_mean,
            "test_std": t_std,
            "test_per_seed": test,
            "validation_mean": v_mean,
            "validation_std": v_std,
            "firing_rate": _mean_std(rates)[0],
            # training time recorded by the run itself, so a run reused by --resume keeps it
            "seconds_mean": _mean_std([r.get("train_seconds") for r in rows])[0],
            "paper_delta": v.paper_delta,
        }
        if v.name == "full":
            full = t_mean
    full_by_seed = {
        r["seed"]: 100 * r["test"][metric]
        for r in records
        if r["variant"] == "full" and metric in r["test"]
    }
    for name, s in out.items():
        s["delta"] = None if full is None or s["test_mean"] is None else s["test_mean"] - full
        # paired by seed (same data draw, augmentation and batch order as that seed's full run)
        diffs = [
            100 * r["test"][metric] - full_by_seed[r["seed"]]
            for r in records
            if r["variant"] == name and metric in r["test"] and r["seed"] in full_by_seed
        ]
        _, sd = _mean_std(diffs)
        s["delta_paired_se"] = None if sd is None or name == "full" else sd / math.sqrt(len(diffs))
    return out


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def markdown_table(doc: dict) -> str:
    """The study as Markdown: a header with the setup and one table row per variant."""
    cfg = doc["config"]
    metric = doc["metric"]
    lines = [
        f"# SpikeBERT ablation on {doc['task']} ({metric}, %, test split; selection on validation)",
        "",
        f"Seeds: {doc['seeds']} (mean ± sample std over seeds; a single seed shows no std). "
        f"Wall time of this call: {doc['seconds']['total'] / 60:.1f} min; training time of all "
        f"runs (kept by runs reused with --resume): "
        f"{sum(r.get('train_seconds') or 0 for r in doc['runs']) / 60:.1f} min.",
        f"Student: `{cfg['model']}` with {cfg['model_overrides'] or 'no overrides'}; "
        f"teacher: `{doc['teacher']['path']}`; stage-1 teacher: `{cfg['pretrained_teacher']}`.",
    ]
    if doc["teacher"]["metrics"] and "test" in doc["teacher"]["metrics"]:
        t = doc["teacher"]["metrics"]["test"].get(metric)
        if t is not None:
            lines.append(f"Fine-tuned teacher, test {metric}: {100 * t:.2f}.")
    lines += [
        "",
        "| variant | stage 1 | stage 2 | augmented | stage-2 terms | test | Δ vs full (± SE) "
        "| paper Δ | validation | firing rate | train s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in doc["summary"].items():
        v = doc["variants"][name]
        delta = "" if s["delta"] is None or name == "full" else f"{s['delta']:+.2f}"
        if delta and s.get("delta_paired_se") is not None:
            delta += f" ± {s['delta_paired_se']:.2f}"
        paper = "" if s["paper_delta"] is None else f"{s['paper_delta']:+.2f}"
        rate = "" if s["firing_rate"] is None else f"{s['firing_rate']:.3f}"
        lines.append(
            f"| {s['label']} | {'yes' if v['stage1'] else 'no'} | {v['stage2']} "
            f"| {'yes' if v['augment'] else 'no'} | {', '.join(v['stage2_terms'])} "
            f"| {_fmt(s['test_mean'], s['test_std'])} | {delta} | {paper} "
            f"| {_fmt(s['validation_mean'], s['validation_std'])} | {rate} "
            f"| {s['seconds_mean'] or 0:.0f} |"
        )
    lines += [
        "",
        "Δ vs full: difference of the test means; ± its standard error over the seeds' paired "
        "differences (each seed's run minus that seed's full run). Paper Δ: SpikeBERT Table 3, "
        "average over MR, SST-2, Subj and SST-5 (full method 76.30).",
        "",
    ]
    return "\n".join(lines)
