"""Tokenizers of spikeformers run folders load through the teacher helpers."""

from __future__ import annotations

import logging

from spikeformers import create_model
from spikeformers.distill.teacher import load_tokenizer
from tests.conftest import tiny_overrides


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_tokenizer_of_a_run_folder_loads_without_a_config_warning(tmp_path, tokenizer):
    # a run folder: the student's config.json (model_type "spikebert") beside the teacher's
    # tokenizer files
    run = tmp_path / "run"
    create_model("spikebert-tiny", **tiny_overrides(len(tokenizer))).save_pretrained(run)
    tokenizer.save_pretrained(run)
    records = _Records()
    hf = logging.getLogger("transformers")
    hf.addHandler(records)
    old_level = hf.level
    hf.setLevel(logging.WARNING)
    try:
        loaded = load_tokenizer(run)
    finally:
        hf.removeHandler(records)
        hf.setLevel(old_level)
    assert not [m for m in records.messages if "model of type" in m], records.messages
    text = "a good movie , not a bad one"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.mask_token == tokenizer.mask_token


def test_tokenizer_of_a_transformers_folder_still_uses_its_config(tiny_teacher_dir, tokenizer):
    loaded = load_tokenizer(tiny_teacher_dir)
    assert loaded("a dull plot")["input_ids"] == tokenizer("a dull plot")["input_ids"]
