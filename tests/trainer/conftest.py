"""A workspace (tiny teacher + CSV files) and an uninterrupted reference run, built once."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import WORDS
from tests.trainer.helpers import make_workspace


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Module fixtures (the reference runs) are set up before the function-scoped autouse fixture
    # of tests/conftest.py: fix the thread count here too, so every run reduces in the same order.
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ws(tmp_path_factory, _one_thread):
    from transformers import BertTokenizerFast

    root = tmp_path_factory.mktemp("ws")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(root), do_lower_case=True)
    torch.manual_seed(0)
    return {**make_workspace(root, tokenizer), "root": str(root)}
