"""``spikeformers report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "plots and a one-page report of run directories"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``report``."""
    p.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folders, or folders of run folders"
    )
    p.add_argument("--out", help="output folder (default: RUN_DIR/report for the first one)")
    p.add_argument("--sentence", help="sentence for the spike raster (default: a fixed one)")
    p.add_argument(
        "--no-raster",
        action="store_true",
        help="skip the spike raster (it loads each student model)",
    )


def run(a: argparse.Namespace) -> int:
    """Plot firing rates, spike rasters, energy per layer and accuracy vs energy."""
    from spikeformers.report import DEFAULT_SENTENCE, write_report

    out = Path(a.out) if a.out else Path(a.runs[0]) / "report"
    paths = write_report(
        [Path(r) for r in a.runs],
        out,
        sentence=a.sentence or DEFAULT_SENTENCE,
        raster=not a.no_raster,
    )
    for path in paths:
        sys.stdout.write(f"{path}\n")
    return 0
