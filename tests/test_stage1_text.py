"""Stage 1 on several text sources: repeatable ``--unlabelled-file``, ``train``, recipe lists,
the texts and tokens of each source and the tokens seen in ``metrics.json``, bad sources."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from spikeformers import pipeline
from spikeformers.cards import reproduce_command
from spikeformers.cli import main
from spikeformers.data import source_list
from spikeformers.recipes import RecipeError, load_recipe, recipe_path
from spikeformers.recipes.runner import RunOptions, run_recipe

TINY = ["--set", "num_layers=2", "hidden_size=32", "num_heads=4", "time_steps=2"]

# every word is one token of the tiny vocabulary; a text is its words + [CLS] + [SEP]
WIKI = " = Films = \n\nthe movie is good\n\n = = Plot = = \nthe plot was dull and boring\n"
EXTRA = "a film\n"


def _files(tmp_path: Path) -> tuple[str, str]:
    wiki, extra = tmp_path / "wiki.txt", tmp_path / "extra.txt"
    wiki.write_text(WIKI)
    extra.write_text(EXTRA)
    return str(wiki), str(extra)


def _general(tmp_path, teacher, csv_data, *sources: str, epochs: str = "2") -> list[str]:
    argv = ["distill", "--stage", "general", "--model", "spikebert-tiny", "--teacher", teacher]
    for s in sources:
        argv += ["--unlabelled-file", s]
    argv += [*TINY, "--train-file", csv_data["train"], "--validation-file", csv_data["dev"]]
    return [*argv, "--epochs", epochs, "--batch-size", "8", "--no-progress", "--out", str(tmp_path)]


def test_three_sources_are_counted_per_source_and_in_training(tmp_path, tiny_teacher_dir, csv_data):
    wiki, extra = _files(tmp_path)
    out = tmp_path / "s1"
    assert main(_general(out, str(tiny_teacher_dir), csv_data, "train", wiki, extra)) == 0
    m = json.loads((out / "metrics.json").read_text())
    # by hand: 48 training texts of 4 words; wiki: 2 paragraphs (4 and 6 words); extra: 2 words
    want = [
        {"source": "train", "texts": 48, "tokens": 48 * 6},
        {"source": wiki, "texts": 2, "tokens": 6 + 8},
        {"source": extra, "texts": 1, "tokens": 4},
    ]
    assert m["sources"] == want
    assert (m["texts"], m["tokens"]) == (51, 306)
    assert (m["texts_seen"], m["tokens_seen"]) == (2 * 51, 2 * 306)  # two epochs
    rc = json.loads((out / "run_config.json").read_text())
    assert rc["unlabelled_file"] == ["train", wiki, extra]
    assert rc["data_info"]["sources"] == want
    again = shlex.split(reproduce_command(rc))
    flags = [again[i + 1] for i, a in enumerate(again) if a == "--unlabelled-file"]
    assert flags == ["train", wiki, extra]
    log = (out / "run.log").read_text()
    assert "stage-1 text: 51 texts, 306 tokens per epoch" in log


def test_one_file_alone_skips_the_task_texts(tmp_path, tiny_teacher_dir, csv_data):
    wiki, _ = _files(tmp_path)
    out = tmp_path / "s1"
    assert main(_general(out, str(tiny_teacher_dir), csv_data, wiki, epochs="1")) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["texts"], m["tokens"], m["texts_seen"], m["tokens_seen"]) == (2, 14, 2, 14)


def test_long_paragraphs_are_truncated_unless_split(tmp_path, tiny_teacher_dir, csv_data):
    # --max-length 7: pieces of (7 - 2) * 2 // 3 = 3 words. By hand: "the movie is good" ->
    # "the movie is" (5 tokens) + "good" (3); "the plot was dull and boring" -> two pieces of 3
    # words (5 + 5). Truncated instead: 2 texts of 6 and 7 tokens.
    wiki, _ = _files(tmp_path)
    short = [*_general(tmp_path / "t", str(tiny_teacher_dir), csv_data, wiki, epochs="1")]
    assert main([*short, "--max-length", "7"]) == 0
    m = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert (m["texts"], m["tokens"]) == (2, 6 + 7)
    out = tmp_path / "s1"
    argv = _general(out, str(tiny_teacher_dir), csv_data, wiki, epochs="1")
    assert main([*argv, "--max-length", "7", "--split-long-texts"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["texts"], m["tokens"]) == (4, 5 + 3 + 5 + 5)
    assert "2 paragraphs cut into 4 pieces of <= 3 words" in (out / "run.log").read_text()
    rc = json.loads((out / "run_config.json").read_text())
    assert rc["split_long_texts"] is True
    again = shlex.split(reproduce_command(rc))
    assert again[again.index("--split-long-texts") + 1].startswith("--")  # all files


def test_split_names_files_and_never_cuts_the_training_texts(tmp_path, tiny_teacher_dir, csv_data):
    # the 48 training texts have 4 words: pieces of 3 words would make 96 texts; they stay 48
    wiki, extra = _files(tmp_path)
    out = tmp_path / "s1"
    argv = _general(out, str(tiny_teacher_dir), csv_data, "train", wiki, extra, epochs="1")
    assert main([*argv, "--max-length", "7", "--split-long-texts", wiki]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert [r["texts"] for r in m["sources"]] == [48, 4, 1]
    rc = json.loads((out / "run_config.json").read_text())
    assert rc["split_long_texts"] == [wiki]
    again = shlex.split(reproduce_command(rc))
    assert again[again.index("--split-long-texts") + 1] == wiki


def test_split_errors_name_the_problem(tmp_path, tiny_teacher_dir, csv_data, capsys):
    wiki, extra = _files(tmp_path)
    argv = _general(tmp_path / "s1", str(tiny_teacher_dir), csv_data, wiki)
    _fails([*argv, "--split-long-texts", extra], capsys, "split_long_texts names .*extra.txt")
    task = ["distill", "--stage", "task", "--model", "spikebert-tiny", "--teacher", "t"]
    task += ["--train-file", csv_data["train"], "--split-long-texts", "--out", str(tmp_path / "x")]
    _fails(task, capsys, "general-stage option")


def _fails(argv: list[str], capsys, pattern: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err) and "Traceback" not in err, err


def test_a_missing_or_empty_source_is_named(tmp_path, tiny_teacher_dir, csv_data, capsys):
    wiki, _ = _files(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n = Only a heading = \n\n")
    teacher = str(tiny_teacher_dir)
    missing = str(tmp_path / "missing.txt")
    _fails(_general(tmp_path / "a", teacher, csv_data, wiki, missing), capsys, r"missing\.txt")
    _fails(_general(tmp_path / "b", teacher, csv_data, "train", str(empty)), capsys, r"empty\.txt")
    _fails(_general(tmp_path / "c", teacher, csv_data, wiki, wiki), capsys, r"given twice.*wiki")


def test_source_list():
    assert source_list(None) == ["train"]
    assert source_list("a.txt") == ["a.txt"]
    assert source_list(["train", Path("b.txt")]) == ["train", "b.txt"]
    with pytest.raises(ValueError, match="no stage-1 text source"):
        source_list([])


def _recipe(tmp_path: Path, text) -> Path:
    raw = yaml.safe_load(recipe_path("spikebert").read_text())
    raw["general"]["text"] = text
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ([], "general.text must be"),
        (["train", 3], "general.text must be"),
        (["train", "train"], "lists a source twice"),
        ({"a": 1}, "general.text must be a str or list"),
    ],
)
def test_recipe_text_lists_are_checked(tmp_path, text, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe(_recipe(tmp_path, text))


def test_recipe_text_list_reaches_stage_1_in_order(tmp_path, csv_data, monkeypatch):
    wiki, extra = _files(tmp_path)
    recipe = load_recipe(_recipe(tmp_path, ["train", wiki, extra]))
    assert recipe.general_sources == ("train", wiki, extra)
    assert recipe.to_dict()["general"]["text"] == ["train", wiki, extra]
    seen: list = []

    def stop(**kw):
        seen.append(kw["unlabelled_file"])
        raise KeyboardInterrupt  # stage 1 is all this test needs

    monkeypatch.setattr(pipeline, "distill", stop)
    monkeypatch.setattr(pipeline, "finetune_teacher", lambda **kw: {})
    data = pipeline.DataArgs(train_file=csv_data["train"], validation_file=csv_data["dev"])
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out, data, RunOptions(teacher="t", show_progress=False))
    assert seen == [[str(out / "unlabelled.txt"), wiki, extra]]
    assert len((out / "unlabelled.txt").read_text().splitlines()) == 48


def test_recipe_split_long_texts_names_the_file_sources_only(tmp_path, csv_data, monkeypatch):
    wiki, extra = _files(tmp_path)
    path = _recipe(tmp_path, ["train", wiki, extra])
    raw = yaml.safe_load(path.read_text())
    assert load_recipe(path).split_long_texts is False  # the packaged default
    raw["general"]["split_long_texts"] = True
    path.write_text(yaml.safe_dump(raw))
    recipe = load_recipe(path)
    assert recipe.to_dict()["general"]["split_long_texts"] is True
    seen: list = []

    def stop(**kw):
        seen.append(kw["split_long_texts"])
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "distill", stop)
    monkeypatch.setattr(pipeline, "finetune_teacher", lambda **kw: {})
    data = pipeline.DataArgs(train_file=csv_data["train"], validation_file=csv_data["dev"])
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, tmp_path / "run", data, RunOptions(teacher="t", show_progress=False))
    assert seen == [[wiki, extra]]  # not the runner's unlabelled.txt of training texts
    raw["general"]["split_long_texts"] = "yes"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(RecipeError, match="split_long_texts"):
        load_recipe(path)
