"""``spikeformers run``: a recipe end to end (teacher, every stage, test once, energy, report)."""

from __future__ import annotations

import argparse
import sys

from spikeformers.cli import options as o

HELP = "run a recipe end to end (--recipe spikebert|spikingbert|snnbert|FILE.yaml)"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``run``: the recipe, the teacher, resuming, and the shared data/run flags."""
    p.add_argument(
        "--recipe",
        required=True,
        help="spikebert, spikingbert, snnbert (packaged) or a recipe YAML file (copy one from "
        "src/spikeformers/recipes/ and edit it)",
    )
    p.add_argument(
        "--teacher",
        help="teacher folder or id (default: the recipe's); a folder already fine-tuned for the "
        "data's labels is used as is, anything else is fine-tuned first",
    )
    p.add_argument("--resume", action="store_true", help="continue a run: finished stages skip")
    p.add_argument(
        "--save-every", type=int, default=0, metavar="N", help="checkpoint every N steps"
    )
    p.add_argument("--max-steps", type=int, help="smoke test: every stage stops after N steps")
    p.add_argument("--direct", action="store_true", help="also train the directly trained twin")
    p.add_argument("--no-report", action="store_true", help="skip the report/ folder")
    o.add_report_to(p)
    o.add_data_args(p)
    o.add_run_args(p)


def run(a: argparse.Namespace) -> int:
    """Run a recipe end to end: teacher, every stage, the test split once, energy, report."""
    from spikeformers.recipes import load_recipe
    from spikeformers.recipes.runner import RunOptions, format_summary, run_recipe

    opts = RunOptions(
        seed=a.seed,
        teacher=a.teacher,
        device=a.device,
        show_progress=not a.no_progress,
        resume=a.resume,
        overwrite=a.overwrite,
        save_every=a.save_every,
        max_steps=a.max_steps,
        direct=True if a.direct else None,
        report=not a.no_report,
        report_to=o.report_to(a),
    )
    summary = run_recipe(load_recipe(a.recipe), a.out, o.data_args(a), opts)
    sys.stderr.write(format_summary(summary, f"spikeformers run --recipe {a.recipe}"))
    o.emit(summary)
    return 0
