"""The papers' tables (issue 15): every family's recipe on the benchmark suite, over seeds.

For each dataset x seed the teacher is fine-tuned once (``WORK/<dataset>/teacher_s<seed>``, reused
after); for each family the recipe runs through :func:`spikeformers.recipes.runner.run_recipe`
(``WORK/<dataset>/<family>_s<seed>``, resumable stage by stage), and one JSON per result lands in
``benchmarks/results/suite/<dataset>/<family>[-direct]_s<seed>.json``. A result whose JSON exists
is skipped, so the table fills over several invocations on different machines (commit each JSON
as it lands). ``table`` writes ``benchmarks/results/suite/TABLE.md`` from the JSON alone.

Models are chosen on validation only; the test split (GLUE: dev, with selection on a seeded split
held out from train) is scored once per run, at the end.

    python benchmarks/suite.py run --datasets sst2 mr --families spikebert --seeds 0 1 2 --direct
    python benchmarks/suite.py table
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402

SUITE_RESULTS = RESULTS / "suite"
_ROOT = Path(__file__).resolve().parents[1]
DATA = next(
    (
        p
        for p in (_ROOT.parent / "shared" / "data", _ROOT.parents[1] / "shared" / "data")
        if p.is_dir()
    ),
    _ROOT.parent / "shared" / "data",
)
"""``../shared/data`` relative to the project root (or to the folder of worktrees holding it)."""

logger = logging.getLogger("suite")


@dataclass(frozen=True)
class Dataset:
    """One benchmark set: where its files are and how it is scored."""

    name: str
    table: str
    """``spikebert`` (SpikeBERT's Table 1) or ``glue`` (SpikingBERT's GLUE dev table)."""
    title: str
    language: str = "en"
    data: dict = field(default_factory=dict)
    """:class:`DataArgs` fields; ``{DATA}`` in a value is the data folder."""
    metric: str = "accuracy"
    """The test metric the table reports (x 100)."""
    headerless: tuple[str, ...] = ()
    """Column names of a TSV without a header row (CoLA): a headed copy is made under WORK."""


def _glue(name: str, **kw) -> dict:
    return {
        "train_file": f"{{DATA}}/glue/{name}/train.tsv",
        "test_file": f"{{DATA}}/glue/{name}/dev.tsv",
        **kw,
    }


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("mr", "spikebert", "MR", data={"task": "mr", "data_dir": "{DATA}"}),
        Dataset("sst2", "spikebert", "SST-2", data={"task": "sst2", "data_dir": "{DATA}"}),
        Dataset("subj", "spikebert", "Subj", data={"task": "subj", "data_dir": "{DATA}"}),
        Dataset("sst5", "spikebert", "SST-5", data={"task": "sst5", "data_dir": "{DATA}"}),
        Dataset(
            "chnsenti", "spikebert", "ChnSenti", "zh", {"task": "chnsenti", "data_dir": "{DATA}"}
        ),
        Dataset("waimai", "spikebert", "Waimai", "zh", {"task": "waimai", "data_dir": "{DATA}"}),
        Dataset("glue-sst2", "glue", "SST-2", data=_glue("SST-2")),
        Dataset(
            "rte",
            "glue",
            "RTE",
            data=_glue("RTE", text_column="sentence1", text_pair_column="sentence2"),
        ),
        Dataset(
            "mrpc",
            "glue",
            "MRPC",
            data=_glue(
                "MRPC",
                text_column="#1 String",
                text_pair_column="#2 String",
                label_column="Quality",
            ),
        ),
        Dataset(
            "stsb",
            "glue",
            "STS-B",
            data=_glue(
                "STS-B", text_column="sentence1", text_pair_column="sentence2", label_column="score"
            ),
            metric="pearson",
        ),
        Dataset(
            "cola",
            "glue",
            "CoLA",
            data=_glue("CoLA"),
            metric="mcc",
            headerless=("source", "label", "mark", "sentence"),
        ),
    )
}

# The papers' numbers (%, test sets for SpikeBERT's Table 1, GLUE dev for SpikingBERT); see
# ../shared/spec/spikebert.md and spikingbert.md. SpikingBERT's MRPC and STS-B are unconfirmed.
PAPER: dict[str, dict[str, float]] = {
    "teacher": {
        "mr": 87.63, "sst2": 92.31, "subj": 95.90, "sst5": 50.41, "chnsenti": 89.48,
        "waimai": 90.27,
    },
    "spikebert": {
        "mr": 80.69, "sst2": 85.39, "subj": 93.00, "sst5": 46.11, "chnsenti": 86.36,
        "waimai": 89.66,
    },
    "spikebert-direct": {
        "mr": 76.38, "sst2": 81.55, "subj": 91.80, "sst5": 42.02, "chnsenti": 85.45,
        "waimai": 86.93,
    },
    "spikingbert": {"glue-sst2": 88.19, "rte": 66.06, "mrpc": 79.17, "stsb": 82.20},
}  # fmt: skip
PAPER_NAMES = {
    "teacher": "fine-tuned BERT-base (paper)",
    "spikebert": "SpikeBERT (paper)",
    "spikebert-direct": "directly-trained Spikformer (paper)",
    "spikingbert": "SpikingBERT, 4 layers (paper; MRPC, STS-B unconfirmed)",
}


@dataclass(frozen=True)
class Budget:
    """What a preset cuts against the papers (stated in the table's header)."""

    name: str
    about: str
    max_train_samples: int | None
    max_length: int
    pair_max_length: int


BUDGETS = {
    "30min": Budget(
        "30min",
        "training sets cut to a seeded 4,000 examples; 64 tokens (pairs 128); the packaged "
        "recipes' 2-layer students (papers: full sets, 6-12 layers / SpikingBERT 4), MiniLM "
        "6x384 teacher (papers: BERT-base), 1 + 1 + 5 epochs",
        4000,
        64,
        128,
    ),
    "full": Budget(
        "full",
        "full training sets; 128 tokens; the packaged recipes' 2-layer students and epochs, "
        "MiniLM teacher (papers: BERT-base)",
        None,
        128,
        128,
    ),
}


def data_args(ds: Dataset, budget: Budget, data_root: Path, work: Path, seed: int = 0):
    """The :class:`DataArgs` of ``ds`` under ``budget`` (``split_seed`` fixed at 0: every seed
    trains on the same split; the training seed changes)."""
    from spikeformers.pipeline import DataArgs

    kw = {
        k: v.replace("{DATA}", str(data_root)) if isinstance(v, str) else v
        for k, v in ds.data.items()
    }
    if ds.headerless:
        kw = {
            k: str(headed_copy(Path(v), ds, work)) if k.endswith("_file") else v
            for k, v in kw.items()
        }
    pair = "text_pair_column" in kw
    return DataArgs(
        **kw,
        max_length=budget.pair_max_length if pair else budget.max_length,
        max_train_samples=budget.max_train_samples,
    )


def headed_copy(path: Path, ds: Dataset, work: Path) -> Path:
    """``path`` with ``ds.headerless`` as a header row, under ``WORK/_data`` (never the repo)."""
    out = work / "_data" / ds.name / path.name
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        body = path.read_bytes()
        out.write_bytes("\t".join(ds.headerless).encode() + b"\n" + body)
    return out


def result_path(results: Path, dataset: str, family: str, seed: int, direct: bool = False) -> Path:
    return results / dataset / f"{family}{'-direct' if direct else ''}_s{seed}.json"


def pending(results: Path, dataset: str, family: str, seed: int, direct: bool) -> bool:
    """Whether the cell still needs running (a missing distilled or, if asked, direct JSON)."""
    paths = [result_path(results, dataset, family, seed)]
    if direct:
        paths.append(result_path(results, dataset, family, seed, direct=True))
    return not all(p.is_file() for p in paths)


def _test(m: dict) -> dict:
    from spikeformers.recipes.runner import CORE_METRICS

    return {k: m[k] for k in (*CORE_METRICS, "firing_rate") if k in m}


def result_records(summary: dict, run_dir: Path, teacher: dict, meta: dict) -> dict[str, dict]:
    """The JSON of the distilled student (``""``) and, when trained, the direct twin."""
    test = json.loads((run_dir / "test_metrics.json").read_text())
    roles = {"": ("student", "energy")}
    if "direct" in summary:
        roles["-direct"] = ("direct", "direct_energy")
    out = {}
    for suffix, (role, energy_key) in roles.items():
        out[suffix] = {
            **meta,
            "model": role,
            "teacher": teacher,
            "validation": summary["validation"].get(role),
            "test": _test(test[role]),
            "firing_rate": test[role].get("firing_rate"),
            "energy": summary[energy_key],
            "wall_seconds": summary["seconds"],
            "machine": machine(),
        }
    return out


def run_config(recipe, budget: Budget, data, max_steps: int | None) -> dict:
    """What a result JSON records of how it was made: recipe, budget, data, step cap."""
    return {
        "recipe": recipe.to_dict(),
        "budget": dataclasses.asdict(budget),
        "data": dataclasses.asdict(data),
        "max_steps": max_steps,
    }


def run_cell(
    ds: Dataset,
    family: str,
    seed: int,
    *,
    budget: Budget,
    work: Path,
    results: Path,
    teacher: str,
    data_root: Path,
    direct: bool,
    max_steps: int | None = None,
    device: str | None = None,
) -> list[Path]:
    """Teacher (reused), the family's recipe, the result JSON(s). Returns the files written."""
    from spikeformers.pipeline import load_data
    from spikeformers.recipes import load_recipe
    from spikeformers.recipes.runner import RunOptions, StageRunner, run_recipe

    if not pending(results, ds.name, family, seed, direct):
        logger.info("%s %s seed %d: done, skipped", ds.name, family, seed)
        return []
    recipe = load_recipe(family)
    data = data_args(ds, budget, data_root, work, seed)
    opts = RunOptions(
        seed=seed,
        teacher=teacher,
        device=device,
        show_progress=False,
        resume=True,
        max_steps=max_steps,
        direct=direct,
    )
    t0 = time.perf_counter()
    stages = StageRunner(recipe, work / ds.name, data, opts)
    teacher_dir, teacher_fit = stages.teacher(load_data(data), name=f"teacher_s{seed}")
    teacher_seconds = round(time.perf_counter() - t0, 1)
    run_dir = work / ds.name / f"{family}_s{seed}"
    summary = run_recipe(
        recipe, run_dir, data, dataclasses.replace(opts, finetuned_teacher=str(teacher_dir))
    )
    meta = {
        "dataset": ds.name,
        "table": ds.table,
        "metric": ds.metric,
        "family": family,
        "seed": seed,
        "config": run_config(recipe, budget, data, max_steps),
        "run_dir": str(run_dir),
    }
    teacher_rec = {
        "name": teacher,
        "dir": str(teacher_dir),
        "validation": teacher_fit.get("validation"),
        "test": summary["teacher"],
        "fine_tune_seconds": teacher_seconds,
    }
    written = []
    for suffix, rec in result_records(summary, run_dir, teacher_rec, meta).items():
        path = result_path(results, ds.name, family + suffix, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec, indent=2, default=str) + "\n")
        written.append(path)
    return written


# -- the table ---------------------------------------------------------------------------------


def mean_sd(xs: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for one value)."""
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def _cell(xs: list[float]) -> str:
    if not xs:
        return "-"
    m, sd = mean_sd(xs)
    return f"{m:.2f}" if sd is None else f"{m:.2f} +- {sd:.2f} (n={len(xs)})"


def load_results(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*/*_s*.json"))]


def _score(rec: dict, part: str = "test") -> float:
    """The dataset's table metric x 100 (the student's, or the teacher's with ``teacher``)."""
    src = rec["teacher"]["test"] if part == "teacher" else rec[part]
    return 100.0 * src[rec["metric"]]


def row_name(rec: dict) -> str:
    """The table row of a result: the family, ``-direct`` for its directly trained twin."""
    return rec["family"] + ("-direct" if rec["model"] == "direct" else "")


def table_rows(records: list[dict], table: str) -> list[dict]:
    """Per row (teacher(s) and each family): per-dataset scores over seeds, average, gap to the
    teacher, energy ratios. The average and gap use the datasets the row has (all when full)."""
    recs = [r for r in records if r["table"] == table]
    names = [d.name for d in DATASETS.values() if d.table == table]
    rows: list[dict] = []
    teachers: dict[str, dict[str, dict[int, float]]] = {}
    for r in recs:
        label = f"teacher: {r['teacher']['name']}"
        teachers.setdefault(label, {}).setdefault(r["dataset"], {})[r["seed"]] = _score(
            r, "teacher"
        )
    teacher_mean: dict[str, float] = {}
    for label, per in teachers.items():
        scores = {d: list(per[d].values()) for d in names if d in per}
        for d, xs in scores.items():
            teacher_mean[d] = statistics.mean(xs)
        rows.append({"row": label, "scores": scores, "energy": None})
    for fam in sorted({row_name(r) for r in recs}):
        fr = [r for r in recs if row_name(r) == fam]
        scores: dict[str, list[float]] = {}
        for r in sorted(fr, key=lambda r: r["seed"]):
            scores.setdefault(r["dataset"], []).append(_score(r))
        ratios = {c: [r["energy"][f"ratio_{c}"] for r in fr] for c in ("paper", "full")}
        rows.append({"row": fam, "scores": scores, "energy": ratios})
    for row in rows:
        means = {d: statistics.mean(xs) for d, xs in row["scores"].items()}
        row["avg"] = statistics.mean(means.values()) if means else None
        row["n_datasets"] = len(means)
        common = [d for d in means if d in teacher_mean]
        row["gap"] = (
            statistics.mean(teacher_mean[d] - means[d] for d in common)
            if common and not row["row"].startswith("teacher")
            else None
        )
    return rows


def markdown(records: list[dict], budgets: set[str] | None = None) -> str:
    """Both tables in the papers' layout, the papers' rows beside."""
    budgets = budgets or {r["config"]["budget"]["name"] for r in records}
    out = ["# Benchmark suite (generated by `python benchmarks/suite.py table`; do not edit)", ""]
    for b in sorted(budgets):
        if b in BUDGETS:
            out += [f"Budget `{b}`: cut against the papers: {BUDGETS[b].about}.", ""]
    smoke = sorted({r["dataset"] for r in records if r["config"].get("max_steps")})
    if smoke:
        out += [f"**Smoke-test results (a few steps; meaningless) present for: {smoke}**", ""]
    for table, title in (
        ("spikebert", "SpikeBERT Table 1 (test accuracy %)"),
        ("glue", "SpikingBERT GLUE (dev as test; accuracy %, STS-B Pearson x100, CoLA MCC x100)"),
    ):
        names = [d.name for d in DATASETS.values() if d.table == table]
        head = [DATASETS[d].title for d in names]
        out += [
            f"## {title}",
            "",
            "| model | " + " | ".join(head) + " | avg | gap to teacher | energy/teacher paper "
            "| energy/teacher full |",
            "|---" * (len(head) + 5) + "|",
        ]
        for row in table_rows(records, table):
            cells = [_cell(row["scores"].get(d, [])) for d in names]
            n = row["n_datasets"]
            avg = "-" if row["avg"] is None else f"{row['avg']:.2f}"
            if row["avg"] is not None and n < len(names):
                avg += f" ({n}/{len(names)} sets)"
            gap = "-" if row["gap"] is None else f"{row['gap']:.2f}"
            e = row["energy"]
            ep = _ratio(e["paper"]) if e else "-"
            ef = _ratio(e["full"]) if e else "-"
            out.append(
                f"| {row['row']} | " + " | ".join(cells) + f" | {avg} | {gap} | {ep} | {ef} |"
            )
        for key, label in PAPER_NAMES.items():
            paper = PAPER[key]
            if not any(d in paper for d in names):
                continue
            vals = [paper.get(d) for d in names]
            avg = statistics.mean(v for v in vals if v is not None)
            cells = ["-" if v is None else f"{v:.2f}" for v in vals]
            out.append(f"| {label} | " + " | ".join(cells) + f" | {avg:.2f} | | | |")
        out.append("")
    out += [
        "Cells: mean +- sample sd over seeds (n seeds). Teacher rows: the fine-tuned teacher of "
        "each "
        "dataset x seed, named as used. avg: mean over the datasets a row has; gap: teacher mean - "
        "row mean over the datasets both have. Energy: student/teacher per text on the test split "
        "(45 nm prices), paper convention and full accounting, mean over the row's runs.",
        "",
    ]
    return "\n".join(out)


def _ratio(xs: list[float]) -> str:
    m, sd = mean_sd(xs)
    return f"{m:.1%}" if sd is None else f"{m:.1%} +- {sd:.1%}"


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the missing cells")
    r.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    r.add_argument("--families", nargs="+", default=["spikebert", "spikingbert", "snnbert"])
    r.add_argument("--seeds", nargs="+", type=int, default=[0])
    r.add_argument("--direct", action="store_true", help="also the directly trained twins")
    r.add_argument("--budget", choices=list(BUDGETS), default="30min")
    r.add_argument("--teacher-en", default="minilm", help="teacher of English sets (minilm)")
    r.add_argument("--teacher-zh", default="minilm", help="teacher of Chinese sets, e.g. m3e-small")
    r.add_argument("--data-root", type=Path, default=DATA)
    r.add_argument("--work", type=Path, default=Path("runs/suite"), help="run folders (runs/suite)")
    r.add_argument("--results", type=Path, default=SUITE_RESULTS)
    r.add_argument("--max-steps", type=int, help="smoke test only (needs --results elsewhere)")
    r.add_argument("--device")
    t = sub.add_parser("table", help="write TABLE.md from the result JSON")
    t.add_argument("--results", type=Path, default=SUITE_RESULTS)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.cmd == "table":
        text = markdown(load_results(a.results))
        (a.results / "TABLE.md").write_text(text)
        print(text)
        return 0
    if a.max_steps and a.results.resolve() == SUITE_RESULTS.resolve():
        p.error("--max-steps is a smoke test: pass --results DIR outside benchmarks/results/suite")
    from spikeformers.recipes import load_recipe

    teacher_settings = {f: load_recipe(f).teacher_train.items() for f in a.families}
    if len({tuple(sorted(v)) for v in teacher_settings.values()}) > 1:
        p.error(f"the families' recipes fine-tune the teacher differently: {teacher_settings}")
    for name in a.datasets:
        ds = DATASETS[name]
        teacher = a.teacher_zh if ds.language == "zh" else a.teacher_en
        for seed in a.seeds:
            for family in a.families:
                written = run_cell(
                    ds,
                    family,
                    seed,
                    budget=BUDGETS[a.budget],
                    work=a.work,
                    results=a.results,
                    teacher=teacher,
                    data_root=a.data_root,
                    direct=a.direct,
                    max_steps=a.max_steps,
                    device=a.device,
                )
                for path in written:
                    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
