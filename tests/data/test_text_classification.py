"""Tokenisation, dynamic padding and data loaders."""

from __future__ import annotations

import pytest
import torch

from spikeformers.data import (
    EncodedDataset,
    Example,
    PadCollator,
    encode_examples,
    make_dataloader,
)


def test_encode_examples_uses_special_tokens_pairs_and_truncation(tiny_tokenizer):
    vocab = tiny_tokenizer.get_vocab()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    examples = [
        Example("the movie is good", label=1),
        Example("the plot", "was boring", label=0, soft_labels=(0.5, -0.5)),
        Example("a very very very very very very long film", label=1),
    ]
    dataset = encode_examples(examples, tiny_tokenizer, max_length=6)
    assert isinstance(dataset, EncodedDataset) and len(dataset) == 3
    first = dataset[0]
    assert first["input_ids"] == [
        cls,
        vocab["the"],
        vocab["movie"],
        vocab["is"],
        vocab["good"],
        sep,
    ]
    assert first["token_type_ids"] == [0] * 6
    assert (first["label"], first["index"]) == (1, 0)
    assert "soft_labels" not in first
    pair = dataset[1]
    # 2 + 2 words + 3 special tokens = 7 > 6: truncated to 6, still ending in segment B
    assert len(pair["input_ids"]) == 6 and pair["input_ids"].count(sep) == 2
    assert pair["token_type_ids"][0] == 0 and pair["token_type_ids"][-1] == 1
    assert pair["soft_labels"] == [0.5, -0.5] and pair["index"] == 1
    assert len(dataset[2]["input_ids"]) == 6 and dataset[2]["input_ids"][-1] == sep  # truncated
    assert dataset.lengths == [6, 6, 6]


def test_encode_pairs_without_truncation(tiny_tokenizer):
    vocab = tiny_tokenizer.get_vocab()
    item = encode_examples([Example("the plot", "was boring")], tiny_tokenizer)[0]
    ids = ["[CLS]", "the", "plot", "[SEP]", "was", "boring", "[SEP]"]
    assert item["input_ids"] == [vocab[t] for t in ids]
    assert item["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    assert "label" not in item


def item(ids, index, **extra):
    return {"input_ids": ids, "token_type_ids": [0] * len(ids), "index": index, **extra}


def test_pad_collator_pads_right_and_masks_padding():
    batch = PadCollator(pad_token_id=9)(
        [item([5, 6, 7], 0, label=1), item([8], 1, label=0), item([4, 3], 2, label=1)]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 9], [4, 3, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0]] * 3
    assert batch["labels"].tolist() == [1, 0, 1] and batch["labels"].dtype == torch.long
    assert batch["index"].tolist() == [0, 1, 2] and batch["index"].dtype == torch.long
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert batch[key].dtype == torch.long
    assert "teacher_logits" not in batch


def test_pad_collator_keeps_pair_segments_and_float_labels():
    batch = PadCollator(0)(
        [
            {"input_ids": [1, 2, 3, 4], "token_type_ids": [0, 0, 1, 1], "index": 0, "label": 0.5},
            {"input_ids": [1, 2], "token_type_ids": [0, 0], "index": 1, "label": 2.0},
        ]
    )
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 1], [0, 0, 0, 0]]
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [0.5, 2.0]


def test_pad_collator_labels_and_teacher_logits_only_when_every_item_has_them():
    batch = PadCollator(0)(
        [
            item([1, 2], 0, label=1, soft_labels=[0.1, 0.9]),
            item([3], 1, soft_labels=[0.8, 0.2]),
        ]
    )
    assert "labels" not in batch
    assert batch["teacher_logits"].dtype == torch.float32
    assert batch["teacher_logits"].shape == (2, 2)
    assert batch["teacher_logits"][1].tolist() == pytest.approx([0.8, 0.2])
    with pytest.raises(ValueError, match="different widths"):
        PadCollator(0)([item([1], 0, soft_labels=[1.0]), item([1], 1, soft_labels=[1.0, 2.0])])


def make_dataset(n=23):
    # lengths cycle 1..7 so that length grouping has something to group
    return EncodedDataset([item(list(range(1, 2 + i % 7)), i, label=i % 2) for i in range(n)])


def epoch_order(loader):
    return [i for batch in loader for i in batch["index"].tolist()]


def test_make_dataloader_shuffles_deterministically_and_covers_everything():
    dataset = make_dataset()
    a = make_dataloader(dataset, batch_size=4, shuffle=True, seed=3)
    b = make_dataloader(dataset, batch_size=4, shuffle=True, seed=3)
    first, again = epoch_order(a), epoch_order(b)
    assert first == again and sorted(first) == list(range(23))
    assert first != list(range(23))
    assert epoch_order(a) != first  # the next epoch is reshuffled
    plain = make_dataloader(dataset, batch_size=4, shuffle=False)
    assert epoch_order(plain) == list(range(23))
    assert len(list(make_dataloader(dataset, batch_size=4, shuffle=False, drop_last=True))) == 5


def test_group_by_length_batches_similar_lengths_deterministically():
    dataset = make_dataset(200)
    loader = make_dataloader(dataset, batch_size=8, shuffle=True, seed=0, group_by_length=True)
    again = make_dataloader(dataset, batch_size=8, shuffle=True, seed=0, group_by_length=True)
    batches = list(loader)
    assert epoch_order(batches) == epoch_order(again)
    assert sorted(epoch_order(batches)) == list(range(200))  # nothing lost or repeated
    padding = sum(int((b["attention_mask"] == 0).sum()) for b in batches)
    random_batches = make_dataloader(dataset, batch_size=8, shuffle=True, seed=0)
    random_padding = sum(int((b["attention_mask"] == 0).sum()) for b in random_batches)
    assert padding < random_padding / 2
    assert all(len(b["index"]) == 8 for b in batches)  # 200 = 25 full batches
    short = make_dataloader(make_dataset(21), batch_size=8, shuffle=True, group_by_length=True)
    sizes = [len(b["index"]) for b in short]
    assert sizes[-1] == 5 and sizes[:-1] == [8, 8]  # only the last batch is short
    dropped = make_dataloader(
        make_dataset(21), batch_size=8, shuffle=True, group_by_length=True, drop_last=True
    )
    assert [len(b["index"]) for b in dropped] == [8, 8]


def test_sampler_excludes_shuffle():
    dataset = make_dataset()
    sampler = torch.utils.data.SequentialSampler(dataset)
    with pytest.raises(ValueError, match="sampler"):
        make_dataloader(dataset, batch_size=4, shuffle=True, sampler=sampler)
    loader = make_dataloader(dataset, batch_size=4, shuffle=False, sampler=sampler)
    assert epoch_order(loader) == list(range(23))
