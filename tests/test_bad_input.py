"""Malformed input through the CLI: exit status 2 and a message that names the problem.

Cases already covered in ``tests/test_cli.py`` (a missing text column, an empty text, an empty
file, a validation label outside the training classes, undecodable bytes in a training file, an
unknown model name, an output folder holding another run) are not repeated here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spikeformers.cli import main
from tests.conftest import make_tiny_teacher, tiny_overrides

TINY = ["--set", "num_layers=2", "hidden_size=32", "num_heads=4", "time_steps=2"]
FAST = ["--max-steps", "1", "--batch-size", "4", "--no-progress"]


def _fails(argv: list[str], capsys, *patterns: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "error" in err and "Traceback" not in err, err
    for p in patterns:
        assert re.search(p, err), f"{p!r} not in {err!r}"
    return err


@pytest.fixture
def train_csv(tmp_path) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("sentence,label\ngood film,1\nbad film,0\nfun,1\ndull,0\n")
    return path


@pytest.fixture
def student_dir(tmp_path, tokenizer) -> Path:
    """A saved tiny student with its tokenizer (as a run directory holds it)."""
    from spikeformers.registry import create_model

    out = tmp_path / "student"
    create_model("spikebert-tiny", **tiny_overrides(len(tokenizer))).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _train(tiny_teacher_dir, train: Path | str, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        "spikebert-tiny",
        "--tokenizer",
        str(tiny_teacher_dir),
        "--train-file",
        str(train),
        *TINY,
        *FAST,
        "--out",
        str(out),
        *extra,
    ]


# -- data ------------------------------------------------------------------------------------


def test_missing_training_file(tmp_path, tiny_teacher_dir, capsys):
    argv = _train(tiny_teacher_dir, tmp_path / "nope.csv", tmp_path / "o")
    _fails(argv, capsys, r"nope\.csv: file not found")


def test_missing_label_column(tmp_path, tiny_teacher_dir, capsys):
    train = tmp_path / "train.csv"
    train.write_text("sentence,stars\ngood,1\n")
    argv = _train(tiny_teacher_dir, train, tmp_path / "o")
    _fails(argv, capsys, r"train\.csv.*'label'")


def test_label_outside_the_named_task_classes(tmp_path, tiny_teacher_dir, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "rt-polarity.all").write_text("1 a good film\n0 a bad film\n7 an odd one\n")
    argv = _train(tiny_teacher_dir, "x", tmp_path / "o")
    i = argv.index("--train-file")
    argv[i : i + 2] = ["--task", "mr", "--data-dir", str(data)]
    _fails(argv, capsys, r"rt-polarity\.all:3", "'7'")


def test_unknown_task_name(tmp_path, tiny_teacher_dir, capsys):
    argv = _train(tiny_teacher_dir, "x", tmp_path / "o")
    i = argv.index("--train-file")
    argv[i : i + 2] = ["--task", "sst3", "--data-dir", str(tmp_path)]
    _fails(argv, capsys, "unknown task 'sst3'", "sst2")


def test_text_over_a_megabyte_is_refused(tmp_path, tiny_teacher_dir, capsys):
    # (CSV fields over 128 KiB are already refused by the CSV reader, naming file and line)
    train = tmp_path / "train.jsonl"
    rows = [{"sentence": "good", "label": 1}, {"sentence": "bad " * 300_000, "label": 0}]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = _train(tiny_teacher_dir, train, tmp_path / "o")
    _fails(argv, capsys, r"train\.jsonl:2: a text of 1,199,999 characters \(the limit is 1,000,000")


def test_empty_unlabelled_file_for_general_distillation(tmp_path, tiny_teacher_dir, capsys):
    text = tmp_path / "corpus.txt"
    text.write_text("\n\n   \n")
    argv = [
        "distill",
        "--stage",
        "general",
        "--teacher",
        str(tiny_teacher_dir),
        "--unlabelled-file",
        str(text),
        "--model",
        "spikebert-tiny",
        *TINY,
        *FAST,
        "--out",
        str(tmp_path / "o"),
    ]
    _fails(argv, capsys, r"corpus\.txt", "no text|empty")


def test_predict_input_file_not_utf8(tmp_path, student_dir, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"good film\ncaf\xe9\n")
    argv = ["predict", "--model", str(student_dir), "--input-file", str(texts)]
    _fails(argv, capsys, r"texts\.txt: not UTF-8")


# -- models and checkpoints -------------------------------------------------------------------


def test_evaluate_a_folder_that_does_not_exist(tmp_path, capsys):
    _fails(["evaluate", "--model", str(tmp_path / "gone")], capsys, "gone: no such directory")


def test_truncated_model_weights(tmp_path, student_dir, train_csv, capsys):
    weights = student_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    argv = ["evaluate", "--model", str(student_dir), "--train-file", str(train_csv)]
    _fails(argv, capsys, r"model\.safetensors: cannot read weights", "truncated")


def test_corrupt_config_json(tmp_path, student_dir, tiny_teacher_dir, train_csv, capsys):
    (student_dir / "config.json").write_text('{"model_type": "spikebert", "num_la')
    _fails(["predict", "--model", str(student_dir), "--text", "good"], capsys, "not valid JSON")
    argv = _train(tiny_teacher_dir, train_csv, tmp_path / "o")
    argv[argv.index("spikebert-tiny")] = str(student_dir)
    _fails(argv, capsys, r"config\.json: not valid JSON")


def test_student_vocabulary_differs_from_the_teacher(tmp_path, student_dir, train_csv, capsys):
    """A student saved with one vocabulary, distilled from a teacher with another."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[f"w{i}" for i in range(33)]]
    other = tmp_path / "other_teacher"
    other.mkdir()
    (other / "vocab.txt").write_text("\n".join(vocab) + "\n")  # same size (38), other tokens
    tok = BertTokenizerFast.from_pretrained(str(other), do_lower_case=True)
    make_tiny_teacher(len(tok)).save_pretrained(other)
    tok.save_pretrained(other)
    argv = [
        "distill",
        "--stage",
        "task",
        "--model",
        str(student_dir),
        "--teacher",
        str(other),
        "--train-file",
        str(train_csv),
        *FAST,
        "--out",
        str(tmp_path / "o"),
    ]
    _fails(argv, capsys, "the student's tokenizer \\(38 tokens\\) differs from the teacher's")


def test_all_training_checkpoints_damaged(tmp_path, tiny_teacher_dir, train_csv, capsys):
    out = tmp_path / "o"
    argv = _train(tiny_teacher_dir, train_csv, out, "--save-every", "1")
    argv[argv.index("--max-steps") + 1] = "2"
    assert main(argv) == 0
    capsys.readouterr()
    for folder in (out / "checkpoints").iterdir():
        state = folder / "trainer_state.pt"
        state.write_bytes(state.read_bytes()[:100])
    _fails([*argv, "--resume"], capsys, "no checkpoint could be read", r"step-2.*truncated")


# -- settings --------------------------------------------------------------------------------


def test_fp16_on_cpu(tmp_path, tiny_teacher_dir, train_csv, capsys):
    argv = _train(tiny_teacher_dir, train_csv, tmp_path / "o", "--precision", "fp16")
    _fails(argv, capsys, "fp16 needs a CUDA GPU", "bf16")


def test_batch_not_divisible_by_grad_accum(tmp_path, tiny_teacher_dir, train_csv, capsys):
    argv = _train(tiny_teacher_dir, train_csv, tmp_path / "o", "--grad-accum", "3")
    _fails(argv, capsys, r"batch-size\) 4 is not divisible by grad_accum \(--grad-accum\) 3")


def test_out_is_a_file(tmp_path, tiny_teacher_dir, train_csv, capsys):
    out = tmp_path / "o"
    out.write_text(json.dumps({"not": "a folder"}))
    _fails(_train(tiny_teacher_dir, train_csv, out), capsys, "exists and is not a folder")
