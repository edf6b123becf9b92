"""``spikeformers push``."""

from __future__ import annotations

import argparse
import sys

HELP = "upload a run folder with its model card to the Hugging Face Hub"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``push``."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="finished run folder")
    p.add_argument("--repo-id", required=True, help="Hub repository, e.g. user/my-spikebert")
    p.add_argument("--private", action="store_true", help="create the repository private")


def run(a: argparse.Namespace) -> int:
    """Upload a run folder (with its model card) to the Hugging Face Hub."""
    from spikeformers.cards import push_run

    url = push_run(a.run_dir, a.repo_id, private=a.private)
    sys.stdout.write(f"{url}\n")
    return 0
