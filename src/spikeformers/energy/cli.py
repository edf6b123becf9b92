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

__all__ = [
    "add_energy_arguments",
    "add_report_arguments",
    "energy_of_run",
    "run_energy",
    "run_report",
]


def _has_option(parser: argparse.ArgumentParser, flag: str) -> bool:
    return any(flag in a.option_strings for a in parser._actions)


def add_energy_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``energy`` command's own flags (the data flags are added by the caller)."""
    from spikeformers.energy.estimate import BOOKING_RULE

    parser.epilog = (
        "Paper convention: E_MAC x MACs (real-valued inputs) + E_AC x spike events; "
        f"{BOOKING_RULE}."
    )
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
        "--precision",
        choices=["fp32", "fp16", "int8"],
        help="45 nm arithmetic and data-width tables of Horowitz 2014 for this precision "
        "(instead of --table): fp32 = 45nm, fp16 = 45nm-fp16, int8 = 45nm-int8",
    )
    parser.add_argument(
        "--convention",
        choices=["paper", "full", "memory", "all"],
        default="all",
        help="which convention's per-layer table to print (energy.json holds all): paper "
        "(MACs + ACs), full (+ every float op), memory (full + memory traffic)",
    )
    parser.add_argument(
        "--weights-in",
        choices=["sram", "dram"],
        default="sram",
        help="memory-aware convention: where weights are read from (sram)",
    )
    parser.add_argument(
        "--plot", metavar="PNG", help="also plot energy vs firing rate with the break-even points"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="module-name pattern reported but left out of the totals, e.g. "
        "'transforms' for distillation-only heads (repeatable)",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        metavar="KEY=VALUE",
        help="inference-time config of a saved spiking model, e.g. time_steps=64",
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


def energy_of_run(
    model_dir: str | Path,
    data,
    *,
    split: str = "test",
    teacher_dir: str | Path | None = None,
    max_samples: int | None = None,
    batch_size: int = 1,
    table: str = "45nm",
    exclude: list[str] | None = None,
    device: str | None = None,
    model_overrides: dict | None = None,
    precision: str | None = None,
    weights_in: str = "sram",
):
    """Count and price a saved model (and its teacher) on a split of ``data``.

    Args:
        model_dir: Saved student (or teacher) folder.
        data: :class:`~spikeformers.pipeline.DataArgs` naming the texts.
        split: ``train``, ``validation`` or ``test``.
        teacher_dir: Fine-tuned teacher folder, counted on the same texts.
        max_samples: Count only the first N texts of the split.
        batch_size: Texts per forward (1: nothing padded, exact per-text counts).
        table: Price table name, ``key=value`` overrides or a JSON file.
        exclude: Module-name patterns reported but left out of the totals.
        device: ``cpu``, ``cuda``... (default: CUDA when present).
        model_overrides: Inference-time config of a saved spiking model (e.g. ``time_steps``).
        precision: ``fp32``, ``fp16`` or ``int8``: the 45 nm tables of that precision for the
            arithmetic and the memory-aware estimate (``table`` must then be the default).
        weights_in: ``sram`` or ``dram``: where the memory-aware estimate reads weights from.

    Returns:
        ``(report, payload)``: the :class:`EnergyReport` and the ``energy.json`` dict.
    """
    from spikeformers.energy.constants import get_table
    from spikeformers.energy.estimate import estimate
    from spikeformers.pipeline import load_any, load_data, model_label_set
    from spikeformers.utils.seed import pick_device

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"--max-samples must be >= 1, got {max_samples}")
    from spikeformers.energy.memory import MemoryTable, precision_tables

    if precision is not None:
        if table != "45nm":
            raise ValueError("give --precision or --table, not both")
        prices, memory = precision_tables(precision, weights_in=weights_in)
    else:
        prices, memory = get_table(table), MemoryTable(weights_in=weights_in)
    dev = pick_device(device)
    model, tokenizer = load_any(model_dir, model_overrides)
    # Only the split counted is needed (--test-file alone will do); labels are read with the
    # model's label set, though energy needs none (an unlabelled test file is fine).
    splits = load_data(data, need_train=False, labels=model_label_set(model))
    examples = list(getattr(splits, split))[:max_samples]
    if not examples:
        given = data.files()
        hint = f" (files given: {', '.join(given)}; give --{split}-file)" if given else ""
        raise ValueError(f"the {split} split of {splits.task.name} is empty{hint}")
    loader = _loader(examples, tokenizer, data.max_length, batch_size)
    teacher, teacher_loader = None, None
    if teacher_dir:
        teacher, teacher_tok = load_any(teacher_dir)
        teacher.to(dev)
        teacher_loader = _loader(examples, teacher_tok, data.max_length, batch_size)
    model.to(dev)
    counts: dict = {}
    report = estimate(
        model,
        loader,
        table=prices,
        teacher=teacher,
        teacher_batches=teacher_loader,
        exclude=exclude,
        counts_out=counts,
    )
    payload = {
        **_with_memory(report, counts, model, teacher, prices, memory),
        "model_dir": str(model_dir),
        "teacher_dir": str(teacher_dir) if teacher_dir else None,
        "task": splits.task.name,
        "split": split,
        "batch_size": batch_size,
        "max_length": data.max_length,
        "device": str(dev),
        "model_overrides": dict(model_overrides or {}),
    }
    return report, payload


def _with_memory(report, counts: dict, model, teacher, prices, memory) -> dict:
    """``report.to_dict()`` plus the memory-aware convention: its totals beside the others
    (``totals.energy_pj_memory``, the teacher's too), the ``memory`` section and the break-even
    firing rates (:mod:`spikeformers.energy.memory`)."""
    from spikeformers.energy.memory import CONVENTION_MEANINGS, MEMORY, memory_payload

    out = report.to_dict()
    mem = memory_payload(
        counts["student"],
        model,
        counts.get("teacher"),
        teacher,
        prices,
        memory,
        exclude=report.exclude,
        teacher_exclude=report.teacher.exclude if report.teacher is not None else (),
    )
    out["conventions"][MEMORY] = CONVENTION_MEANINGS[MEMORY]
    out["totals"]["energy_pj_memory"] = mem["totals"][MEMORY]
    if out["teacher"] is not None:
        out["teacher"]["totals"]["energy_pj_memory"] = mem["teacher_totals"][MEMORY]
        out["ratio_memory"] = mem["totals"][MEMORY] / mem["teacher_totals"][MEMORY]
    out["memory"] = mem
    out["break_even"] = mem["break_even"]
    return out


def _memory_table(mem: dict, max_rows: int | None) -> str:
    head = (
        f"{'module':<34} {'op':<12} {'W reads':>8} {'in reads':>8} {'out wr':>8} "
        f"{'membrane':>8} {'spikes':>8} {'E traffic':>10} {'E memory':>10}"
    )
    lines = [
        "memory-aware convention, per layer (element accesses and pJ per sample)",
        head,
        "-" * len(head),
    ]
    rows = mem["layers"] if max_rows is None else mem["layers"][:max_rows]
    for r in rows:
        name = r["name"] if len(r["name"]) <= 34 else "…" + r["name"][-33:]
        lines.append(
            f"{name:<34} {r['op']:<12} {r['weight_reads']:>8.3g} {r['input_reads']:>8.3g} "
            f"{r['output_writes']:>8.3g} {r['membrane_accesses']:>8.3g} "
            f"{r['spike_events']:>8.3g} {r['energy_pj_traffic']:>10.4g} "
            f"{r['energy_pj_memory']:>10.4g}" + ("  (excluded)" if r["excluded"] else "")
        )
    return "\n".join(lines)


def run_energy(args: argparse.Namespace) -> int:
    """Count and price a saved model (and teacher) on a split; print and write ``energy.json``."""
    from spikeformers.cli import _data_args, parse_overrides
    from spikeformers.utils.io import write_json

    report, payload = energy_of_run(
        args.model,
        _data_args(args),
        split=args.split,
        teacher_dir=args.teacher,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        table=args.table,
        exclude=args.exclude,
        device=getattr(args, "device", None),
        model_overrides=parse_overrides(args.set),
        precision=getattr(args, "precision", None),
        weights_in=getattr(args, "weights_in", "sram"),
    )
    out = Path(args.output) if args.output else Path(args.model) / "energy.json"
    write_json(out, payload)
    logger.info("wrote %s", out)
    if out.resolve() == (Path(args.model) / "energy.json").resolve():
        from spikeformers.cards import refresh_card

        refresh_card(args.model)  # the card's energy section reads energy.json
    if args.json:
        import json

        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        from spikeformers.energy.memory import summary_lines

        convention = getattr(args, "convention", "all")
        if convention in ("memory", "all"):
            sys.stdout.write(_memory_table(payload["memory"], args.max_rows) + "\n\n")
        if convention != "memory":
            sys.stdout.write(report.table(max_rows=args.max_rows) + "\n")
        sys.stdout.write("\n".join(summary_lines(payload["memory"])) + "\n")
        sys.stdout.write(f"wrote {out}\n")
    if getattr(args, "plot", None):
        from spikeformers.energy.memory import plot_break_even

        png = plot_break_even(payload["memory"], Path(args.plot), title=Path(args.model).name)
        sys.stdout.write(f"wrote {png}\n" if png else "no plot: it needs --teacher and spikes\n")
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
