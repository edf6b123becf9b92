"""The README's quickstart, repeated: every student family and several seeds, one table.

Each run is exactly ``spikeformers quickstart --family F --seed S --out OUT/F-seedS`` (the
README's command with another family or seed), in a fresh process, one after the other, so the
runs do not compete for the cores. A finished run (its ``summary.json`` exists) is reused with
``--resume``. The seed drives the data split's training-order shuffling, initialisation and
dropout (teacher and student); the train / validation / test split itself is fixed (seed 0), so
every run is scored on the same 487 test snippets.

Usage::

    python benchmarks/quickstart_runs.py --families spikebert snnbert spikingbert --seeds 0
    python benchmarks/quickstart_runs.py --runs spikebert:0 spikebert:1 snnbert:0 --resume

Each finished run lands as ``benchmarks/results/quickstart_runs/<family>-seed<S>.json`` (its
summary, wall time, load average and machine); a run whose file exists is skipped, so the table can
be filled over several sessions (``--commit`` commits each file as it lands). The Markdown table
(stdout, and the README's generated quickstart block via ``benchmarks/docs_tables.py``) is built
from every file in that folder. ``quickstart_runs.json`` (one file for all runs) is the format of
runs recorded before stop 12.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402

OUT = RESULTS / "quickstart_runs"

FAMILIES = ("spikebert", "spikingbert", "snnbert")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=["spikebert"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument(
        "--runs",
        nargs="+",
        metavar="FAMILY:SEED",
        help="explicit runs (instead of every --families x --seeds pair)",
    )
    p.add_argument("--out-dir", type=Path, default=Path("runs/quickstart_runs"))
    p.add_argument("--resume", action="store_true", help="reuse runs that have a summary.json")
    p.add_argument("--fast", action="store_true", help="quickstart --fast (a smoke test)")
    p.add_argument("--results-dir", type=Path, default=OUT, help="one JSON per family x seed")
    p.add_argument("--commit", action="store_true", help="git-commit each result as it lands")
    return p.parse_args(argv)


def runs(a: argparse.Namespace) -> list[tuple[str, int]]:
    """The (family, seed) pairs to run, in order."""
    if not a.runs:
        return [(f, s) for f in a.families for s in a.seeds]
    pairs = []
    for item in a.runs:
        family, _, seed = item.partition(":")
        if family not in FAMILIES or not seed.lstrip("-").isdigit():
            raise SystemExit(f"--runs {item!r}: expected FAMILY:SEED with FAMILY in {FAMILIES}")
        pairs.append((family, int(seed)))
    return pairs


def run_one(family: str, seed: int, out: Path, resume: bool, fast: bool = False) -> dict:
    """One quickstart in a fresh process; its summary plus how it was obtained."""
    summary = out / "summary.json"
    if resume and summary.exists():
        return {"reused": True, **json.loads(summary.read_text())}
    cmd = [sys.executable, "-m", "spikeformers", "quickstart", "--family", family]
    cmd += ["--seed", str(seed), "--out", str(out), "--overwrite", "--no-progress"]
    cmd += ["--fast"] if fast else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return {"reused": False, "wall_s": time.perf_counter() - t0, **json.loads(summary.read_text())}


def _load(row: dict) -> str:
    """`` (load a-b...)``: the 1-minute load average range over the run, when recorded (the
    stages' start/end values of a run assembled from the recipe sweep, else the run's own)."""
    stages = row.get("assembled_from", {}).get("stage_loadavg", {})
    loads = [x for span in stages.values() if span for x in span]
    loads += [triple[0] for triple in row.get("loadavg") or []]  # os.getloadavg() at start, end
    if not loads:
        return ""
    how = ", 1 thread, stages from the recipe sweep" if stages else ""
    return f" (load {min(loads):.1f}-{max(loads):.1f}{how})"


def markdown(rows: list[dict]) -> str:
    """One row per run, then mean and spread per family when it ran with several seeds."""
    lines = [
        "| family | seed | teacher acc | student acc | student F1 | firing rate | "
        "energy vs teacher (paper) | (full) | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, e = r["summary"], r["summary"]["energy"]
        lines.append(
            f"| {r['family']} | {r['seed']} | {s['teacher']['accuracy']:.4f} | "
            f"{s['student']['accuracy']:.4f} | {s['student']['f1']:.4f} | "
            f"{s['student']['firing_rate']:.3f} | {100 * e['ratio_paper']:.1f}% | "
            f"{100 * e['ratio_full']:.1f}% | {s['seconds']:.0f}{_load(r)} |"
        )
    by_family: dict[str, list[float]] = {}
    for r in rows:
        by_family.setdefault(r["family"], []).append(r["summary"]["student"]["accuracy"])
    spread = [(f, a) for f, a in by_family.items() if len(a) > 1]
    if spread:
        lines += [
            "",
            "| family | seeds | student acc mean | sd | min | max |",
            "|---|---|---|---|---|---|",
        ]
        for f, a in spread:
            lines.append(
                f"| {f} | {len(a)} | {statistics.mean(a):.4f} | {statistics.stdev(a):.4f} | "
                f"{min(a):.4f} | {max(a):.4f} |"
            )
    return "\n".join(lines)


def load_rows(folder: Path = OUT) -> list[dict]:
    """Every run recorded in ``folder``, by family then seed."""
    rows = [json.loads(p.read_text()) for p in folder.glob("*-seed*.json")]
    return sorted(rows, key=lambda r: (FAMILIES.index(r["family"]), r["seed"]))


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if (
        a.fast
        and a.results_dir.resolve() == (Path(__file__).parent / "results/quickstart_runs").resolve()
    ):
        raise SystemExit(
            "--fast is a smoke test: pass --results-dir DIR outside benchmarks/results"
        )
    a.results_dir.mkdir(parents=True, exist_ok=True)
    for family, seed in runs(a):
        path = a.results_dir / f"{family}-seed{seed}.json"
        if path.exists():
            print(f"{path.name}: done, skipped", file=sys.stderr)
            continue
        out = a.out_dir / f"{family}-seed{seed}"
        print(f"quickstart --family {family} --seed {seed} -> {out}", file=sys.stderr)
        load0 = os.getloadavg()
        summary = run_one(family, seed, out, a.resume, a.fast)
        row = {
            "family": family,
            "seed": seed,
            "summary": summary,
            "fast": a.fast,
            "loadavg": [load0, os.getloadavg()],
            "machine": machine(),
        }
        path.write_text(json.dumps(row, indent=2, default=str) + "\n")
        print(
            f"  student {summary['student']['accuracy']:.4f}, {summary['seconds']:.0f} s",
            file=sys.stderr,
        )
        if a.commit:
            subprocess.run(["git", "add", str(path)], check=True)
            msg = f"quickstart_runs: {family} seed {seed}"
            subprocess.run(["git", "commit", "-q", "-m", msg, "--", str(path)], check=True)
    print(markdown(load_rows(a.results_dir)))


if __name__ == "__main__":
    main()
