"""Run every benchmark script once with tiny settings: the recorded commands still work.

Each script runs in a fresh process from a temporary folder (its ``runs/`` land there), with its
result files redirected there too (``SPIKEFORMERS_BENCH_RESULTS``), so nothing recorded in
``benchmarks/results`` is touched. The settings are the smallest each script offers (one step,
a handful of examples); the numbers mean nothing, only that the code path runs end to end.

Usage (from the repository root; real data from ``--data-dir`` for the SST-2/ChnSentiCorp ones)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/smoke.py \
        --data-dir ../shared/data [--only throughput roofline ...] [--keep DIR]

Prints one line per script (status, seconds) and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def commands(data_dir: str, tmp: Path) -> dict[str, list[str]]:
    """Script name -> its tiny arguments (paths inside ``tmp``)."""
    qs = tmp / "quickstart_runs" / "spikebert-seed0"  # written by the quickstart_runs smoke
    return {
        "throughput": ["--batch-size", "2", "--seq-len", "8", "--repeats", "1"],
        "lif_speed": ["--repeats", "1", "--step-repeats", "1", "--batch-size", "2",
                      "--seq-len", "8", "--out", "lif_speed"],
        "bpsn_modes": ["--reps", "1", "--lengths", "8"],
        "bpsn_vs_lif": ["--lengths", "8", "--batch-size", "2", "--layers", "1", "--hidden", "32",
                        "--heads", "2", "--vocab", "100", "--warmup", "0", "--steps", "1",
                        "--out", str(tmp / "bpsn_vs_lif.json")],
        "spikingbert_memory": ["--time-steps", "4", "--batch-size", "2", "--seq-len", "8",
                               "--hidden", "32", "--heads", "2", "--vocab", "100", "--steps", "1"],
        "roofline": ["--quick", "--steps", "1", "--infer-reps", "1", "--out", "roofline"],
        "energy_rule_change": ["--batch", "2", "--max-length", "16",
                               "--out", str(tmp / "energy_rule_change.json")],
        "spikingbert_equilibrium": ["--data-dir", data_dir, "--samples", "2", "--steps", "2", "4"],
        "m3e_unk_rate": ["--data-dir", data_dir, "--teacher", "minilm"],
        "quickstart_runs": ["--fast", "--families", "spikebert", "--seeds", "0",
                            "--out-dir", str(tmp / "quickstart_runs")],
        "quickstart_recipes": ["--fast", "--runs", "baseline:0", "--work-dir",
                               str(tmp / "recipes"), "--results-dir", str(tmp / "recipes_out"),
                               "--final", "baseline", "--seeds", "0",
                               "--final-dir", str(tmp / "recipes_final")],
        "teacher_cache_speed": ["--teacher", str(qs / "teacher"), "--stage1", str(qs / "stage1"),
                                "--block", "1", "--rounds", "1"],
        "sst2_distill": ["--data-dir", data_dir, "--out", str(tmp / "sst2"),
                         "--families", "spikebert", "--teacher-epochs", "0.01",
                         "--general-epochs", "0.01", "--task-epochs", "0.01",
                         "--max-train-samples", "16", "--max-eval-samples", "8",
                         "--energy-samples", "1", "--eval-time-steps"],
        "ablation_sst2": ["--data-dir", data_dir, "--out", str(tmp / "ablation"), "--seeds", "0",
                          "--variants", "full", "no_stage2", "--max-train-samples", "16",
                          "--max-eval-samples", "8", "--max-length", "16",
                          "--student", "spikebert-tiny", "--teacher-epochs", "0.05",
                          "--stage1-epochs", "0.05", "--stage2-steps", "1", "--n-iter", "1"],
        "suite": ["run", "--datasets", "mrpc", "--families", "spikebert", "--seeds", "0",
                  "--data-root", data_dir, "--work", str(tmp / "suite"),
                  "--results", str(tmp / "suite_results"), "--max-steps", "1"],
        "eval_speed": ["--layers", "1", "--max-length", "16", "--reps", "1"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--only", nargs="+", help="these scripts only (default: all)")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it")
    p.add_argument("--timeout", type=int, default=900, help="seconds per script (900)")
    a = p.parse_args(argv)
    data_dir = str(Path(a.data_dir).resolve())
    tmp_ctx = None if a.keep else tempfile.TemporaryDirectory(prefix="bench-smoke-")
    tmp = a.keep or Path(tmp_ctx.name)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "SPIKEFORMERS_BENCH_RESULTS": str(tmp / "results"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    table = commands(data_dir, tmp)
    unknown = set(a.only or ()) - set(table)
    if unknown:
        p.error(f"unknown scripts {sorted(unknown)}; known: {sorted(table)}")
    missing = sorted(
        f.stem
        for f in HERE.glob("*.py")
        if f.stem not in table and f.stem not in ("common", "smoke")
    )
    if missing:
        print(f"no smoke settings for: {', '.join(missing)} (add them to commands())")
    failed = list(missing)
    for name, args in table.items():
        if a.only and name not in a.only:
            continue
        cmd = [sys.executable, str(HERE / f"{name}.py"), *args]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=a.timeout
            )
            ok, tail = r.returncode == 0, (r.stderr or r.stdout).strip().splitlines()[-5:]
        except subprocess.TimeoutExpired:
            ok, tail = False, [f"timed out after {a.timeout} s"]
        seconds = time.perf_counter() - t0
        print(f"{'ok  ' if ok else 'FAIL'} {name:<26} {seconds:7.1f} s", flush=True)
        if not ok:
            failed.append(name)
            print("     " + "\n     ".join(tail), flush=True)
    if tmp_ctx is not None:
        tmp_ctx.cleanup()
    print(f"{'all ok' if not failed else 'failed: ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
