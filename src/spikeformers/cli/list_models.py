"""``spikeformers list-models``."""

from __future__ import annotations

import argparse
import sys

from spikeformers.cli import options as o

HELP = "list registered model variants"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``list-models``."""
    p.add_argument("--family", help="only this family (e.g. spikebert)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(a: argparse.Namespace) -> int:
    """List the registered model variants."""
    from spikeformers.registry import model_entries

    entries = [e for e in model_entries() if not a.family or e.family == a.family]
    if a.json:
        o.emit(
            [{"name": e.name, "family": e.family, "description": e.description} for e in entries]
        )
    else:
        width = max(len(e.name) for e in entries)
        for e in entries:
            sys.stdout.write(f"{e.name:<{width}}  {e.description}\n")
    return 0
