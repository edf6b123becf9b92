"""``spikeformers train``."""

from __future__ import annotations

import argparse

from spikeformers.cli import options as o

HELP = "train a spiking model directly (CE, no teacher)"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``train``."""
    from spikeformers.workflows.students import DEFAULT_STUDENT

    p.add_argument("--model", default=DEFAULT_STUDENT, help="registered variant or saved folder")
    p.add_argument("--tokenizer", default="minilm", help="tokenizer folder or Hub id (minilm)")
    o.add_overrides(p)
    o.add_data_args(p)
    o.add_train_args(p)
    o.add_run_args(p)


def run(a: argparse.Namespace) -> int:
    """Train a spiking model directly with cross-entropy (no teacher)."""
    from spikeformers.workflows.direct import train_direct

    o.emit(
        train_direct(
            out_dir=a.out,
            model=a.model,
            tokenizer=a.tokenizer,
            data=o.data_args(a),
            train=o.train_config(a),
            model_overrides=o.parse_overrides(a.set),
            device=a.device,
            overwrite=a.overwrite,
            show_progress=not a.no_progress,
            checkpointing=o.checkpointing(a),
            report_to=o.report_to(a),
            do_test=a.do_test,
        )
    )
    return 0
