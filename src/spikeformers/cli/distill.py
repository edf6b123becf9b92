"""``spikeformers distill``."""

from __future__ import annotations

import argparse

from spikeformers.cli import options as o
from spikeformers.cli.fields import add_fields

HELP = "distil a spiking student (--stage general|task)"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``distill``: the loss options are :class:`DistillConfig`'s fields."""
    from spikeformers.distill.distiller import TERM_WEIGHTS, DistillConfig
    from spikeformers.workflows.students import DEFAULT_STUDENT

    p.add_argument(
        "--stage",
        choices=["general", "task"],
        required=True,
        help="general: features on unlabelled text; task: all losses on a task",
    )
    p.add_argument(
        "--model",
        default=DEFAULT_STUDENT,
        help=f"registered variant or saved student folder (default {DEFAULT_STUDENT})",
    )
    p.add_argument(
        "--teacher",
        default="minilm",
        help="pre-trained teacher (general: minilm, mpnet, m3e-small, a folder or Hub id; see "
        "finetune-teacher --help) or fine-tuned teacher folder (task)",
    )
    p.add_argument(
        "--unlabelled-file",
        action="append",
        metavar="FILE_OR_train",
        help="general stage: a stage-1 text source, repeatable (all are trained on, in order): "
        "a plain-text file, one paragraph a line (e.g. WikiText-2's wiki.train.tokens; headings "
        "and blank lines skipped), or `train`, the task's training texts without labels (the "
        "default); metrics.json reports each source's texts and tokens and the tokens seen",
    )
    p.add_argument(
        "--split-long-texts",
        nargs="*",
        metavar="FILE",
        default=False,
        help="general stage: cut the paragraphs of the --unlabelled-file files (all of them, or "
        "the FILEs named) into pieces that fit --max-length (about 1.2 tokens a word) instead "
        "of truncating them (WikiText-2 at 64 tokens: 269k tokens trained on instead of 104k); "
        "`train` is never cut",
    )
    p.add_argument(
        "--augmented-file",
        help="task stage: JSON Lines transfer set from `spikeformers augment` (replaces the "
        "training split; its stored teacher logits feed the KL term)",
    )
    w = p.add_argument_group(
        "loss weights (unset: the stage's default; general uses w_feat 1 and nothing else)"
    )
    # weights default per stage (DistillConfig.for_stage): unset on the command line
    add_fields(w, DistillConfig, exclude=("stage",), no_default=TERM_WEIGHTS.values())
    p.add_argument(
        "--no-init-embeddings",
        action="store_true",
        help="do not copy the teacher's word embeddings into a fresh student",
    )
    p.add_argument(
        "--freeze-embeddings",
        action="store_true",
        help="keep the student's word embeddings fixed (less overfitting on small task data)",
    )
    p.add_argument(
        "--cache-teacher",
        action="store_true",
        help="compute the teacher's outputs once per training example and reuse them each epoch",
    )
    o.add_overrides(p, "student config overrides, e.g. time_steps=8 tau=10")
    o.add_data_args(p)
    o.add_train_args(p)
    o.add_run_args(p)


def distill_config(a: argparse.Namespace):
    """The :class:`DistillConfig` of the parsed flags (stage defaults for unset weights)."""
    from spikeformers.distill.distiller import TERM_WEIGHTS, DistillConfig

    weights = {k: getattr(a, k) for k in TERM_WEIGHTS.values() if getattr(a, k) is not None}
    return DistillConfig.for_stage(
        a.stage,
        temperature=a.temperature,
        skip_first_teacher_layers=a.skip_first_teacher_layers,
        attn_heads=a.attn_heads,
        always_project_features=a.always_project_features,
        **weights,
    )


def run(a: argparse.Namespace) -> int:
    """Distil a spiking student from a teacher (stage general or task)."""
    from spikeformers.workflows.distill import distill

    o.emit(
        distill(
            stage=a.stage,
            out_dir=a.out,
            model=a.model,
            teacher=a.teacher,
            data=o.data_args(a),
            unlabelled_file=a.unlabelled_file,
            augmented_file=a.augmented_file,
            distill_config=distill_config(a),
            train=o.train_config(a),
            model_overrides=o.parse_overrides(a.set),
            init_embeddings=not a.no_init_embeddings,
            freeze_embeddings=a.freeze_embeddings,
            cache_teacher=a.cache_teacher,
            split_long_texts=a.split_long_texts if a.split_long_texts != [] else True,
            device=a.device,
            overwrite=a.overwrite,
            show_progress=not a.no_progress,
            checkpointing=o.checkpointing(a),
            report_to=o.report_to(a),
            do_test=a.do_test,
        )
    )
    return 0
