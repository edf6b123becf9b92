"""Run a recipe end to end into one folder: teacher, every stage, test once, energy, report.

Layout of a run folder ``OUT``:

- ``teacher/``: the fine-tuned teacher (absent when ``--teacher`` already is one for the data);
- ``stage1/``: stage 1, general distillation from the pre-trained teacher on ``unlabelled.txt``;
- ``student-step<i>/`` (recipes with several task steps) and ``student/``: the task stage;
- ``direct/``: the directly trained twin (``direct: true``);
- ``test_metrics.json``: the test split, scored once at the end for every model;
- ``student/energy.json`` (and ``direct/energy.json``): energy under both conventions;
- ``report/``: plots and ``report.md``; ``summary.json``.

Every training stage selects its model on validation only (``do_test=False``). With ``resume``,
a stage folder holding ``metrics.json`` and its model is skipped; an interrupted one continues
from its latest checkpoint (``save_every``) or starts again. Either only when the folder's
``run_config.json`` records the settings the stage would run with now
(:func:`stage_mismatches`); a folder of other settings (another stage-1 model, teacher, text,
loss or training settings) is an error, never silently reused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spikeformers import pipeline
from spikeformers.data import TRAIN_TEXTS
from spikeformers.distill.distiller import DistillConfig
from spikeformers.errors import RunDirError
from spikeformers.recipes import Recipe
from spikeformers.trainer import TrainConfig
from spikeformers.utils.io import write_json

logger = logging.getLogger(__name__)

MINILM_LABEL = "all-MiniLM-L6-v2 (BERT 6x384)"
"""How summaries name the packaged teacher."""
TEACHER_LABELS = {"minilm": MINILM_LABEL, "mpnet": "all-mpnet-base-v2 (MPNet 12x768)"}
"""How summaries name the teachers given by name."""

STAGE1_COUNTS = ("texts", "tokens", "texts_seen", "tokens_seen", "sources")
"""Stage 1's text counts a summary repeats (``tokens``: per epoch; ``*_seen``: in training)."""
CORE_METRICS = ("accuracy", "f1", "mcc", "pearson", "spearman", "pearson_spearman", "num_examples")


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a recipe is run (the recipe says what is trained)."""

    seed: int = 0
    """Seed of every training stage (the data split has its own, ``DataArgs.split_seed``)."""
    teacher: str | None = None
    """Teacher folder or id (``None``: the recipe's). A folder with a classification head of the
    data's label count is used as the fine-tuned teacher; anything else is fine-tuned first."""
    finetuned_teacher: str | None = None
    """A teacher folder already fine-tuned on this data, reused instead of fine-tuning one
    (``teacher`` stays the pre-trained teacher of stage 1); one that is not is an error."""
    device: str | None = None
    show_progress: bool = True
    resume: bool = False
    """Skip finished stages; continue an interrupted one from its latest checkpoint."""
    overwrite: bool = False
    """Allow running into a folder that holds an earlier run (its stages are replaced)."""
    save_every: int = 0
    """Checkpoint every N optimizer steps in each stage (0: none; resume restarts a stage)."""
    max_steps: int | None = None
    """Smoke runs: every stage stops after this many steps (validating once per epoch)."""
    max_general_texts: int | None = None
    """The ``train`` stage-1 source (the task's training texts) is cut to this many texts (file
    sources are read whole); ``quickstart --fast`` uses it."""
    energy_samples: int | None = None
    """Test texts priced (``None``: the recipe's)."""
    direct: bool | None = None
    """Also train the directly trained twin (``None``: the recipe's ``direct``)."""
    report: bool = True
    """Write ``report/`` (needs matplotlib; without it the summary says why there is none)."""
    report_to: list[str] = dataclasses.field(default_factory=list)
    """Experiment trackers for every training stage (``tensorboard``, ``wandb``, ``mlflow``;
    see :mod:`spikeformers.tracking`), each writing into its stage's folder."""


def is_finished(stage_dir: Path) -> bool:
    """A stage folder whose run completed: ``metrics.json`` and the saved model."""
    return all((stage_dir / f).is_file() for f in ("metrics.json", "config.json")) and any(
        stage_dir.glob("*.safetensors")
    )


SPEED_ONLY = frozenset({"cache_teacher"})
"""Stage settings that change time, never the numbers: not compared when resuming."""
_RECORDED_AS = {"distill_config": "distill"}
_EMPTY = (None, False, [], {}, "")
_MISSING = object()
"""Stage arguments that ``run_config.json`` records under another name."""


def _as_recorded(value):
    """``value`` as ``run_config.json`` holds it (dataclasses as dicts, paths as strings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, default=str))


def _field_defaults(value) -> dict:
    """Defaults of a settings dataclass's fields (``{}`` for anything else)."""
    if not (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return {}
    out = {}
    for f in dataclasses.fields(value):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return _as_recorded(out)


def stage_mismatches(stage_dir: Path, settings: dict) -> list[str]:
    """How the run recorded in ``stage_dir/run_config.json`` differs from ``settings`` (the
    keyword arguments its stage would be run with now): ``"key: recorded -> requested"`` lines,
    empty when they agree.

    A setting the record lacks agrees when the requested value is its default (``None``,
    ``False``, empty, or a settings dataclass field's default): it was added to the code after
    that run, which then ran with the default's behaviour. :data:`SPEED_ONLY` settings are not
    compared; nor is a field the record has and the request lacks (removed since).
    """
    rc = json.loads((stage_dir / "run_config.json").read_text(encoding="utf-8"))
    out = []
    for key, want in settings.items():
        if key in SPEED_ONLY:
            continue
        if key == "stage":
            if rc.get("command") != f"distill-{want}":
                out.append(f"command: {rc.get('command')} -> distill-{want}")
            continue
        name = _RECORDED_AS.get(key, key)
        got, plain = rc.get(name), _as_recorded(want)
        defaults = _field_defaults(want)
        if defaults and isinstance(got, dict):  # a settings dataclass: field by field
            for k, v in plain.items():
                had = got[k] if k in got else defaults.get(k, _MISSING)
                if had != v:
                    out.append(f"{name}.{k}: {got.get(k, '(not recorded)')} -> {v}")
        elif got in _EMPTY and plain in _EMPTY:
            continue  # not recorded, None, False or empty: the same "nothing"
        elif got != plain:
            out.append(f"{name}: {got if name in rc else '(not recorded)'} -> {plain}")
    return out


def finetuned_for(teacher: str, num_labels: int) -> bool:
    """``teacher`` is a saved classifier with ``num_labels`` outputs (read from its config.json)."""
    cfg_path = Path(teacher) / "config.json"
    if not cfg_path.is_file():
        return False
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    heads = [a for a in cfg.get("architectures") or [] if a.endswith("ForSequenceClassification")]
    # transformers writes id2label only when it differs from its default of 2 labels
    n = len(cfg["id2label"]) if cfg.get("id2label") else cfg.get("num_labels", 2)
    return bool(heads) and n == num_labels


def general_texts(splits, data: pipeline.DataArgs) -> list[str]:
    """Stage 1's default text: the training texts without labels (pairs joined by a space), plus
    the corpus's plot synopses when the data is the embedded Rotten Tomatoes set."""
    from spikeformers.data import training_texts

    texts = training_texts(splits)
    if data.source() == "default":
        from spikeformers.data import rotten_tomatoes_plots

        texts += rotten_tomatoes_plots()
    return texts


def _core(m: dict) -> dict:
    return {k: m[k] for k in CORE_METRICS if k in m}


class StageRunner:
    """The stages of a recipe, each run into a folder under ``out`` (or skipped when resuming)."""

    def __init__(self, recipe: Recipe, out: Path, data: pipeline.DataArgs, opts: RunOptions):
        self.recipe, self.out, self.data, self.opts = recipe, out, data, opts
        self.check_only = False
        """Verify the finished stages against the recipe and read their metrics; train nothing,
        write nothing (a finished run being resumed)."""
        self.common = dict(device=opts.device, overwrite=True, show_progress=opts.show_progress)
        if opts.report_to:
            self.common["report_to"] = list(opts.report_to)
        self.checkpointing = (
            pipeline.CheckpointArgs(save_every=opts.save_every, resume=opts.resume)
            if opts.resume or opts.save_every
            else None
        )

    def train(self, stage: str) -> TrainConfig:
        cfg = self.recipe.train_config(stage, self.opts.seed)
        if self.opts.max_steps:
            cfg = dataclasses.replace(cfg, max_steps=self.opts.max_steps, evals_per_epoch=1)
        return cfg

    def stage(self, name: str, fn: Callable[..., dict], **kwargs) -> dict:
        """Run one stage into ``OUT/name``, or read its metrics when resuming a finished one."""
        stage_dir = self.out / name
        if self.check_only and not is_finished(stage_dir):
            raise RunDirError(f"{stage_dir}: not a finished stage, but {self.out} has a summary")
        if self.opts.resume and (stage_dir / "run_config.json").is_file():
            diff = stage_mismatches(stage_dir, kwargs)
            if diff:  # resuming it would reuse (or continue) a run of other settings
                raise RunDirError(
                    f"{stage_dir} holds a run with other settings than this stage's, so it is "
                    f"not resumed ({'; '.join(diff)}); move it away or run into another folder"
                )
        if self.opts.resume and is_finished(stage_dir):
            logger.info("%s: finished earlier, skipped (--resume)", stage_dir)
            return json.loads((stage_dir / "metrics.json").read_text(encoding="utf-8"))
        return fn(out_dir=stage_dir, checkpointing=self.checkpointing, **kwargs, **self.common)

    def teacher(self, splits, name: str = "teacher") -> tuple[Path, dict]:
        """The fine-tuned teacher's folder and its fit metrics (fine-tuned into ``OUT/name``
        unless the given teacher already is one for this data)."""
        src = self.opts.teacher or self.recipe.teacher
        given = self.opts.finetuned_teacher
        if given and not finetuned_for(given, splits.task.num_labels):
            raise ValueError(
                f"{given}: not a teacher fine-tuned for {splits.task.name} (no classification "
                f"head with {splits.task.num_labels} outputs in its config.json)"
            )
        src = given or src
        if finetuned_for(src, splits.task.num_labels):
            logger.info("teacher %s: already fine-tuned for %s, used as is", src, splits.task.name)
            m = (
                json.loads((Path(src) / "metrics.json").read_text(encoding="utf-8"))
                if (Path(src) / "metrics.json").is_file()
                else {}
            )
            return Path(src), m
        m = self.stage(
            name,
            pipeline.finetune_teacher,
            data=self.data,
            teacher=src,
            train=self.train("teacher"),
        )
        return self.out / name, m

    def general(self, splits, name: str = "stage1") -> dict:
        """Stage 1 into ``OUT/name``: a fresh student aligned to the pre-trained teacher, on the
        recipe's text sources in order (``train`` is written to ``OUT/unlabelled.txt``)."""
        r = self.recipe
        files = [
            self._train_text_file(splits) if s == TRAIN_TEXTS else s for s in r.general_sources
        ]
        return self.stage(
            name,
            pipeline.distill,
            stage="general",
            model=r.variant,
            teacher=self.opts.teacher or r.teacher,
            data=self.data,
            unlabelled_file=files[0] if len(files) == 1 else files,
            distill_config=DistillConfig.for_stage("general", **r.general_distill),
            train=self.train("general"),
            model_overrides=r.overrides,
            cache_teacher=r.cache_teacher,
            split_long_texts=[s for s in r.general_sources if s != TRAIN_TEXTS]
            if r.split_long_texts
            else False,
        )

    def _train_text_file(self, splits) -> str:
        """``OUT/unlabelled.txt``: :func:`general_texts`, at most ``max_general_texts``."""
        texts = general_texts(splits, self.data)
        if self.opts.max_general_texts:
            texts = texts[: self.opts.max_general_texts]
        text_file = self.out / "unlabelled.txt"
        if self.check_only:  # a finished run's file, as recorded
            return str(text_file)
        self.out.mkdir(parents=True, exist_ok=True)
        text_file.write_text(
            "\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8"
        )
        return str(text_file)

    def task(self, teacher_dir: Path, stage1_dir: Path, name: str = "student") -> dict:
        """The task steps in order from ``stage1_dir``; the last writes ``OUT/name``, earlier
        ones ``OUT/name-step<i>``. Returns the last step's metrics."""
        r = self.recipe
        model, metrics = str(stage1_dir), {}
        for i, extra in enumerate(r.task_steps, 1):
            step = name if i == len(r.task_steps) else f"{name}-step{i}"
            metrics = self.stage(
                step,
                pipeline.distill,
                stage="task",
                model=model,
                distill_config=DistillConfig.for_stage("task", **extra),
                train=self.train("task"),
                teacher=str(teacher_dir),
                data=self.data,
                freeze_embeddings=r.freeze_embeddings,
                cache_teacher=r.cache_teacher,
            )
            model = str(self.out / step)
        return metrics

    def direct(self) -> dict:
        r = self.recipe
        return self.stage(
            "direct",
            pipeline.train_direct,
            model=r.variant,
            tokenizer=self.opts.teacher or r.teacher,
            data=self.data,
            train=self.train("direct"),
            model_overrides=r.overrides,
        )

    def energy(self, model: str, teacher_dir: Path) -> dict:
        """Per-text energy of ``OUT/model`` and the teacher on the first test texts (45 nm);
        writes ``OUT/model/energy.json`` and refreshes the model card with it."""
        from spikeformers.cards import refresh_card
        from spikeformers.workflows.energy import energy_of_run

        n = self.opts.energy_samples or self.recipe.energy_samples
        report, payload = energy_of_run(
            self.out / model,
            self.data,
            split="test",
            teacher_dir=teacher_dir,
            max_samples=n,
            device=self.opts.device,
        )
        write_json(self.out / model / "energy.json", payload)
        refresh_card(self.out / model)
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

    def report(self, dirs: list[Path]) -> str | None:
        """``OUT/report``; returns why there is none (matplotlib missing) or ``None``."""
        from spikeformers.data.examples import MissingDependencyError
        from spikeformers.report import write_report

        try:
            write_report(dirs, self.out / "report")
        except MissingDependencyError as e:
            logger.warning("no report: %s", e)
            return str(e)
        return None


def run_recipe(
    recipe: Recipe,
    out_dir: str | Path,
    data: pipeline.DataArgs,
    opts: RunOptions = RunOptions(),
    *,
    config: dict | None = None,
    teacher_label: str | None = None,
) -> dict:
    """Run ``recipe`` on ``data`` into ``out_dir``; returns the summary (also ``summary.json``).

    ``config`` replaces the summary's ``config`` entry (default: recipe, options and data);
    ``teacher_label`` how the summary names the teacher (default: the folder or id).

    Raises:
        RunDirError: ``out_dir`` holds an earlier run and neither ``resume`` nor ``overwrite``.
    """
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not (opts.resume or opts.overwrite):
        raise pipeline.RunDirError(
            f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it"
        )
    run = StageRunner(recipe, out, data, opts)
    direct = recipe.direct if opts.direct is None else opts.direct
    splits = pipeline.load_data(data)
    if (out / "summary.json").is_file() and opts.resume:
        run.check_only = True  # every stage's record must match this recipe: nothing trains
        _stages(run, splits, direct)
        logger.info("%s: finished earlier (summary.json); nothing to resume", out)
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher_dir, teacher_fit, stage1_fit, student_fit, direct_fit = _stages(run, splits, direct)

    logger.info("scoring the test split once")
    models = {"teacher": teacher_dir, "student": out / "student"}
    if direct:
        models["direct"] = out / "direct"
    test = {
        k: pipeline.evaluate_model(model_dir=d, data=data, split="test", device=opts.device)
        for k, d in models.items()
    }
    write_json(out / "test_metrics.json", test)
    energy = run.energy("student", teacher_dir)
    src = opts.teacher or recipe.teacher
    summary = {
        "task": splits.task.name,
        "split": "test",
        "sizes": splits.sizes(),
        "teacher": {
            "model": teacher_label or TEACHER_LABELS.get(src, src),
            **_core(test["teacher"]),
        },
        "student": {
            "model": recipe.variant,
            "overrides": recipe.overrides,
            **_core(test["student"]),
            "firing_rate": test["student"].get("firing_rate"),
        },
        "energy": energy,
        "stage1": {k: stage1_fit[k] for k in STAGE1_COUNTS if k in stage1_fit},
        "validation": {
            "teacher": teacher_fit.get("validation"),
            "student": student_fit.get("validation"),
        },
    }
    if direct:
        summary["direct"] = {
            "model": recipe.variant,
            **_core(test["direct"]),
            "firing_rate": test["direct"].get("firing_rate"),
        }
        summary["direct_energy"] = run.energy("direct", teacher_dir)
        summary["validation"]["direct"] = (direct_fit or {}).get("validation")
    if opts.report:
        why = run.report([d for d in models.values()])
        summary["report"] = None if why else str(out / "report" / "report.md")
        if why:
            summary["report_missing"] = why
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["config"] = config or {
        "recipe": recipe.to_dict(),
        "options": dataclasses.asdict(opts),
        "data": dataclasses.asdict(data),
    }
    write_json(out / "summary.json", summary)
    return summary


def _stages(run: StageRunner, splits, direct: bool) -> tuple[Path, dict, dict, dict, dict | None]:
    """Teacher, stage 1, the task steps and (``direct``) the twin, in order: ``(teacher_dir,
    teacher_fit, stage1_fit, student_fit, direct_fit)``, the fits being each stage's metrics."""
    logger.info("teacher")
    teacher_dir, teacher_fit = run.teacher(splits)
    logger.info("stage 1: general distillation from the pre-trained teacher")
    stage1_fit = run.general(splits)
    logger.info("stage 2: task distillation from the fine-tuned teacher")
    student_fit = run.task(teacher_dir, run.out / "stage1")
    direct_fit = run.direct() if direct else None
    return teacher_dir, teacher_fit, stage1_fit, student_fit, direct_fit


def format_summary(s: dict, title: str = "spikeformers") -> str:
    """A small fixed-width table of a run summary (the task's primary metric and accuracy)."""
    labels = {"accuracy": "accuracy", "f1": "F1", "pearson": "Pearson", "spearman": "Spearman"}
    keys = [k for k in labels if k in s["student"]][:2]
    rows = [("model", *(labels[k] for k in keys), "firing rate")]
    for role in ("teacher", "student", "direct"):
        m = s.get(role)
        if not m:
            continue
        rate = m.get("firing_rate")
        rows.append(
            (
                f"{role} ({m['model']})",
                *(f"{m.get(k, float('nan')):.4f}" for k in keys),
                "-" if rate is None else f"{rate:.4f}",
            )
        )
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    head = (
        f"\n{title}: {s['task']} ({s['split']} split, "
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
