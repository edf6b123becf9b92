"""``spikeformers ablate``: the SpikeBERT ablation study (Table 3)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from spikeformers.cli import options as o
from spikeformers.cli.augment import add_options, augment_config

HELP = "run the SpikeBERT ablation study (Table 3) and write its table"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``ablate``."""
    from spikeformers.ablation import VARIANT_NAMES
    from spikeformers.workflows.students import DEFAULT_STUDENT

    p.add_argument(
        "--teacher",
        help="teacher fine-tuned on the task (default: fine-tune --pretrained-teacher first)",
    )
    p.add_argument(
        "--pretrained-teacher", default="minilm", help="stage-1 teacher (default: minilm)"
    )
    p.add_argument("--model", default=DEFAULT_STUDENT, help=f"student variant ({DEFAULT_STUDENT})")
    o.add_overrides(p, "student config overrides")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (0)")
    p.add_argument("--variants", nargs="+", choices=VARIANT_NAMES, default=list(VARIANT_NAMES))
    p.add_argument(
        "--unlabelled-file",
        action="append",
        metavar="FILE_OR_train",
        help="stage-1 text source, repeatable, as for distill (default: the training sentences)",
    )
    g = p.add_argument_group("training")
    g.add_argument("--teacher-epochs", type=float, default=3.0, help="teacher fine-tuning (3)")
    g.add_argument("--stage1-epochs", type=float, default=1.0, help="stage-1 epochs (1)")
    g.add_argument("--stage1-lr", type=float, default=1e-3, help="stage-1 learning rate (1e-3)")
    g.add_argument("--stage1-max-steps", type=int, help="cap stage-1 optimizer steps")
    g.add_argument("--stage2-epochs", type=float, default=3.0, help="stage-2 epochs (3)")
    g.add_argument("--stage2-lr", type=float, default=5e-4, help="stage-2 learning rate (5e-4)")
    g.add_argument("--stage2-max-steps", type=int, help="cap stage-2 optimizer steps")
    g.add_argument("--batch-size", type=int, default=32, help="training batch size (32)")
    g.add_argument("--eval-batch-size", type=int, default=64)
    g.add_argument("--temperature", type=float, default=1.0, help="KL temperature (1.0)")
    a = p.add_argument_group("augmentation (Tang et al. 2019)")
    add_options(a)
    o.add_data_args(p)
    p.add_argument("--out", required=True, help="folder of the study's runs and tables")
    p.add_argument("--table", help="also write the tables to TABLE.md and TABLE.json")
    p.add_argument("--resume", action="store_true", help="reuse finished runs in --out")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def ablation_config(a: argparse.Namespace):
    """:class:`AblationConfig` from the flags of :func:`build`."""
    from spikeformers.ablation import AblationConfig
    from spikeformers.distill.distiller import DistillConfig
    from spikeformers.trainer import TrainConfig
    from spikeformers.workflows.teacher import TEACHER_TRAIN_DEFAULTS

    data = o.data_args(a)

    def train(epochs: float, lr: float, max_steps: int | None):
        return TrainConfig(
            epochs=epochs,
            lr=lr,
            max_steps=max_steps,
            batch_size=a.batch_size,
            eval_batch_size=a.eval_batch_size,
        )

    return AblationConfig(
        data=data,
        out_dir=a.out,
        teacher=a.teacher,
        pretrained_teacher=a.pretrained_teacher,
        model=a.model,
        model_overrides=o.parse_overrides(a.set),
        seeds=tuple(a.seeds),
        variants=tuple(a.variants),
        teacher_train=dataclasses.replace(TEACHER_TRAIN_DEFAULTS, epochs=a.teacher_epochs),
        stage1_train=train(a.stage1_epochs, a.stage1_lr, a.stage1_max_steps),
        stage2_train=train(a.stage2_epochs, a.stage2_lr, a.stage2_max_steps),
        distill=DistillConfig.for_stage("task", temperature=a.temperature),
        augment=augment_config(a, seed=0, max_length=data.max_length),
        tagger=a.tagger,
        spacy_model=a.spacy_model,
        unlabelled_file=a.unlabelled_file,
        device=a.device,
        resume=a.resume,
    )


def run(a: argparse.Namespace) -> int:
    """Run the SpikeBERT ablation study (Table 3) and write Markdown and JSON tables."""
    from spikeformers.ablation import markdown_table, run_ablation
    from spikeformers.utils.io import write_json

    doc = run_ablation(ablation_config(a), show_progress=not a.no_progress)
    if a.table:
        write_json(f"{a.table}.json", doc)
        Path(f"{a.table}.md").write_text(markdown_table(doc), encoding="utf-8")
    sys.stdout.write(markdown_table(doc))
    return 0
