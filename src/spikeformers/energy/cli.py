"""CLI hooks for ``spikeformers energy`` and ``spikeformers report``.

``spikeformers.cli`` wires them in; the ``energy`` parser also gets the shared data flags
(``--task``/``--data-dir``/``--train-file``/``--max-length``... via ``_add_data_args``), which
``run_energy`` reads through ``spikeformers.cli._data_args``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["add_energy_arguments", "add_report_arguments", "run_energy", "run_report"]


def _has_option(parser: argparse.ArgumentParser, flag: str) -> bool:
    return any(flag in a.option_strings for a in parser._actions)


def add_energy_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``energy`` command's own flags (the data flags are added by the caller)."""
    parser.add_argument("--model", required=True, help="saved student (or teacher) folder")
    parser.add_argument("--teacher", help="fine-tuned teacher folder, counted on the same texts")
    parser.add_argument(
        "--split",
        choices=["train", "validation", "test"],
        default="test",
        help="split whose texts are run (test)",
    )
    parser.add_argument(
        "--max-samples", type=int, help="count only the first N texts of the split (default: all)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="texts per forward (1: no padding, exact per-text counts)",
    )
    parser.add_argument(
        "--table",
        default="45nm",
        help="prices: 45nm (default, Horowitz ISSCC 2014), 45nm-fp16, 45nm-int32, "
        "45nm-int8, key=value overrides (mac=4.6,ac=0.9,op=4.6) or a JSON file",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="module-name pattern reported but left out of the totals, e.g. "
        "'transforms' for distillation-only heads (repeatable)",
    )
    parser.add_argument("--output", help="where to write the JSON (default: MODEL/energy.json)")
    parser.add_argument("--max-rows", type=int, help="print at most this many per-layer rows")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    if not _has_option(parser, "--device"):
        parser.add_argument("--device", help="cpu, cuda, ... (default: CUDA when present)")


def _loader(examples, tokenizer, max_length: int, batch_size: int):
    from spikeformers.data import encode_examples, make_dataloader

    ds = encode_examples(examples, tokenizer, max_length=max_length)
    return make_dataloader(
        ds, batch_size=batch_size, shuffle=False, pad_token_id=tokenizer.pad_token_id or 0
    )


def run_energy(args: argparse.Namespace) -> int:
    """Count and price a saved model (and teacher) on a split; print and write ``energy.json``."""
    from spikeformers.cli import _data_args
    from spikeformers.energy.constants import get_table
    from spikeformers.energy.estimate import estimate
    from spikeformers.pipeline import load_any, load_data
    from spikeformers.utils.io import write_json
    from spikeformers.utils.seed import pick_device

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_samples is not None and args.max_samples < 1:
        raise ValueError(f"--max-samples must be >= 1, got {args.max_samples}")
    table = get_table(args.table)
    device = pick_device(getattr(args, "device", None))
    data = _data_args(args)
    model, tokenizer = load_any(args.model)
    splits = load_data(data)
    examples = list(getattr(splits, args.split))[: args.max_samples]
    if not examples:
        raise ValueError(f"the {args.split} split of {splits.task.name} is empty")
    loader = _loader(examples, tokenizer, data.max_length, args.batch_size)
    teacher, teacher_loader = None, None
    if args.teacher:
        teacher, teacher_tok = load_any(args.teacher)
        teacher.to(device)
        teacher_loader = _loader(examples, teacher_tok, data.max_length, args.batch_size)
    model.to(device)
    report = estimate(
        model,
        loader,
        table=table,
        teacher=teacher,
        teacher_batches=teacher_loader,
        exclude=args.exclude,
    )
    payload = {
        **report.to_dict(),
        "model_dir": str(args.model),
        "teacher_dir": str(args.teacher) if args.teacher else None,
        "task": splits.task.name,
        "split": args.split,
        "batch_size": args.batch_size,
        "max_length": data.max_length,
        "device": str(device),
    }
    out = Path(args.output) if args.output else Path(args.model) / "energy.json"
    write_json(out, payload)
    logger.info("wrote %s", out)
    if args.json:
        import json

        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(report.table(max_rows=args.max_rows) + "\n")
        sys.stdout.write(f"wrote {out}\n")
    return 0


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` command's flags."""
    parser.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folders, or folders of run folders"
    )
    parser.add_argument("--out", help="output folder (default: RUN_DIR/report for the first one)")
    parser.add_argument("--sentence", help="sentence for the spike raster (default: a fixed one)")
    parser.add_argument(
        "--no-raster",
        action="store_true",
        help="skip the spike raster (it loads each student model)",
    )


def run_report(args: argparse.Namespace) -> int:
    """Plot firing rates, spike rasters, energy per layer and accuracy vs energy."""
    from spikeformers.report import DEFAULT_SENTENCE, write_report

    out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
    paths = write_report(
        [Path(r) for r in args.runs],
        out,
        sentence=args.sentence or DEFAULT_SENTENCE,
        raster=not args.no_raster,
    )
    for p in paths:
        sys.stdout.write(f"{p}\n")
    return 0
