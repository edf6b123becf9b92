"""Closing the distillation gap (issue 16): each lever measured on VALIDATION, over seeds.

A lever is a change to a family's packaged recipe (:data:`LEVERS`): more or other stage-1 text, a
KL temperature, attention-map terms, T, depth, a stronger teacher, a neuron knob. A run is one
dataset x family x lever x seed, on the benchmark suite's data and budget (``benchmarks/suite.py``:
training sets cut to a seeded 4,000 examples, 64 tokens), so the ``base`` lever is exactly the
suite's cell:

- the fine-tuned teacher is the suite's (``SUITE_WORK/<dataset>/teacher_s<seed>``), trained there
  if missing; a lever with another teacher fine-tunes its own under ``WORK/<dataset>/``;
- ``base`` runs in the suite's own run folder (``SUITE_WORK/<dataset>/<family>_s<seed>``), so its
  stages are shared with the suite's cell, whichever runs first;
- stage 1 is shared by every lever whose stage-1 settings agree (a lever that changes only the
  task stage reuses the base stage 1);
- the student is selected on validation; energy is priced on the first validation texts (batch
  1, unpadded). **The test split is never read here**: the suite scores test once, for the
  recipes that are the defaults; a lever that wins on validation becomes the default and the
  suite's rows are rerun.

One JSON per run: ``benchmarks/results/levers/<dataset>/<family>-<lever>_s<seed>.json``; a run
whose JSON exists is skipped (``--commit`` commits each as it lands), so the table fills over
sessions. ``table`` prints the lever-by-lever Markdown table (docs/RESULTS.md's generated block
``levers``).

    python benchmarks/levers.py run --runs mr:spikebert:wiki:0 sst2:spikebert:wiki:0 --commit
    python benchmarks/levers.py list
    python benchmarks/levers.py table
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402
from common import RESULTS, machine  # noqa: E402

OUT = RESULTS / "levers"
WIKI = ["{DATA}/unlabelled/wikitext-2.valid.txt", "{DATA}/unlabelled/wikitext-2.test.txt"]
TRAIN_ALL = "{TRAIN_ALL}"
"""A stage-1 source: every training text of the dataset, labels dropped (the budget's cut to
4,000 labelled examples leaves the rest unused; written to ``WORK/<dataset>/train_all.txt``)."""

logger = logging.getLogger("levers")

# name -> about (what changes), families it applies to (None: all), patch: merged into the
# recipe's YAML form (dicts merge, other values replace), each_step: merged into every task step.
LEVERS: dict[str, dict] = {
    "base": {"about": "the packaged recipe (the suite's cell)"},
    "wiki": {
        "about": "stage 1 also on WikiText-2 valid+test (4,026 paragraphs, split into pieces "
        "that fit max_length: --split-long-texts)",
        "patch": {"general": {"text": ["train", *WIKI], "split_long_texts": True}},
    },
    "pool": {
        "about": "stage 1 on every training text of the set (not only the 4,000 labelled) and "
        "WikiText-2 valid+test (file sources split to fit max_length)",
        "patch": {"general": {"text": [TRAIN_ALL, *WIKI], "split_long_texts": True}},
    },
    "stage1-3ep": {
        "about": "stage 1 for 3 epochs (was 1)",
        "patch": {"general": {"train": {"epochs": 3.0}}},
    },
    "kl-t2": {"about": "KL temperature 2 in the task stage", "each_step": {"temperature": 2.0}},
    "attn": {
        "about": "attention-map term (w_attn 1) in both stages",
        "families": ["spikebert"],
        "patch": {"general": {"distill": {"w_attn": 1.0}}},
        "each_step": {"w_attn": 1.0},
    },
    "T2": {"about": "T = 2 time steps (was 4)", "families": ["spikebert"],
           "patch": {"student": {"overrides": {"time_steps": 2}}}},
    "T8": {"about": "T = 8 time steps (was 4)", "families": ["spikebert"],
           "patch": {"student": {"overrides": {"time_steps": 8}}}},
    "layers4": {"about": "4 layers (was 2)", "families": ["spikebert", "snnbert"],
                "patch": {"student": {"overrides": {"num_layers": 4}}}},
    "deep-narrow": {"about": "4 layers of width 256 (was 2 of 384: about the same synaptic "
                    "operations; the word embeddings then start random, not the teacher's)",
                    "families": ["spikebert", "snnbert"],
                    "patch": {"student": {"overrides": {"num_layers": 4, "hidden_size": 256,
                                                        "num_heads": 8}}}},
    "mpnet": {
        "about": "teacher all-mpnet-base-v2 (12 x 768) in both stages",
        "patch": {"teacher": {"model": "mpnet"}},
    },
    "alpha4": {"about": "surrogate sharpness 4 (was 2)", "families": ["spikebert", "snnbert"],
               "patch": {"student": {"overrides": {"surrogate_alpha": 4.0}}}},
    "T6": {"about": "T = 6 simulation steps (was 8: energy scales with T)",
           "families": ["spikingbert"], "patch": {"student": {"overrides": {"time_steps": 6}}}},
    "feedback": {"about": "feedback connections on", "families": ["spikingbert"],
                 "patch": {"student": {"overrides": {"feedback": True}}}},
    "width384": {"about": "width 384 (was 192)", "families": ["spikingbert"],
                 "patch": {"student": {"overrides": {"hidden_size": 384}}}},
    "kernel16": {"about": "BPSN kernel length 16 (was 8)", "families": ["snnbert"],
                 "patch": {"student": {"overrides": {"kernel_size": 16}}}},
    "passes": {"about": "BPSN reset passes (the paper's all-or-none neuron, was graded)",
               "families": ["snnbert"],
               "patch": {"student": {"overrides": {"reset_mode": "passes"}}}},
}  # fmt: skip


def merge(base: dict, patch: dict) -> dict:
    """``base`` with ``patch`` merged in: nested dicts merge key by key, other values replace."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def lever_recipe(family: str, lever: str, fill: dict[str, str] | None = None):
    """The packaged recipe of ``family`` with ``lever`` applied, validated by the recipe schema;
    ``fill`` replaces placeholders (``{DATA}``, ``{TRAIN_ALL}``) in stage-1 text sources.

    Raises:
        ValueError: a lever that does not apply to ``family``.
    """
    from spikeformers.recipes import load_recipe, parse_recipe

    spec = LEVERS[lever]
    if spec.get("families") and family not in spec["families"]:
        raise ValueError(f"lever {lever!r} applies to {spec['families']}, not {family!r}")
    raw = merge(load_recipe(family).to_dict(), spec.get("patch", {}))
    raw["task"]["steps"] = [{**s, **spec.get("each_step", {})} for s in raw["task"]["steps"]]
    text = raw["general"]["text"]
    for key, value in (fill or {}).items():
        text = [t.replace(key, value) for t in text] if isinstance(text, list) else text
    raw["general"]["text"] = text
    raw.pop("source", None)
    return parse_recipe(raw, f"{family} recipe + lever {lever}")


def stage1_key(recipe, seed: int) -> str:
    """What stage 1 depends on: the student, the pre-trained teacher, its text and settings."""
    parts = [
        recipe.variant,
        recipe.overrides,
        recipe.teacher,
        recipe.general_sources,
        recipe.general_distill,
        recipe.general_train,
        seed,
    ]
    if recipe.split_long_texts:  # appended only when on: earlier keys (and folders) still match
        parts.append("split_long_texts")
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def result_path(results: Path, dataset: str, family: str, lever: str, seed: int) -> Path:
    return results / dataset / f"{family}-{lever}_s{seed}.json"


def parse_run(spec: str) -> tuple[str, str, str, int]:
    """``dataset:family:lever:seed`` (checked against the suite's sets and :data:`LEVERS`)."""
    parts = spec.split(":")
    if len(parts) != 4 or not parts[3].isdigit():
        raise ValueError(f"--runs {spec!r}: expected dataset:family:lever:seed")
    ds, family, lever, seed = parts[0], parts[1], parts[2], int(parts[3])
    if ds not in suite.DATASETS:
        raise ValueError(f"--runs {spec!r}: unknown dataset {ds!r} (known: {list(suite.DATASETS)})")
    if lever not in LEVERS:
        raise ValueError(f"--runs {spec!r}: unknown lever {lever!r} (known: {list(LEVERS)})")
    lever_recipe(family, lever)  # a lever that does not apply to the family fails here
    return ds, family, lever, seed


def _train_all(data, work: Path) -> str:
    """``WORK/train_all.txt``: every training text of ``data`` (no cut), one a line."""
    from spikeformers.data import training_texts
    from spikeformers.pipeline import load_data

    path = work / "train_all.txt"
    if not path.is_file():
        texts = training_texts(load_data(dataclasses.replace(data, max_train_samples=None)))
        work.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
        tmp.replace(path)
    return str(path)


def _metrics(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "metrics.json").read_text(encoding="utf-8"))


def run_one(
    ds_name: str,
    family: str,
    lever: str,
    seed: int,
    *,
    work: Path,
    suite_work: Path,
    results: Path,
    data_root: Path,
    max_steps: int | None = None,
    datasets: dict | None = None,
    budget=None,
) -> Path | None:
    """Train one run (stages reused where they agree) and write its validation record."""
    from spikeformers.pipeline import load_data
    from spikeformers.recipes.runner import STAGE1_COUNTS, RunOptions, StageRunner
    from spikeformers.workflows.energy import energy_of_run

    out = result_path(results, ds_name, family, lever, seed)
    if out.is_file():
        logger.info("%s: done, skipped", out.name)
        return None
    ds = (datasets or suite.DATASETS)[ds_name]
    budget = budget or suite.BUDGETS["30min"]
    data = suite.data_args(ds, budget, data_root, suite_work, seed)
    fill = {"{DATA}": str(data_root)}
    if TRAIN_ALL in str(LEVERS[lever].get("patch", {})):
        fill[TRAIN_ALL] = _train_all(data, work / ds_name)
    recipe = lever_recipe(family, lever, fill)
    base = lever_recipe(family, "base")
    opts = RunOptions(
        seed=seed, show_progress=False, resume=True, max_steps=max_steps, report=False
    )
    splits = load_data(data)
    t0 = time.perf_counter()
    if recipe.teacher == base.teacher:  # the suite's teacher folder
        teacher_dir, teacher_fit = StageRunner(base, suite_work / ds_name, data, opts).teacher(
            splits, name=f"teacher_s{seed}"
        )
    else:
        teacher_dir, teacher_fit = StageRunner(recipe, work / ds_name, data, opts).teacher(
            splits, name=f"teacher-{recipe.teacher}_s{seed}"
        )
    teacher_seconds = time.perf_counter() - t0
    opts = dataclasses.replace(opts, finetuned_teacher=str(teacher_dir))
    base_dir = suite_work / ds_name / f"{family}_s{seed}"
    run_dir = base_dir if lever == "base" else work / ds_name / f"{family}-{lever}_s{seed}"
    if stage1_key(recipe, seed) == stage1_key(base, seed):
        s1_runner, s1_dir = StageRunner(base, base_dir, data, opts), base_dir / "stage1"
    else:
        s1_out = work / ds_name / f"stage1-{stage1_key(recipe, seed)}"
        s1_runner, s1_dir = StageRunner(recipe, s1_out, data, opts), s1_out / "stage1"
    stage1 = s1_runner.general(splits)
    task = StageRunner(recipe, run_dir, data, opts).task(teacher_dir, s1_dir)
    report, _ = energy_of_run(
        run_dir / "student",
        data,
        split="validation",
        teacher_dir=teacher_dir,
        max_samples=recipe.energy_samples,
    )
    val = task["validation"]
    rec = {
        "dataset": ds_name,
        "family": family,
        "lever": lever,
        "about": LEVERS[lever]["about"],
        "seed": seed,
        "metric": ds.metric,
        "validation": {k: val[k] for k in (ds.metric, "accuracy", "firing_rate") if k in val},
        "teacher": {
            "name": recipe.teacher,
            "dir": str(teacher_dir),
            "validation": teacher_fit.get("validation"),
        },
        "energy_validation": {
            "samples": report.num_samples,
            "ratio_paper": report.ratio_paper,
            "ratio_full": report.ratio_full,
        },
        "stage1": {k: stage1[k] for k in STAGE1_COUNTS if k in stage1},
        "seconds": {
            "teacher": round(teacher_seconds, 1) if teacher_seconds > 5 else None,
            "stage1": stage1.get("seconds"),
            "task": [_metrics(run_dir / d).get("seconds") for d in _task_dirs(recipe)],
        },
        "config": suite.run_config(recipe, budget, data, max_steps),
        "run_dir": str(run_dir),
        "machine": machine(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2, default=str) + "\n")
    return out


def _task_dirs(recipe) -> list[str]:
    n = len(recipe.task_steps)
    return [f"student-step{i}" for i in range(1, n)] + ["student"]


# -- the table ---------------------------------------------------------------------------------


def load_records(results: Path = OUT) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*/*_s*.json"))]


def _score(rec: dict) -> float:
    return 100.0 * rec["validation"][rec["metric"]]


def _teacher_score(rec: dict) -> float | None:
    v = rec["teacher"].get("validation") or {}
    return 100.0 * v[rec["metric"]] if rec["metric"] in v else None


def _ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    m, sd = suite.mean_sd(xs)
    return f"{m:.2f}" if sd is None else f"{m:.2f} +- {sd:.2f} (n={len(xs)})"


def table_rows(records: list[dict]) -> list[dict]:
    """Per family x lever: validation scores per dataset over seeds, the change against ``base``
    on the same dataset and seed (paired), the gap to the teacher, energy, stage-1 tokens seen,
    wall seconds (stages summed, teacher excluded)."""
    by = {(r["dataset"], r["family"], r["lever"], r["seed"]): r for r in records}
    datasets = [d for d in suite.DATASETS if any(r["dataset"] == d for r in records)]
    rows = []
    for family, lever in sorted(
        {(r["family"], r["lever"]) for r in records},
        key=lambda fl: (fl[0], list(LEVERS).index(fl[1])),
    ):
        mine = [r for r in records if (r["family"], r["lever"]) == (family, lever)]
        scores = {d: [_score(r) for r in mine if r["dataset"] == d] for d in datasets}
        deltas = [
            _score(r) - _score(by[k])
            for r in mine
            if (k := (r["dataset"], family, "base", r["seed"])) in by and lever != "base"
        ]
        gaps = [t - _score(r) for r in mine if (t := _teacher_score(r)) is not None]
        rows.append(
            {
                "family": family,
                "lever": lever,
                "scores": scores,
                "delta": deltas,
                "gap": gaps,
                "energy": [r["energy_validation"]["ratio_paper"] for r in mine],
                "tokens_seen": [r["stage1"].get("tokens_seen") for r in mine],
                "seconds": [
                    (r["seconds"]["stage1"] or 0) + sum(s or 0 for s in r["seconds"]["task"])
                    for r in mine
                ],
            }
        )
    return rows


def markdown(records: list[dict]) -> str:
    datasets = [d for d in suite.DATASETS if any(r["dataset"] == d for r in records)]
    head = [f"{suite.DATASETS[d].title} val" for d in datasets]
    out = [
        "| family | lever | " + " | ".join(head) + " | change vs base (paired) | gap to teacher "
        "(val) | energy/teacher (paper) | stage-1 tokens seen | stage 1 + 2 s |",
        "|---" * (len(head) + 7) + "|",
    ]
    for row in table_rows(records):
        cells = [_ms(row["scores"][d]) for d in datasets]
        delta = _ms(row["delta"]) if row["lever"] != "base" else "-"
        energy = statistics.mean(row["energy"])
        tokens = [t for t in row["tokens_seen"] if t]
        out.append(
            f"| {row['family']} | {row['lever']} | " + " | ".join(cells) + f" | {delta} | "
            f"{_ms(row['gap'])} | {energy:.1%} | "
            f"{statistics.mean(tokens) / 1e3:.0f}k | {statistics.mean(row['seconds']):.0f} |"
        )
    about = "; ".join(
        f"`{k}`: {LEVERS[k]['about']}" for k in LEVERS if any(r["lever"] == k for r in records)
    )
    out += [
        "",
        f"Levers: {about}. Scores: validation (accuracy %; mean +- sample sd over seeds, n "
        "seeds); change vs base: the lever minus `base` on the same dataset and seed, over all "
        "pairs (n pairs); gap: the teacher's validation score minus the student's, over all the "
        "row's runs (n runs, datasets pooled). Energy on the first 100 "
        "validation texts (45 nm, batch 1). Seconds: stage 1 + stage 2 as measured (shared "
        "machine: compare within a column only roughly). Gap, energy, tokens and seconds are "
        "means over the row's runs with datasets pooled, so between rows that cover different "
        "datasets only the paired column compares like with like. The test split is not read.",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the missing runs")
    r.add_argument("--runs", nargs="+", required=True, help="dataset:family:lever:seed ...")
    r.add_argument("--work", type=Path, default=Path("runs/levers"))
    r.add_argument("--suite-work", type=Path, default=Path("runs/suite"))
    r.add_argument("--results", type=Path, default=OUT)
    r.add_argument("--data-root", type=Path, default=suite.DATA)
    r.add_argument("--max-steps", type=int, help="smoke test only (needs --results elsewhere)")
    r.add_argument("--commit", action="store_true", help="git-commit each result as it lands")
    sub.add_parser("list", help="the levers and the families they apply to")
    t = sub.add_parser("table", help="print the Markdown table")
    t.add_argument("--results", type=Path, default=OUT)
    a = p.parse_args(argv)
    if a.cmd == "list":
        for k, v in LEVERS.items():
            print(f"{k:12s} {','.join(v.get('families') or ['all']):24s} {v['about']}")
        return 0
    if a.cmd == "table":
        print(markdown(load_records(a.results)))
        return 0
    if a.max_steps and a.results.resolve() == OUT.resolve():
        p.error("--max-steps is a smoke test: pass --results DIR outside benchmarks/results/levers")
    try:
        runs = [parse_run(s) for s in a.runs]
    except ValueError as e:
        p.error(str(e))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for ds, family, lever, seed in runs:
        path = run_one(
            ds,
            family,
            lever,
            seed,
            work=a.work,
            suite_work=a.suite_work,
            results=a.results,
            data_root=a.data_root,
            max_steps=a.max_steps,
        )
        if path:
            print(path)
            if a.commit:
                git = ["git", "-C", str(path.parent)]
                subprocess.run([*git, "add", path.name], check=True)
                msg = f"levers: {ds} {family} {lever} seed {seed} (validation)"
                subprocess.run([*git, "commit", "-q", "-m", msg, "--", path.name], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
