"""``spikeformers evaluate``."""

from __future__ import annotations

import argparse

from spikeformers.cli import options as o

HELP = "evaluate a saved student or teacher"
INFERENCE_SET_HELP = "inference-time config of a saved spiking model, e.g. time_steps=64"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``evaluate``."""
    p.add_argument("--model", required=True, help="saved student or teacher folder")
    p.add_argument("--split", choices=["train", "validation", "test"], default="test")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--output", help="also write the metrics JSON here")
    o.add_overrides(p, INFERENCE_SET_HELP)
    o.add_data_args(p)
    o.add_run_args(p, out=False)


def run(a: argparse.Namespace) -> int:
    """Evaluate a saved student or teacher on a split."""
    from spikeformers.utils.io import write_json
    from spikeformers.workflows.inference import evaluate_model

    metrics = evaluate_model(
        model_dir=a.model,
        data=o.data_args(a),
        split=a.split,
        batch_size=a.eval_batch_size,
        device=a.device,
        model_overrides=o.parse_overrides(a.set),
    )
    if a.output:
        write_json(a.output, metrics)
    o.emit(metrics)
    return 0
