"""Unlabelled text for stage-1 (general) distillation: plain-text files and a task's sentences.

Stage 1 reads one or several sources, in order, and trains on all their texts together: each
source is a plain-text file (one paragraph a line, e.g. WikiText-2's ``wiki.train.tokens``;
blank lines and `` = Heading = `` lines skipped, :func:`load_unlabelled_text`) or the word
:data:`TRAIN_TEXTS` (``train``), the task's own training texts with the labels dropped
(:func:`training_texts`; a file literally named ``train`` is passed as ``./train``). On the command
line ``--unlabelled-file`` is repeatable (``--unlabelled-file train --unlabelled-file
wiki.train.tokens``); a recipe lists them (``general: {text: [train, /path/wiki.valid.tokens]}``).
A missing, empty or undecodable file is a :class:`DataError` naming it; the run logs and writes
each source's text and token counts (``metrics.json``: ``sources``, ``texts``, ``tokens``,
``tokens_seen``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from spikeformers.data.examples import (
    DataError,
    DatasetSplits,
)
from spikeformers.data.readers import (
    read_lines,
)

_SENTENCE_END = (".", "!", "?", "。", "！", "？")
TRAIN_TEXTS = "train"
"""The stage-1 source that stands for the task's training texts (labels dropped)."""


def source_list(sources: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[str]:
    """Stage-1 sources as a list of strings (``None``: ``[TRAIN_TEXTS]``).

    Raises:
        ValueError: a source given twice, or an empty list.
    """
    if sources is None:
        return [TRAIN_TEXTS]
    out = [str(sources)] if isinstance(sources, str | os.PathLike) else [str(s) for s in sources]
    if not out:
        raise ValueError("no stage-1 text source given")
    twice = sorted({s for s in out if out.count(s) > 1})
    if twice:
        raise ValueError(f"stage-1 text source given twice: {', '.join(twice)}")
    return out


def training_texts(splits: DatasetSplits) -> list[str]:
    """The training texts without labels, one per example (a pair joined by a space)."""
    return [e.text if e.text_pair is None else f"{e.text} {e.text_pair}" for e in splits.train]


def split_words(text: str, max_words: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_words`` whitespace-separated words.

    Whole sentences (ending in ``.``, ``!`` or ``?``) are packed greedily into a piece; a
    sentence longer than ``max_words`` is cut into windows. Whitespace is normalised to single
    spaces. Text without spaces (e.g. Chinese) counts as one word.

    Raises:
        ValueError: ``max_words < 1``.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    words = text.split()
    if len(words) <= max_words:
        return [" ".join(words)] if words else []
    sentences: list[list[str]] = [[]]
    for word in words:
        sentences[-1].append(word)
        if word.endswith(_SENTENCE_END):
            sentences.append([])
    pieces: list[list[str]] = []
    current: list[str] = []
    for sentence in filter(None, sentences):
        if len(current) + len(sentence) <= max_words:
            current += sentence
            continue
        if current:
            pieces.append(current)
        while len(sentence) > max_words:
            pieces.append(sentence[:max_words])
            sentence = sentence[max_words:]
        current = sentence
    if current:
        pieces.append(current)
    return [" ".join(p) for p in pieces]


def chunk_texts(texts: list[str], max_words: int | None) -> list[str]:
    """``texts``, each split by :func:`split_words` when ``max_words`` is given."""
    if max_words is None:
        return texts
    return [piece for text in texts for piece in split_words(text, max_words)]


def _is_heading(line: str) -> bool:
    """WikiText headings look like `` = Title = `` or `` = = Section = = ``."""
    text = line.strip()
    return len(text) >= 3 and text.startswith("= ") and text.endswith(" =")


def load_unlabelled_text(
    path: str | os.PathLike, *, max_words: int | None = None, encoding: str = "utf-8"
) -> list[str]:
    """Read unlabelled text: one paragraph per line (e.g. WikiText).

    Blank lines and WikiText headings (`` = Title = ``) are skipped; other lines are stripped.

    Args:
        path: Plain-text file.
        max_words: If set, split paragraphs into pieces of at most this many words
            (see :func:`split_words`).
        encoding: Text encoding of the file.

    Returns:
        The paragraphs (or pieces), in file order.

    Raises:
        DataError: Missing, empty or undecodable file, or a file with headings only.
    """
    paragraphs = [
        line.strip()
        for line in read_lines(path, encoding=encoding)
        if line.strip() and not _is_heading(line)
    ]
    if not paragraphs:
        raise DataError("no text: only blank lines and headings", path=str(path))
    return chunk_texts(paragraphs, max_words)


def task_sentences(splits: DatasetSplits) -> list[str]:
    """Return a task's training sentences without labels, for stage-1 distillation.

    For sentence pairs, both sentences are returned, each as its own entry.
    """
    sentences = []
    for example in splits.train:
        sentences.append(example.text)
        if example.text_pair is not None:
            sentences.append(example.text_pair)
    return sentences
