"""The augmentation rules (Tang et al. 2019): masking, POS-guided replacement, n-gram sampling."""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)


class PosVocabulary:
    """Training words per POS tag with their counts: the re-normalised unigram distribution.

    Args:
        tagged: ``(word, tag)`` lists of the training sentences.
    """

    def __init__(self, tagged: Iterable[Sequence[tuple[str, str]]]):
        counts: dict[str, dict[str, int]] = {}
        for sentence in tagged:
            for word, tag in sentence:
                by_word = counts.setdefault(tag, {})
                by_word[word] = by_word.get(word, 0) + 1
        # Insertion order (first occurrence in the data) keeps sampling reproducible.
        self.words = {tag: list(c) for tag, c in counts.items()}
        self._cum: dict[str, list[int]] = {}
        for tag, c in counts.items():
            total, cum = 0, []
            for n in c.values():
                total += n
                cum.append(total)
            self._cum[tag] = cum
        self.counts = counts

    def __contains__(self, tag: str) -> bool:
        return tag in self.words

    def __len__(self) -> int:
        return len(self.words)

    def sample(self, tag: str, rng: random.Random) -> str:
        """A word of ``tag`` drawn with probability proportional to its training count.

        Raises:
            KeyError: ``tag`` never occurs in the training data.
        """
        return rng.choices(self.words[tag], cum_weights=self._cum[tag])[0]


@dataclass(frozen=True)
class Augmentation:
    """One synthetic word sequence and how it was made (for inspection and tests).

    Attributes:
        words: The synthetic sentence's words.
        ops: Per source word: ``"keep"``, ``"mask"`` or ``"pos"``.
        span: ``(start, end)`` of the n-gram kept from the per-word result, or ``None`` when
            n-gram sampling did not fire.
    """

    words: tuple[str, ...]
    ops: tuple[str, ...]
    span: tuple[int, int] | None


def augment_words(
    words: Sequence[str],
    tags: Sequence[str],
    *,
    rng: random.Random,
    vocab: PosVocabulary,
    mask_token: str,
    p_mask: float = 0.1,
    p_pos: float = 0.1,
    p_ng: float = 0.25,
    ngram_max: int = 5,
) -> Augmentation:
    """Apply Tang et al.'s three rules once to a tagged sentence (see the module docstring)."""
    out: list[str] = []
    ops: list[str] = []
    for word, tag in zip(words, tags, strict=True):
        x = rng.random()
        if x < p_mask:
            out.append(mask_token)
            ops.append("mask")
        elif x < p_mask + p_pos:
            out.append(vocab.sample(tag, rng))
            ops.append("pos")
        else:
            out.append(word)
            ops.append("keep")
    span = None
    if out and rng.random() < p_ng:
        n = min(rng.randint(1, ngram_max), len(out))
        start = rng.randint(0, len(out) - n)
        span = (start, start + n)
        out = out[start : start + n]
    return Augmentation(tuple(out), tuple(ops), span)


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Settings of :func:`augment_dataset` (defaults: Tang et al. / SpikeBERT)."""

    n_iter: int = 20
    """Synthetic candidates per training sentence (duplicates are then dropped)."""
    p_mask: float = 0.1
    """Per-word probability of masking."""
    p_pos: float = 0.1
    """Per-word probability of a POS-guided replacement."""
    p_ng: float = 0.25
    """Per-sentence probability of n-gram sampling."""
    ngram_max: int = 5
    """n-gram sampling keeps ``n ~ U{1..ngram_max}`` words."""
    seed: int = 0
    """Seed of every random draw."""
    keep_original: bool = True
    """Also write the training sentences themselves (gold label + teacher logits)."""
    max_length: int = 128
    """Tokens per sentence for the teacher (truncation)."""
    batch_size: int = 64
    """Sentences per teacher forward."""
    chunk_size: int = 256
    """Source sentences generated, labelled and written at a time (bounds memory)."""

    def __post_init__(self) -> None:
        if self.n_iter < 0:
            raise ValueError(f"--n-iter must be >= 0, got {self.n_iter}")
        for name in ("p_mask", "p_pos", "p_ng"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1]")
        if self.p_mask + self.p_pos > 1.0:
            raise ValueError("--p-mask + --p-pos must be <= 1 (one draw chooses between them)")
        if self.ngram_max < 1:
            raise ValueError(f"ngram_max must be >= 1, got {self.ngram_max}")
        if self.batch_size < 1 or self.chunk_size < 1 or self.max_length < 2:
            raise ValueError("batch_size and chunk_size must be >= 1, max_length >= 2")


def sentence_digest(text: str, pair: str | None) -> bytes:
    """A 16-byte key of a sentence (and its pair) for de-duplication."""
    # 16-byte digests instead of the strings: a 20x transfer set of a large task stays small.
    key = text if pair is None else f"{text}\x00{pair}"
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()


def _augment_one(
    tagged: Sequence[tuple[str, str]],
    rng: random.Random,
    vocab: PosVocabulary,
    mask_token: str,
    joiner: str,
    cfg: AugmentConfig,
) -> str:
    words = [w for w, _ in tagged]
    tags = [t for _, t in tagged]
    aug = augment_words(
        words,
        tags,
        rng=rng,
        vocab=vocab,
        mask_token=mask_token,
        p_mask=cfg.p_mask,
        p_pos=cfg.p_pos,
        p_ng=cfg.p_ng,
        ngram_max=cfg.ngram_max,
    )
    return joiner.join(aug.words)


def synthesize(
    index: int,
    tagged: Sequence[tuple[str, str]],
    tagged_pair: Sequence[tuple[str, str]] | None,
    original: tuple[str, str | None],
    *,
    vocab: PosVocabulary,
    mask_token: str,
    joiner: str,
    cfg: AugmentConfig,
    seen: set[bytes],
) -> list[tuple[str, str | None]]:
    """The new, deduplicated synthetic ``(text, text_pair)`` of training example ``index``.

    ``seen`` holds digests of every sentence kept so far (training sentences included) and is
    updated. Pairs cycle through: first sentence only, second only, both.
    """
    rng = random.Random(f"{cfg.seed}:{index}")
    text, pair = original
    out = []
    for k in range(cfg.n_iter):
        mode = ("first", "second", "both")[k % 3] if tagged_pair is not None else "first"
        new_text = (
            _augment_one(tagged, rng, vocab, mask_token, joiner, cfg) if mode != "second" else text
        )
        new_pair = pair
        if tagged_pair is not None and mode != "first":
            new_pair = _augment_one(tagged_pair, rng, vocab, mask_token, joiner, cfg)
        if not new_text.strip() or (new_pair is not None and not new_pair.strip()):
            continue
        key = sentence_digest(new_text, new_pair)
        if key in seen:
            continue
        seen.add(key)
        out.append((new_text, new_pair))
    return out
