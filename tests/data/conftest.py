"""Fixtures for the data tests: a tiny offline WordPiece tokenizer."""

from __future__ import annotations

import pytest

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "a", "movie", "film", "is", "was", "good", "bad", "great", "awful", "not", "very",
    "fun", "boring", "plot", "actors", "and", "but", "it", "i", "liked", "hated", "story",
    ".", ",", "!", "?",
]  # fmt: skip


@pytest.fixture
def tiny_tokenizer(tmp_path):
    """A BERT WordPiece tokenizer over :data:`VOCAB`, built from a vocab.txt in ``tmp_path``."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    # from_pretrained on a local folder works the same in transformers 4 and 5 (5 ignores the
    # ``vocab_file=`` keyword of the constructor) and never touches the network.
    return transformers.BertTokenizerFast.from_pretrained(str(folder))
