"""Choose the quickstart's recipe on VALIDATION only: candidates x seeds, resumable.

Each run is the quickstart's pipeline (:func:`spikeformers.quickstart.teacher_stage`,
``general_stage``, ``task_stage``: teacher fine-tuning, stage 1, stage 2) for one candidate (a
dict of :class:`~spikeformers.quickstart.QuickstartConfig` fields, student config overrides and
DistillConfig options) and one seed. It records the validation accuracy of teacher and student
(best over the model-selection passes, and the last pass) and the wall time of each stage, read
from the runs' ``train_log.jsonl`` (validation records only). The test split is never read here:
the pipeline still scores it at the end of each training command, but this script drops every
``test`` entry of what those commands return and never opens their ``metrics.json``.

Reuse: the teacher depends only on the seed and the teacher settings, stage 1 only on the seed,
the student and the stage-1 settings; both are trained once and shared by the candidates that
agree on them (``<work-dir>/teacher-*``, ``<work-dir>/stage1-*``, each with a ``sweep.json`` of
its validation record and wall time). A finished candidate x seed has
``benchmarks/results/quickstart_recipes/<candidate>-seed<S>.json`` and is skipped; with
``--commit`` each new file is committed as it lands.

The chosen candidate's test score: ``--final CANDIDATE --seeds 0 1 2`` (once, after the choice)
finishes each seed's quickstart from the sweep's own stages: their folders are copied into
``<work-dir>/final-<candidate>-seed<S>/{teacher,stage1,student}`` and the quickstart's recipe
runs there with ``resume`` (every stage is found finished), so only the quickstart's last step
runs: the test split scored once, and energy. The candidate must be the packaged recipe (what
``spikeformers quickstart --seed S`` runs); the result lands in
``benchmarks/results/quickstart_runs/spikebert-seed<S>.json`` (the README's quickstart table)
with the stages' measured seconds summed.

Usage::

    python benchmarks/quickstart_recipes.py --runs baseline:0 baseline:1 cache:0 --commit
    python benchmarks/quickstart_recipes.py --table   # the Markdown table of every result file
    python benchmarks/quickstart_recipes.py --final cache --seeds 0 1 2 --commit
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402

OUT = RESULTS / "quickstart_recipes"

# name -> {"about": text, "config": QuickstartConfig fields, "student": model overrides,
#          "task": DistillConfig options added to every task step}. Each candidate states its
# stage-2 epochs, so that its meaning does not move with the quickstart's default.
CANDIDATES: dict[str, dict] = {
    "baseline": {
        "about": "the recipe of docs/RESULTS.md 'Quickstart' (before this sweep)",
        "config": {"task_epochs": 5.0},
    },
    "cache": {
        "about": "baseline with the teacher's stage-2 outputs cached (same losses; speed only)",
        "config": {"cache_teacher": True, "task_epochs": 5.0},
    },
    "teacher-lr2e-4": {
        "about": "baseline, teacher fine-tuned at lr 2e-4",
        "config": {"teacher_lr": 2e-4, "cache_teacher": True, "task_epochs": 5.0},
    },
    "teacher-2ep": {
        "about": "baseline, teacher fine-tuned 2 epochs",
        "config": {"teacher_epochs": 2.0, "cache_teacher": True, "task_epochs": 5.0},
    },
    "frozen-emb": {
        "about": "cache, word embeddings frozen in stage 2",
        "config": {"cache_teacher": True, "freeze_embeddings": True, "task_epochs": 5.0},
    },
    "combo": {
        "about": "cache, teacher 2 epochs, stage 1 2 epochs, word embeddings frozen in stage 2",
        "config": {
            "cache_teacher": True,
            "teacher_epochs": 2.0,
            "general_epochs": 2.0,
            "freeze_embeddings": True,
            "task_epochs": 5.0,
        },
    },
    "stage2-4ep": {
        "about": "cache, stage 2 for 4 epochs (was 5): the time budget (stop 13: 662 s on the "
        "quiet 2-core AMD EPYC with 5 epochs, stage 2 413 s of it)",
        "config": {"cache_teacher": True, "task_epochs": 4.0},
    },
    "kl-t2": {
        "about": "cache, KL temperature 2",
        "config": {"cache_teacher": True, "task_epochs": 5.0},
        "task": {"temperature": 2.0},
    },
}


def strip_test(obj):
    """``obj`` with every ``test`` entry removed, at any depth (nothing about test survives)."""
    if isinstance(obj, dict):
        return {k: strip_test(v) for k, v in obj.items() if "test" not in str(k).lower()}
    if isinstance(obj, list | tuple):
        return [strip_test(v) for v in obj]
    return obj


def validation_accuracies(run_dir: Path) -> list[float]:
    """The validation accuracies of a run's model-selection passes, in order (train_log)."""
    accs = []
    for line in (run_dir / "train_log.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "validation" in rec:
            accs.append(float(rec["validation"]["accuracy"]))
    return accs


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def resolve(name: str, seed: int, fast: bool = False):
    """(QuickstartConfig, QuickstartStudent) of a candidate and seed."""
    from spikeformers.quickstart import QUICKSTART_STUDENTS, QuickstartConfig

    c = CANDIDATES[name]
    cfg = QuickstartConfig(seed=seed, fast=fast, **c.get("config", {}))
    spec = QUICKSTART_STUDENTS[cfg.family]
    spec = dataclasses.replace(
        spec,
        overrides={**spec.overrides, **c.get("student", {})},
        task_steps=tuple({**t, **c.get("task", {})} for t in spec.task_steps),
    )
    return cfg, spec


def stage_dirs(cfg, spec, work: Path) -> tuple[Path, Path]:
    """The shared teacher and stage-1 folders of a config: the teacher depends only on the seed
    and its own settings, stage 1 on the seed, the student and the stage-1 settings."""
    t_key = _key(cfg.seed, cfg.teacher_epochs, cfg.teacher_lr, cfg.max_length)
    s_key = _key(
        cfg.seed, cfg.general_epochs, cfg.max_length, spec.variant, spec.overrides, spec.general
    )
    return work / f"teacher-{t_key}", work / f"stage1-{s_key}"


def _stage(folder: Path, run) -> dict:
    """Run a shared stage once (``run(folder)``); its record comes from ``sweep.json`` after."""
    record = folder / "sweep.json"
    if record.is_file():
        return {**json.loads(record.read_text()), "reused": True}
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    run(folder)  # what it returns holds test scores: never looked at
    rec = {"seconds": round(time.perf_counter() - t0, 1), "loadavg": [load0, os.getloadavg()[0]]}
    if (folder / "train_log.jsonl").is_file():
        accs = validation_accuracies(folder)
        if accs:
            rec |= {"validation_best": max(accs), "validation_final": accs[-1]}
    record.write_text(json.dumps(rec, indent=2) + "\n")
    return {**rec, "reused": False}


def run_one(name: str, seed: int, work: Path, fast: bool = False) -> dict:
    """Teacher, stage 1 and stage 2 of a candidate and seed; the validation record.

    ``fast``: the quickstart's smoke-test mode (a few steps, a data subset) to check plumbing.
    """
    from spikeformers.pipeline import DataArgs, load_data
    from spikeformers.quickstart import _FAST_DATA, general_stage, task_stage, teacher_stage

    cfg, spec = resolve(name, seed, fast)
    data = DataArgs(max_length=cfg.max_length, **(_FAST_DATA if fast else {}))
    common = dict(overwrite=True, show_progress=False)
    teacher_dir, stage1_dir = stage_dirs(cfg, spec, work)
    student_dir = work / f"student-{name}-seed{seed}"
    teacher = _stage(teacher_dir, lambda d: teacher_stage(d, cfg, data, **common))
    splits = load_data(data)
    stage1 = _stage(stage1_dir, lambda d: general_stage(d, cfg, data, splits, spec, **common))
    stage2 = _stage(
        student_dir,
        lambda d: task_stage(d, cfg, data, spec, teacher_dir, stage1_dir, **common),
    )
    c = CANDIDATES[name]
    return {
        "candidate": name,
        "about": c["about"],
        "definition": {k: v for k, v in c.items() if k != "about"},
        "seed": seed,
        "config": dataclasses.asdict(cfg),
        "student": dataclasses.asdict(spec),
        "teacher": teacher,
        "stage1": stage1,
        "stage2": stage2,
        "seconds": round(teacher["seconds"] + stage1["seconds"] + stage2["seconds"], 1),
        "machine": machine(),
    }


def _mean_sd(xs: list[float], fmt: str = ".4f") -> str:
    if len(xs) < 2:
        return format(xs[0], fmt) if xs else "-"
    return f"{format(statistics.mean(xs), fmt)} +- {format(statistics.stdev(xs), fmt)}"


def markdown(records: list[dict]) -> str:
    """One row per candidate: mean +- sample sd over its seeds of the validation accuracies and
    the measured wall times (teacher, stage 1 and stage 2 together; shared stages count in full
    for every candidate that uses them) with the load average during stage 2."""
    by: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        by.setdefault(r["candidate"], []).append(r)
    lines = [
        "| candidate | seeds | teacher val (best) | student val best | student val final "
        "| min student val best | stage 2 s | teacher + stage 1 + stage 2 s | load avg (stage 2) |",
        "|---" * 9 + "|",
    ]
    for name, rs in by.items():
        best = [r["stage2"]["validation_best"] for r in rs]
        load = [x for r in rs for x in r["stage2"]["loadavg"]]
        lines.append(
            f"| {name} | {','.join(str(r['seed']) for r in rs)} "
            f"| {_mean_sd([r['teacher']['validation_best'] for r in rs])} "
            f"| {_mean_sd(best)} | {_mean_sd([r['stage2']['validation_final'] for r in rs])} "
            f"| {min(best):.4f} | {_mean_sd([r['stage2']['seconds'] for r in rs], '.0f')} "
            f"| {_mean_sd([r['seconds'] for r in rs], '.0f')} | {min(load):.1f}-{max(load):.1f} |"
        )
    return "\n".join(lines)


def load_records(folder: Path = OUT) -> list[dict]:
    """Every result file of the sweep."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def finish(name: str, seed: int, work: Path, fast: bool = False) -> dict:
    """The quickstart's last step (test once, energy) on the sweep's stages of ``name``/``seed``.

    Returns a row of ``benchmarks/quickstart_runs.py``'s format. Raises ``SystemExit`` if the
    candidate is not what ``spikeformers quickstart --seed S`` runs (the packaged recipe).
    """
    import shutil

    from spikeformers.pipeline import DataArgs
    from spikeformers.quickstart import (
        _FAST_DATA,
        QUICKSTART_STUDENTS,
        QuickstartConfig,
        quickstart_recipe,
        run_options,
    )
    from spikeformers.recipes.runner import run_recipe

    cfg, spec = resolve(name, seed, fast)
    if cfg != QuickstartConfig(seed=seed, fast=fast) or spec != QUICKSTART_STUDENTS[cfg.family]:
        raise SystemExit(
            f"--final {name}: not the packaged recipe (src/spikeformers/recipes/"
            f"{cfg.family}.yaml); make it the default first"
        )
    rec = run_one(name, seed, work, fast)  # trains whatever stage is missing
    teacher_dir, stage1_dir = stage_dirs(cfg, spec, work)
    out = work / f"final-{name}-seed{seed}"
    shutil.rmtree(out, ignore_errors=True)
    for src, dst in (
        (teacher_dir, "teacher"),
        (stage1_dir, "stage1"),
        (work / f"student-{name}-seed{seed}", "student"),
    ):
        shutil.copytree(src, out / dst)
    data = DataArgs(max_length=cfg.max_length, **(_FAST_DATA if fast else {}))
    opts = dataclasses.replace(run_options(cfg, show_progress=False), resume=True, overwrite=False)
    load0, t0 = os.getloadavg(), time.perf_counter()
    summary = run_recipe(quickstart_recipe(cfg), out, data, opts, config=dataclasses.asdict(cfg))
    final_s = round(time.perf_counter() - t0, 1)
    summary["seconds"] = round(rec["seconds"] + final_s, 1)
    return {
        "family": cfg.family,
        "seed": seed,
        "summary": summary,
        "fast": fast,
        "assembled_from": {
            "sweep": f"quickstart_recipes {name} seed {seed}",
            "stage_seconds": {k: rec[k]["seconds"] for k in ("teacher", "stage1", "stage2")},
            "stage_loadavg": {k: rec[k].get("loadavg") for k in ("teacher", "stage1", "stage2")},
            "final_step_seconds": final_s,
        },
        "loadavg": [load0, os.getloadavg()],
        "machine": machine(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="*", default=[], metavar="CANDIDATE:SEED")
    p.add_argument("--work-dir", type=Path, default=Path("runs/quickstart_recipes"))
    p.add_argument("--commit", action="store_true", help="git-commit each result as it lands")
    p.add_argument("--table", action="store_true", help="print the table of all results")
    p.add_argument("--results-dir", type=Path, default=OUT, help="one JSON per candidate x seed")
    p.add_argument("--fast", action="store_true", help="smoke test (quickstart --fast stages)")
    p.add_argument("--final", metavar="CANDIDATE", help="score test once for the chosen candidate")
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="seeds of --final")
    p.add_argument(
        "--final-dir", type=Path, default=RESULTS / "quickstart_runs", help="--final results"
    )
    return p.parse_args(argv)


def parse_runs(items: list[str]) -> list[tuple[str, int]]:
    """``["name:seed", ...]`` -> pairs; unknown candidates are refused."""
    pairs = []
    for item in items:
        name, _, seed = item.rpartition(":")
        if name not in CANDIDATES or not seed.isdigit():
            raise SystemExit(
                f"--runs {item!r}: expected CANDIDATE:SEED, CANDIDATE in {list(CANDIDATES)}"
            )
        pairs.append((name, int(seed)))
    return pairs


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    a.results_dir.mkdir(parents=True, exist_ok=True)
    for name, seed in parse_runs(a.runs):
        path = a.results_dir / f"{name}-seed{seed}.json"
        if path.exists():
            print(f"{path.name}: done, skipped", file=sys.stderr)
            continue
        print(f"{name} seed {seed} ...", file=sys.stderr, flush=True)
        rec = strip_test(run_one(name, seed, a.work_dir, a.fast))
        path.write_text(json.dumps(rec, indent=2) + "\n")
        s2 = rec["stage2"]
        print(
            f"  student val best {s2['validation_best']:.4f} final {s2['validation_final']:.4f}, "
            f"teacher val {rec['teacher']['validation_best']:.4f}, {rec['seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if a.commit:
            subprocess.run(["git", "add", str(path)], check=True)
            msg = f"quickstart_recipes: {name} seed {seed} (validation only)"
            subprocess.run(["git", "commit", "-q", "-m", msg, "--", str(path)], check=True)
    if a.final:
        a.final_dir.mkdir(parents=True, exist_ok=True)
        for seed in a.seeds:
            path = a.final_dir / f"spikebert-seed{seed}.json"
            if path.exists():
                print(f"{path.name}: done, skipped", file=sys.stderr)
                continue
            row = finish(a.final, seed, a.work_dir, a.fast)
            path.write_text(json.dumps(row, indent=2, default=str) + "\n")
            print(f"  test: student {row['summary']['student']['accuracy']:.4f}", file=sys.stderr)
            if a.commit:
                subprocess.run(["git", "add", str(path)], check=True)
                msg = f"quickstart: {a.final} seed {seed}, test scored once"
                subprocess.run(["git", "commit", "-q", "-m", msg, "--", str(path)], check=True)
    if a.table:
        print(markdown(load_records(a.results_dir)))


if __name__ == "__main__":
    main()
