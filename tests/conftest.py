"""Shared fixtures: tiny teachers built from a BertConfig and a tiny offline tokenizer.

Nothing here touches the network or ../shared/data.
"""

from __future__ import annotations

import random

import pytest
import torch

# A fourth model family defined in the tests (one file + its registration): every suite
# parametrized over ``list_models()`` runs it along with the built-in families.
import tests.models.toy_family  # noqa: F401

WORDS = [
    "the",
    "a",
    "an",
    "movie",
    "film",
    "plot",
    "actor",
    "story",
    "good",
    "great",
    "fun",
    "funny",
    "moving",
    "brilliant",
    "bad",
    "awful",
    "boring",
    "dull",
    "terrible",
    "mess",
    "not",
    "very",
    "is",
    "was",
    "and",
    "but",
    "it",
    "this",
    "that",
    "of",
    "to",
    "with",
    "too",
]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


@pytest.fixture
def vocab_file(tmp_path):
    """A WordPiece vocab: special tokens + a few dozen words."""
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return path


@pytest.fixture
def tokenizer(vocab_file):
    # from_pretrained(folder): transformers 5 silently ignores BertTokenizerFast(vocab_file=...).
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(vocab_file.parent), do_lower_case=True)


def make_tiny_teacher(
    vocab_size: int, *, num_labels: int | None = 2, hidden: int = 32, layers: int = 2, seed: int = 0
):
    """A randomly initialised BERT (HF's test size: hidden 32, 2 layers, 4 heads)."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=4 * hidden,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    if num_labels is None:
        return BertModel(cfg).eval()
    cfg.num_labels = num_labels
    return BertForSequenceClassification(cfg).eval()


@pytest.fixture
def tiny_teacher_dir(tmp_path, tokenizer):
    """A saved tiny classification teacher with its tokenizer (a stand-in for a fine-tuned BERT)."""
    teacher = make_tiny_teacher(len(tokenizer))
    out = tmp_path / "teacher"
    teacher.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_overrides(vocab_size: int, num_labels: int = 2, name: str = "spikebert-tiny") -> dict:
    """Config overrides that make registered variant ``name`` tiny: its family's
    ``tiny_config()`` plus the vocabulary and label count."""
    from spikeformers.registry import variant_class

    return {
        "vocab_size": vocab_size,
        "num_labels": num_labels,
        **variant_class(name).tiny_config(),
    }


POS = ["good", "great", "fun", "funny", "moving", "brilliant"]
NEG = ["bad", "awful", "boring", "dull", "terrible", "mess"]


def _sentences(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = rng.sample(WORDS[:10], 3) + [rng.choice(POS if label else NEG)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture
def csv_data(tmp_path):
    """Tiny sentiment CSVs (train 48, dev 16, test 16 rows): ``{split: path}``."""
    paths = {}
    for split, n, seed in (("train", 48, 0), ("dev", 16, 1), ("test", 16, 2)):
        path = tmp_path / f"{split}.csv"
        path.write_text("sentence,label\n" + "".join(f"{s},{y}\n" for s, y in _sentences(n, seed)))
        paths[split] = str(path)
    return paths
