"""``spikeformers energy`` / ``report`` hooks, run through argparse on tiny saved models."""

from __future__ import annotations

import argparse
import json

import pytest

from spikeformers.cli import energy as energy_cli
from spikeformers.cli import report as report_cli
from tests.energy.helpers import save_student, write_csv_data


def _energy_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    energy_cli.build(p)
    return p


def test_energy_help_states_the_booking_rule():
    help_text = " ".join(_energy_parser().format_help().split())
    assert "with a real-valued input is priced as MACs" in help_text
    assert "a neuron's own kernel such as BPSN's temporal filters" in help_text


def test_energy_command_prints_table_and_writes_energy_json(
    tmp_path, tokenizer, tiny_teacher_dir, capsys
):
    data = write_csv_data(tmp_path)
    student = save_student(tmp_path / "student", tokenizer)
    args = _energy_parser().parse_args(
        [
            "--model",
            str(student),
            "--teacher",
            str(tiny_teacher_dir),
            "--train-file",
            data["train"],
            "--test-file",
            data["test"],
            "--max-length",
            "16",
            "--max-samples",
            "3",
            "--device",
            "cpu",
        ]
    )
    assert energy_cli.run(args) == 0
    out = capsys.readouterr().out
    assert "paper convention" in out and "student / teacher" in out and "Horowitz" in out
    assert "booking rule: one rule for every family" in out
    energy = json.loads((student / "energy.json").read_text())
    assert energy["num_samples"] == 3 and energy["split"] == "test"
    assert energy["teacher_dir"] == str(tiny_teacher_dir)
    assert energy["batch_size"] == 1 and energy["mean_tokens"] == energy["mean_positions"]
    assert energy["totals"]["energy_pj_paper"] > 0 and energy["ratio_paper"] > 0
    assert energy["teacher"]["totals"]["acs"] == 0


def test_energy_command_custom_table_output_and_json(tmp_path, tokenizer, capsys):
    data = write_csv_data(tmp_path)
    student = save_student(tmp_path / "student", tokenizer)
    out_file = tmp_path / "e.json"
    args = _energy_parser().parse_args(
        [
            "--model",
            str(student),
            "--train-file",
            data["train"],
            "--test-file",
            data["test"],
            "--max-samples",
            "2",
            "--batch-size",
            "2",
            "--table",
            "mac=1,ac=0.5,op=0",
            "--output",
            str(out_file),
            "--json",
            "--exclude",
            "transforms",
        ]
    )
    assert energy_cli.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["constants"]["mac_pj"] == 1.0 and printed["exclude"] == ["transforms"]
    assert json.loads(out_file.read_text())["totals"] == printed["totals"]
    assert not (student / "energy.json").exists()


def test_energy_command_rejects_bad_table(tmp_path, tokenizer):
    data = write_csv_data(tmp_path)
    student = save_student(tmp_path / "student", tokenizer)
    args = _energy_parser().parse_args(
        [
            "--model",
            str(student),
            "--train-file",
            data["train"],
            "--table",
            "3nm",
        ]
    )
    with pytest.raises(ValueError, match="unknown energy table"):
        energy_cli.run(args)


def test_report_command_writes_files(tmp_path, tokenizer, capsys):
    from tests.energy.helpers import make_runs

    teacher = tmp_path / "runs" / "teacher"
    from tests.conftest import make_tiny_teacher

    make_tiny_teacher(len(tokenizer)).save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    make_runs(tmp_path / "runs", tokenizer, teacher)
    p = argparse.ArgumentParser()
    report_cli.build(p)
    args = p.parse_args([str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--no-raster"])
    assert report_cli.run(args) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1].endswith("report.md")
    assert (tmp_path / "rep" / "accuracy_vs_energy.png").is_file()
