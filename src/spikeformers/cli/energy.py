"""``spikeformers energy``: count and price a saved model, print tables, write energy.json."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spikeformers.cli import options as o
from spikeformers.cli.evaluate import INFERENCE_SET_HELP

logger = logging.getLogger(__name__)

HELP = "estimate per-layer operations and energy (paper and full accounting)"


def build(parser: argparse.ArgumentParser) -> None:
    """Flags of ``energy``: its own, then the run and data flags."""
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
    o.add_overrides(parser, INFERENCE_SET_HELP)
    parser.add_argument("--output", help="where to write the JSON (default: MODEL/energy.json)")
    parser.add_argument("--max-rows", type=int, help="print at most this many per-layer rows")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    o.add_run_args(parser, out=False)
    o.add_data_args(parser)


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


def run(args: argparse.Namespace) -> int:
    """Count and price a saved model (and teacher) on a split; print and write ``energy.json``."""
    from spikeformers.utils.io import write_json
    from spikeformers.workflows.energy import energy_of_run

    report, payload = energy_of_run(
        args.model,
        o.data_args(args),
        split=args.split,
        teacher_dir=args.teacher,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        table=args.table,
        exclude=args.exclude,
        device=args.device,
        model_overrides=o.parse_overrides(args.set),
        precision=args.precision,
        weights_in=args.weights_in,
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

        convention = args.convention
        if convention in ("memory", "all"):
            sys.stdout.write(_memory_table(payload["memory"], args.max_rows) + "\n\n")
        if convention != "memory":
            sys.stdout.write(report.table(max_rows=args.max_rows) + "\n")
        sys.stdout.write("\n".join(summary_lines(payload["memory"])) + "\n")
        sys.stdout.write(f"wrote {out}\n")
    if args.plot:
        from spikeformers.energy.memory import plot_break_even

        png = plot_break_even(payload["memory"], Path(args.plot), title=Path(args.model).name)
        sys.stdout.write(f"wrote {png}\n" if png else "no plot: it needs --teacher and spikes\n")
    return 0
