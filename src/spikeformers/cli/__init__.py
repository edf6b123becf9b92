"""The ``spikeformers`` command line. ``COMMANDS`` is the only command table.

Each command is one module of this package with ``HELP`` (one line), ``build(parser)`` (its
flags) and ``run(args) -> int``; a new command is one module and one line in ``COMMANDS``.
Shared flag groups are in :mod:`spikeformers.cli.options`; data, training and checkpoint flags
are generated from the library's dataclasses (:mod:`spikeformers.cli.fields`).

Flags follow Hugging Face's ``run_glue`` where they overlap (``--task``/``--data-dir`` for named
tasks, ``--train-file``/``--validation-file``/``--test-file`` with ``--text-column``,
``--text-pair-column``, ``--label-column`` for generic files; ``--model``, ``--teacher``,
``--out``, ``--device``, ``--seed``). Results go to stdout as JSON; progress and logs go to stderr.
Bad input ends with ``spikeformers: error: ...`` and exit status 2, never a deep traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from spikeformers import __version__
from spikeformers.cli.options import parse_overrides
from spikeformers.utils.logging import configure_cli_logging

logger = logging.getLogger(__name__)

__all__ = ["COMMANDS", "build_parser", "main", "parse_overrides"]

# command name -> module of this package (HELP, build, run)
COMMANDS: dict[str, str] = {
    "finetune-teacher": "finetune_teacher",
    "distill": "distill",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "list-models": "list_models",
    "energy": "energy",
    "report": "report",
    "augment": "augment",
    "ablate": "ablate",
    "push": "push",
    "run": "run",
    "quickstart": "quickstart",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="spikeformers",
        description="Spiking language models distilled from BERT-family teachers.",
    )
    parser.add_argument("--version", action="version", version=f"spikeformers {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        command = importlib.import_module(f"{__name__}.{module}")
        p = sub.add_parser(name, help=command.HELP, description=command.run.__doc__)
        command.build(p)
        p.set_defaults(run=command.run)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from spikeformers.data.examples import DataError

    return (DataError, ValueError, FileNotFoundError, FloatingPointError, ImportError, OSError)


def _quiet_transformers() -> None:
    """transformers' weight-loading bars and load reports are noise next to our own output."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikeformers`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_cli_logging(args.verbose)
    _quiet_transformers()
    try:
        return args.run(args)
    except KeyboardInterrupt:
        sys.stderr.write("spikeformers: interrupted\n")
        return 130
    except _user_errors() as e:
        if args.verbose:
            raise
        sys.stderr.write(f"spikeformers {args.command}: error{_rank_tag()}: {e}\n")
        return 2
    finally:
        _shutdown_distributed()


def _rank_tag() -> str:
    """`` (rank R)`` inside a distributed run, so each process's error is attributable."""
    if "torch.distributed" not in sys.modules:
        return ""
    import torch.distributed as dist

    return f" (rank {dist.get_rank()})" if dist.is_initialized() else ""


def _shutdown_distributed() -> None:
    if "spikeformers.distributed" in sys.modules:
        from spikeformers.distributed import shutdown

        shutdown()
