"""Examples -> token ids -> padded batches.

Examples are tokenised once (:func:`encode_examples`) into an :class:`EncodedDataset` of plain
Python lists; :class:`PadCollator` pads each batch to its own longest item (dynamic padding), and
:func:`make_dataloader` adds seeded shuffling and optional length grouping, which cuts padding
(and so CPU time) a lot for short-sentence sets such as SST-2.

Batch layout (``B`` batch, ``L`` longest item in the batch, ``C`` classes):

- ``input_ids`` ``[B, L]`` long, right-padded with ``pad_token_id``;
- ``attention_mask`` ``[B, L]`` long, 1 for real tokens, 0 for padding;
- ``token_type_ids`` ``[B, L]`` long, padded with 0;
- ``labels`` ``[B]`` (long for classes, float for regression), only if every item has a label;
- ``teacher_logits`` ``[B, C]`` float, only if every item has soft labels;
- ``index`` ``[B]`` long, the position of each item in the dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from spikeformers.data.examples import Example

logger = logging.getLogger(__name__)

Item = dict[str, Any]


class EncodedDataset(Dataset):
    """Pre-tokenised examples; each item is a dict of plain lists and numbers.

    Keys: ``input_ids``, ``token_type_ids``, ``index``, and ``label`` / ``soft_labels`` when the
    example has them.
    """

    def __init__(self, items: Sequence[Item]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]

    @property
    def lengths(self) -> list[int]:
        """Number of tokens of each item (for length grouping)."""
        return [len(item["input_ids"]) for item in self.items]


def encode_examples(
    examples: Sequence[Example], tokenizer: Any, *, max_length: int = 128
) -> EncodedDataset:
    """Tokenise examples once, with the tokenizer's special tokens and truncation.

    Args:
        examples: The examples; those with ``text_pair`` are encoded as sentence pairs.
        tokenizer: A Hugging Face tokenizer (fast ones are much quicker); called on lists of
            texts with ``truncation=True``.
        max_length: Maximum number of tokens per item, special tokens included.

    Returns:
        The encoded dataset, item ``i`` for ``examples[i]``. Tokenizers that return no
        ``token_type_ids`` (RoBERTa-style) get zeros.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    items: list[Item | None] = [None] * len(examples)
    singles = [i for i, e in enumerate(examples) if e.text_pair is None]
    pairs = [i for i, e in enumerate(examples) if e.text_pair is not None]
    for positions, is_pair in ((singles, False), (pairs, True)):
        if not positions:
            continue
        texts = [examples[i].text for i in positions]
        if is_pair:
            text_pairs = [examples[i].text_pair for i in positions]
            encoded = tokenizer(texts, text_pairs, truncation=True, max_length=max_length)
        else:
            encoded = tokenizer(texts, truncation=True, max_length=max_length)
        type_ids = encoded.get("token_type_ids")
        for j, i in enumerate(positions):
            ids = list(encoded["input_ids"][j])
            item: Item = {
                "input_ids": ids,
                "token_type_ids": list(type_ids[j]) if type_ids is not None else [0] * len(ids),
                "index": i,
            }
            example = examples[i]
            if example.label is not None:
                item["label"] = example.label
            if example.soft_labels is not None:
                item["soft_labels"] = list(example.soft_labels)
            items[i] = item
    at_limit = sum(1 for item in items if item is not None and len(item["input_ids"]) >= max_length)
    if at_limit:
        logger.info(
            "%d of %d examples reach max_length=%d tokens (longer ones are truncated)",
            at_limit,
            len(items),
            max_length,
        )
    return EncodedDataset([item for item in items if item is not None])


class PadCollator:
    """Pad a list of encoded items to the longest one and stack them into tensors.

    See the module docstring for the batch layout.

    Args:
        pad_token_id: Id used to pad ``input_ids`` (the tokenizer's ``pad_token_id``).
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = int(pad_token_id)

    def __repr__(self) -> str:
        return f"PadCollator(pad_token_id={self.pad_token_id})"

    def __call__(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        """Pad and stack ``items`` (dicts from :class:`EncodedDataset`) into a batch."""
        if not items:
            raise ValueError("PadCollator got an empty batch")
        batch_size = len(items)
        length = max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((batch_size, length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch_size, length), dtype=torch.long)
        token_type_ids = torch.zeros((batch_size, length), dtype=torch.long)
        for b, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[b, :n] = torch.as_tensor(item["input_ids"], dtype=torch.long)
            attention_mask[b, :n] = 1
            if item.get("token_type_ids") is not None:
                token_type_ids[b, :n] = torch.as_tensor(item["token_type_ids"], dtype=torch.long)
        batch = {
            "input_ids": input_ids,  # (B, L)
            "attention_mask": attention_mask,  # (B, L)
            "token_type_ids": token_type_ids,  # (B, L)
        }
        if all(item.get("label") is not None for item in items):
            labels = [item["label"] for item in items]
            regression = any(isinstance(label, float) for label in labels)
            batch["labels"] = torch.tensor(  # (B,)
                labels, dtype=torch.float32 if regression else torch.long
            )
        if all(item.get("soft_labels") is not None for item in items):
            widths = {len(item["soft_labels"]) for item in items}
            if len(widths) != 1:
                raise ValueError(f"soft_labels of different widths in one batch: {sorted(widths)}")
            batch["teacher_logits"] = torch.tensor(  # (B, C)
                [list(item["soft_labels"]) for item in items], dtype=torch.float32
            )
        batch["index"] = torch.tensor([int(item["index"]) for item in items], dtype=torch.long)
        return batch


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of items of similar length, in a seeded random order.

    Each epoch: shuffle all indices (if ``shuffle``), cut them into chunks of
    ``50 * batch_size``, sort each chunk by length (longest first), cut it into batches and, if
    ``shuffle``, shuffle the batches. Batches then hold similar lengths, so little padding, while
    the order stays random. Successive epochs differ; the sequence of epochs is fixed by ``seed``.

    Args:
        lengths: Token count of each item.
        batch_size: Items per batch.
        shuffle: Whether to shuffle (otherwise the order is fixed: chunks in dataset order).
        seed: Seed of the sampler's own ``torch.Generator``.
        drop_last: Drop the epoch's last batch if it is smaller than ``batch_size``.
        chunk_batches: Chunk size in batches.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        chunk_batches: int = 50,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.chunk_size = chunk_batches * batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.lengths)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).tolist()
        else:
            order = list(range(n))
        batches: list[list[int]] = []
        for start in range(0, n, self.chunk_size):
            chunk = sorted(order[start : start + self.chunk_size], key=lambda i: -self.lengths[i])
            batches += [
                chunk[k : k + self.batch_size] for k in range(0, len(chunk), self.batch_size)
            ]
        # Chunks hold whole batches, so only the epoch's very last batch can be short; keep it
        # last (and drop it if asked) rather than shuffle a short batch into the middle.
        tail = batches.pop() if batches and len(batches[-1]) < self.batch_size else None
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=self.generator).tolist()
            batches = [batches[p] for p in perm]
        yield from batches
        if tail is not None and not self.drop_last:
            yield tail


def make_dataloader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    pad_token_id: int = 0,
    sampler: Sampler | None = None,
    drop_last: bool = False,
    group_by_length: bool = False,
) -> DataLoader:
    """Build a :class:`~torch.utils.data.DataLoader` that pads batches with :class:`PadCollator`.

    Args:
        dataset: Usually an :class:`EncodedDataset`.
        batch_size: Items per batch.
        shuffle: Shuffle every epoch (seeded: the same seed gives the same epochs).
        seed: Seed of the shuffling generator.
        pad_token_id: Padding id for ``input_ids``.
        sampler: A custom sampler (e.g. distributed); excludes ``shuffle`` and
            ``group_by_length``.
        drop_last: Drop a final batch smaller than ``batch_size``.
        group_by_length: Batch items of similar length (see :class:`LengthGroupedBatchSampler`).

    Raises:
        ValueError: ``sampler`` combined with ``shuffle`` or ``group_by_length``.
    """
    collate = PadCollator(pad_token_id)
    if sampler is not None and (shuffle or group_by_length):
        raise ValueError(
            "make_dataloader: pass either sampler or shuffle/group_by_length, not both"
        )
    if group_by_length:
        lengths = (
            dataset.lengths
            if isinstance(dataset, EncodedDataset)
            else [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
        )
        batch_sampler = LengthGroupedBatchSampler(
            lengths, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        generator=generator,
        drop_last=drop_last,
        collate_fn=collate,
    )
