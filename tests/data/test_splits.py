"""Seeded, stratified splits."""

from __future__ import annotations

from collections import Counter

import pytest

from spikeformers.data import Example, stratified_split
from spikeformers.data.splits import stratified_indices


def make_examples():
    # 60 of class 0, 30 of class 1, 10 of class 2 (proportions 6:3:1)
    labels = [0] * 60 + [1] * 30 + [2] * 10
    return [Example(f"text {i}", label=label) for i, label in enumerate(labels)]


def test_same_seed_gives_same_split_and_other_seed_differs():
    examples = make_examples()
    first = stratified_split(examples, validation_fraction=0.1, test_fraction=0.2, seed=7)
    again = stratified_split(examples, validation_fraction=0.1, test_fraction=0.2, seed=7)
    other = stratified_split(examples, validation_fraction=0.1, test_fraction=0.2, seed=8)
    assert first == again
    assert first[1] != other[1]


def test_split_is_stratified_disjoint_and_complete():
    examples = make_examples()
    train, validation, test = stratified_split(
        examples, validation_fraction=0.1, test_fraction=0.2, seed=0
    )
    # 10% of 100 = 10 validation items: 6/3/1 by class; 20% = 20 test items: 12/6/2.
    assert Counter(e.label for e in validation) == {0: 6, 1: 3, 2: 1}
    assert Counter(e.label for e in test) == {0: 12, 1: 6, 2: 2}
    assert Counter(e.label for e in train) == {0: 42, 1: 21, 2: 7}
    texts = [e.text for e in train + validation + test]
    assert len(texts) == len(set(texts)) == len(examples)  # no overlap, nothing lost
    # each part keeps the original order
    for part in (train, validation, test):
        positions = [examples.index(e) for e in part]
        assert positions == sorted(positions)


def test_uneven_class_sizes_still_give_exact_totals():
    keys = ["a"] * 7 + ["b"] * 5 + ["c"] * 3  # 15 items, 20% -> 3 validation items
    train, validation, test = stratified_indices(
        keys, validation_fraction=0.2, test_fraction=0.0, seed=1
    )
    assert len(validation) == 3 and test == [] and len(train) == 12
    assert sorted(train + validation) == list(range(15))


def test_regression_targets_split_without_strata():
    examples = [Example(str(i), label=i / 10) for i in range(20)]
    train, validation, test = stratified_split(
        examples, validation_fraction=0.25, test_fraction=0.0, seed=0
    )
    assert len(validation) == 5 and len(train) == 15


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.0), (1.0, 0.0), (0.6, 0.5)])
def test_bad_fractions_are_rejected(val, test):
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(make_examples(), validation_fraction=val, test_fraction=test, seed=0)
