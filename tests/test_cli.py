"""The command line end to end, on tiny data and a tiny teacher (no network, no shared data)."""

from __future__ import annotations

import json

import pytest
import torch

from spikeformers.cli import COMMANDS, main, parse_overrides


def _data_flags(csv_data):
    return [
        "--train-file",
        csv_data["train"],
        "--validation-file",
        csv_data["dev"],
        "--test-file",
        csv_data["test"],
        "--max-length",
        "16",
    ]


TINY = ["--set", "num_layers=2", "hidden_size=32", "num_heads=4", "time_steps=2"]
FAST = ["--epochs", "1", "--batch-size", "8", "--no-progress"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"] if command else ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: spikeformers" in out
    if command:
        assert command in out


def test_set_values_parse_as_json_else_as_strings():
    got = parse_overrides(["num_layers=4", "pooling=cls", "use_positions=false", "tau= 2.5"])
    assert got == {"num_layers": 4, "pooling": "cls", "use_positions": False, "tau": 2.5}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_overrides(["num_layers"])


def test_list_models_json(capsys):
    assert main(["list-models", "--json"]) == 0
    names = [m["name"] for m in json.loads(capsys.readouterr().out)]
    assert "spikebert" in names and "spikebert-paper" in names


@pytest.mark.slow
def test_pipeline_train_distill_evaluate_predict(tmp_path, tiny_teacher_dir, csv_data, capsys):
    data = _data_flags(csv_data)
    teacher = str(tiny_teacher_dir)
    # direct training (the baseline), then both distillation stages from the tiny teacher
    assert (
        main(
            [
                "train",
                "--model",
                "spikebert-tiny",
                "--tokenizer",
                teacher,
                *TINY,
                *data,
                *FAST,
                "--out",
                str(tmp_path / "direct"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "distill",
                "--stage",
                "general",
                "--model",
                "spikebert-tiny",
                "--teacher",
                teacher,
                *TINY,
                *data,
                *FAST,
                "--out",
                str(tmp_path / "s1"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "distill",
                "--stage",
                "task",
                "--model",
                str(tmp_path / "s1"),
                "--teacher",
                teacher,
                *data,
                *FAST,
                "--do-test",
                "--out",
                str(tmp_path / "s2"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    for run in ("direct", "s1", "s2"):
        d = tmp_path / run
        for f in (
            "config.json",
            "model.safetensors",
            "run_config.json",
            "metrics.json",
            "tokenizer_config.json",
            "train_log.jsonl",
            "run.log",
        ):
            assert (d / f).is_file(), f"{run}/{f}"
    metrics = json.loads((tmp_path / "s2" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert 0.0 < metrics["test"]["firing_rate"] < 1.0
    rc = json.loads((tmp_path / "s2" / "run_config.json").read_text())
    assert rc["command"] == "distill-task" and rc["distill"]["w_logit"] == 1.0

    assert main(["evaluate", "--model", str(tmp_path / "s2"), *data, "--split", "test"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    # the teacher folder is evaluated by the same command
    assert main(["evaluate", "--model", teacher, *data]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out)

    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "s2"),
                "--text",
                "a great fun movie",
                "--text",
                "boring",
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(abs(sum(r["probs"]) - 1) < 1e-5 for r in rows)


@pytest.mark.parametrize(("flags", "steps"), [([], 5), (["--drop-last"], 4)])
def test_drop_last_flag_skips_the_short_batch(
    tmp_path, tiny_teacher_dir, csv_data, capsys, flags, steps
):
    # 48 training sentences in batches of 10: four full batches and one of 8
    argv = ["finetune-teacher", "--teacher", str(tiny_teacher_dir), *_data_flags(csv_data)]
    argv += ["--epochs", "1", "--batch-size", "10", "--no-progress", "--out", str(tmp_path / "o")]
    assert main(argv + flags) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == steps


@pytest.mark.parametrize("do_test", [False, True])
def test_finetune_teacher_scores_test_only_with_do_test(
    tmp_path, tiny_teacher_dir, csv_data, capsys, do_test
):
    out = tmp_path / "ft"
    argv = ["finetune-teacher", "--teacher", str(tiny_teacher_dir), *_data_flags(csv_data)]
    argv += ["--max-steps", "2", "--batch-size", "8", "--no-progress", "--out", str(out)]
    assert main(argv + (["--do-test"] if do_test else [])) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["steps"] == 2 and "validation" in metrics
    assert ("test" in metrics) is do_test
    saved = json.loads((out / "metrics.json").read_text())
    assert ("test" in saved) is do_test
    if do_test:
        assert saved["test"]["num_examples"] == 16
    assert json.loads((out / "run_config.json").read_text())["do_test"] is do_test
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,label\nfine,1\n", "train.csv.*column 'sentence'"),
        ("sentence,label\ngood,1\n,0\n", "train.csv:3"),
        ("", "train.csv.*empty"),
    ],
)
def test_malformed_data_exits_2_naming_file_and_line(
    tmp_path, tiny_teacher_dir, content, message, capsys
):
    train = tmp_path / "train.csv"
    train.write_text(content)
    code = main(
        [
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
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_validation_label_outside_training_classes(tmp_path, tiny_teacher_dir, capsys):
    train = tmp_path / "train.csv"
    train.write_text("sentence,label\ngood,1\nbad,0\n")
    dev = tmp_path / "dev.csv"
    dev.write_text("sentence,label\nfine,1\nodd,7\n")
    code = main(
        [
            "train",
            "--model",
            "spikebert-tiny",
            "--tokenizer",
            str(tiny_teacher_dir),
            "--train-file",
            str(train),
            "--validation-file",
            str(dev),
            *TINY,
            *FAST,
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "dev.csv:3" in capsys.readouterr().err


def test_undecodable_bytes_name_the_line(tmp_path, tiny_teacher_dir, capsys):
    train = tmp_path / "train.csv"
    train.write_bytes(b"sentence,label\ngood film,1\ncaf\xe9 bad,0\n")
    code = main(
        [
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
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "train.csv:3" in capsys.readouterr().err


def test_unknown_model_name_is_a_clean_error(tmp_path, tiny_teacher_dir, csv_data, capsys):
    code = main(
        [
            "train",
            "--model",
            "spikebert-tinyy",
            "--tokenizer",
            str(tiny_teacher_dir),
            *_data_flags(csv_data),
            *FAST,
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "did you mean spikebert-tiny" in capsys.readouterr().err


def test_out_dir_holding_another_run_is_refused(tmp_path, tiny_teacher_dir, csv_data, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run_config.json").write_text(json.dumps({"command": "finetune-teacher"}))
    code = main(
        [
            "train",
            "--model",
            "spikebert-tiny",
            "--tokenizer",
            str(tiny_teacher_dir),
            *_data_flags(csv_data),
            *TINY,
            *FAST,
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert "already holds a finetune-teacher run" in capsys.readouterr().err


def _run(argv: list[str]) -> int:
    return main(argv)


def test_task_stage_options_freeze_augmented_file_and_evaluate_overrides(
    tmp_path, tiny_teacher_dir, csv_data, capsys
):
    from spikeformers import from_pretrained

    data, teacher = _data_flags(csv_data), str(tiny_teacher_dir)
    s1 = tmp_path / "s1"
    assert (
        _run(
            [
                "distill",
                "--stage",
                "general",
                "--model",
                "spikebert-tiny",
                "--teacher",
                teacher,
                *TINY,
                *data,
                *FAST,
                "--out",
                str(s1),
            ]
        )
        == 0
    )
    # an augmented transfer set: two sentences with stored teacher logits (not the live teacher's)
    aug = tmp_path / "aug.jsonl"
    rows = [
        {"sentence": "a great fun movie", "label": 1, "teacher_logits": [-3.0, 3.0]},
        {"sentence": "a dull boring mess", "label": 0, "teacher_logits": [2.5, -2.5]},
    ] * 4
    aug.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s2 = tmp_path / "s2"
    assert (
        _run(
            [
                "distill",
                "--stage",
                "task",
                "--model",
                str(s1),
                "--teacher",
                teacher,
                "--augmented-file",
                str(aug),
                "--freeze-embeddings",
                *data,
                *FAST,
                "--out",
                str(s2),
            ]
        )
        == 0
    )
    capsys.readouterr()
    m1, m2 = from_pretrained(s1), from_pretrained(s2)
    assert torch.equal(m1.get_input_embeddings().weight, m2.get_input_embeddings().weight)
    before, after = m1.state_dict(), m2.state_dict()
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert len(changed) > 5  # everything else trained
    rc = json.loads((s2 / "run_config.json").read_text())
    assert rc["augmented_file"] == str(aug) and rc["freeze_embeddings"] is True
    assert rc["data_info"]["sizes"]["train"] == 8  # the augmented rows replaced the 48 originals

    # the augmented file is a task-stage option only
    assert (
        _run(
            [
                "distill",
                "--stage",
                "general",
                "--model",
                "spikebert-tiny",
                "--teacher",
                teacher,
                "--augmented-file",
                str(aug),
                *TINY,
                *data,
                *FAST,
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "task-stage option" in capsys.readouterr().err

    # inference-time overrides: the same weights run for more time steps
    assert _run(["evaluate", "--model", str(s2), *data, "--set", "time_steps=5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_overrides"] == {"time_steps": 5}
    assert _run(["evaluate", "--model", teacher, *data, "--set", "time_steps=5"]) == 2
    assert "takes no overrides" in capsys.readouterr().err


def test_distill_cache_teacher_flag_trains_the_same_student(tmp_path, tiny_teacher_dir, csv_data):
    from spikeformers.registry import from_pretrained

    argv = ["distill", "--stage", "task", "--model", "spikebert-tiny", *TINY]
    argv += ["--teacher", str(tiny_teacher_dir), *_data_flags(csv_data), "--max-steps", "3"]
    argv += ["--batch-size", "8", "--no-progress"]
    for name, flags in (("live", []), ("cached", ["--cache-teacher"])):
        assert main([*argv, *flags, "--out", str(tmp_path / name)]) == 0
    rc = json.loads((tmp_path / "cached" / "run_config.json").read_text())
    assert rc["cache_teacher"] is True
    assert "teacher outputs cached for 48 examples" in (tmp_path / "cached" / "run.log").read_text()
    live = from_pretrained(tmp_path / "live").state_dict()
    cached = from_pretrained(tmp_path / "cached").state_dict()
    for k, v in live.items():
        torch.testing.assert_close(cached[k], v, rtol=1e-4, atol=1e-5)
