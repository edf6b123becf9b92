"""``train_direct``: train a spiking model with cross-entropy alone (the no-teacher baseline)."""

from __future__ import annotations

from pathlib import Path

from spikeformers.data.config import DataArgs, load_training_data
from spikeformers.distill.teacher import load_tokenizer
from spikeformers.registry import is_saved_model
from spikeformers.trainer import TrainConfig
from spikeformers.workflows.context import training_run
from spikeformers.workflows.rundir import CheckpointArgs
from spikeformers.workflows.students import DEFAULT_STUDENT, check_vocab, resolve_student


def train_direct(
    *,
    out_dir: str | Path,
    model: str = DEFAULT_STUDENT,
    tokenizer: str | None = None,
    data: DataArgs | None = None,
    train: TrainConfig | None = None,
    model_overrides: dict | None = None,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    checkpointing: CheckpointArgs | None = None,
    report_to: list[str] | None = None,
    do_test: bool = False,
) -> dict:
    """Train a spiking model directly with cross-entropy (no teacher): the baseline.

    ``tokenizer`` names the tokenizer (a teacher folder or Hub id; default the packaged MiniLM's).
    Regression tasks train with MSE. The test split is scored only with ``do_test``.
    """
    train = train or TrainConfig()
    data = data or DataArgs()
    with training_run(
        out_dir,
        "train",
        train=train,
        device=device,
        overwrite=overwrite,
        checkpointing=checkpointing,
        show_progress=show_progress,
        report_to=report_to,
    ) as run:
        splits = load_training_data(data, do_test)
        saved_tok = is_saved_model(model) and (Path(model) / "tokenizer_config.json").is_file()
        tok = load_tokenizer(model if saved_tok else tokenizer)
        student = resolve_student(model, tok, splits, model_overrides or {})
        check_vocab(student, tok, f"--model {model}")
        run.record(
            model=model,
            tokenizer=tokenizer,
            data=data,
            train=train,
            do_test=do_test,
            model_overrides=model_overrides,
            device=run.device,
            data_info=splits.info,
            student_config=student.config.to_dict(),
            world_size=run.env.world_size,
        )
        return run.train_supervised(student, splits, tok, data, do_test=do_test)
