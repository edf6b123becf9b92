"""``spikeformers quickstart``."""

from __future__ import annotations

import argparse

from spikeformers.cli import options as o

HELP = "run the whole pipeline offline on the embedded default"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``quickstart`` (the families are the quickstart's own table)."""
    from spikeformers.quickstart import QUICKSTART_STUDENTS

    p.add_argument(
        "--family",
        choices=list(QUICKSTART_STUDENTS),
        default="spikebert",
        help="student family (spikebert; the calibrated default)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="a much shorter run for smoke tests (accuracy not representative)",
    )
    p.add_argument("--out", default="runs/quickstart", help="output folder (runs/quickstart)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier quickstart")
    o.add_run_args(p, out=False)


def run(a: argparse.Namespace) -> int:
    """Run the whole pipeline offline on the embedded default and print a summary."""
    from spikeformers.quickstart import QuickstartConfig, quickstart

    cfg = QuickstartConfig(family=a.family, seed=a.seed, fast=a.fast)
    quickstart(a.out, cfg, device=a.device, overwrite=a.overwrite, show_progress=not a.no_progress)
    return 0
