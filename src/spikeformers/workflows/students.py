"""Resolving ``--model``: a saved student (head re-made for a new task) or a fresh variant, and
the vocabulary checks against the tokenizer and the teacher."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from spikeformers.data import DatasetSplits
from spikeformers.distill.distiller import VocabularyMismatchError
from spikeformers.distill.teacher import TeacherError, load_tokenizer
from spikeformers.models.base import CONFIG_NAME, SpikingModel, read_config
from spikeformers.registry import is_saved_model, load_model

logger = logging.getLogger(__name__)

DEFAULT_STUDENT = "spikebert-mini"
"""The student variant ``distill``, ``train`` and ``ablate`` build when none is named."""


def resolve_student(
    model: str, tokenizer, splits: DatasetSplits | None, overrides: dict
) -> SpikingModel:
    """A saved student (its head re-made if the task's class count differs) or a fresh variant."""
    if is_saved_model(model):
        saved = read_config(model)
        kw = dict(overrides)
        if splits is not None and saved.get("num_labels") != splits.task.num_labels:
            # Stage-1 students carry a placeholder head; re-make it for this task.
            student = load_model(model, **kw)
            return student.reset_classifier(splits.task.num_labels, splits.task.label_names)
        student = load_model(model, **kw)
        if splits is not None:
            name_labels(student, splits.task.label_names, model)
        return student
    if Path(model).exists():
        if (Path(model) / CONFIG_NAME).is_file():
            cfg = read_config(model)  # raises CheckpointError naming a corrupt config.json
            raise ValueError(
                f"--model {model}: {CONFIG_NAME} has model_type {cfg.get('model_type')!r}, not a "
                "spikeformers model (`spikeformers list-models` lists the families)"
            )
        raise ValueError(f"--model {model}: folder has no spikeformers {CONFIG_NAME}")
    kw = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id or 0, **overrides}
    if splits is not None:
        kw.update(num_labels=splits.task.num_labels, label_names=splits.task.label_names)
    return load_model(model, **kw)


def name_labels(student: SpikingModel, names: tuple[str, ...], where: str) -> None:
    """Give a saved student trained further on a task the task's class names (the head is kept).

    A stage-1 student whose placeholder head already has the task's class count carries no
    names; saved without them, it would read labels by id at evaluation ("0", "1") and reject a
    file whose labels are the task's names. Names of another task are replaced, with a warning.
    """
    old = tuple(student.config.label_names)
    if old == tuple(names):
        return
    if old:
        logger.warning(
            "%s: the model's class names %s are replaced by the task's %s (same count; ids kept)",
            where,
            list(old),
            list(names),
        )
    student.config = dataclasses.replace(student.config, label_names=tuple(names))


def check_vocab(student: SpikingModel, tokenizer, where: str) -> None:
    if student.config.vocab_size != len(tokenizer):
        raise ValueError(
            f"{where}: the student's vocabulary ({student.config.vocab_size}) does not match the "
            f"tokenizer ({len(tokenizer)} tokens); use the teacher the student was built for"
        )


def check_same_vocabulary(student_tokenizer, teacher: str | None, where: str) -> None:
    """A saved student brings its own tokenizer: it must be the teacher's, token for token."""
    try:
        teacher_tokenizer = load_tokenizer(teacher)
    except TeacherError:
        logger.warning("cannot load the teacher's tokenizer: not comparing vocabularies")
        return
    s_vocab, t_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if s_vocab != t_vocab:
        differ = sorted(set(s_vocab.items()) ^ set(t_vocab.items()))[:3]
        raise VocabularyMismatchError(
            f"{where}: the student's tokenizer ({len(s_vocab)} tokens) differs from the "
            f"teacher's ({len(t_vocab)} tokens; e.g. {differ}); distil from the teacher whose "
            "tokenizer the student was built with"
        )
