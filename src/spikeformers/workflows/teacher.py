"""``finetune_teacher``: fine-tune a BERT-family teacher on a task (``transformers`` format)."""

from __future__ import annotations

from pathlib import Path

from spikeformers.data.config import DataArgs, load_training_data
from spikeformers.distill.teacher import load_teacher, load_tokenizer
from spikeformers.trainer import TrainConfig
from spikeformers.workflows.context import training_run
from spikeformers.workflows.rundir import CheckpointArgs

# BERT fine-tuning defaults (Devlin et al. 2019): small lr, linear decay, 10% warm-up.
TEACHER_TRAIN_DEFAULTS = TrainConfig(
    epochs=3, lr=5e-5, weight_decay=0.01, warmup_ratio=0.1, schedule="linear"
)


def finetune_teacher(
    *,
    data: DataArgs,
    out_dir: str | Path,
    teacher: str | None = None,
    train: TrainConfig | None = None,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    checkpointing: CheckpointArgs | None = None,
    report_to: list[str] | None = None,
    do_test: bool = False,
) -> dict:
    """Fine-tune a BERT-family teacher on a task and save it (``transformers`` format).

    A regression task (one output) is fine-tuned with MSE (``problem_type="regression"``).
    The test split is scored only with ``do_test`` (as ``run_glue --do_predict``).

    Returns:
        Metrics: ``{"validation": {...}, "test": {...} (with do_test), "seconds": ...}``.
    """
    train = train or TEACHER_TRAIN_DEFAULTS
    with training_run(
        out_dir,
        "finetune-teacher",
        train=train,
        device=device,
        overwrite=overwrite,
        checkpointing=checkpointing,
        show_progress=show_progress,
        report_to=report_to,
    ) as run:
        splits = load_training_data(data, do_test)
        tokenizer = load_tokenizer(teacher)
        model = load_teacher(
            teacher, num_labels=splits.task.num_labels, label_names=splits.task.label_names
        )
        run.record(
            teacher=teacher,
            data=data,
            train=train,
            do_test=do_test,
            device=run.device,
            data_info=splits.info,
            task=splits.task,
            world_size=run.env.world_size,
        )
        return run.train_supervised(model, splits, tokenizer, data, do_test=do_test)
