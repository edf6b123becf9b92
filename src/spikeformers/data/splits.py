"""Seeded, stratified train / validation / test splits for data sets published without one."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from spikeformers.data.examples import Example


def _quotas(class_sizes: Sequence[int], total: int) -> list[int]:
    """Share ``total`` among classes in proportion to their sizes (largest-remainder method)."""
    n = sum(class_sizes)
    exact = [size * total / n for size in class_sizes]
    quotas = [math.floor(x) for x in exact]
    # Hand the leftover units to the largest remainders; ties go to the earlier class.
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in order[: total - sum(quotas)]:
        quotas[i] += 1
    return quotas


def _split_count(n: int, fraction: float) -> int:
    """Number of items for ``fraction`` of ``n``: rounded, but at least 1 when ``fraction > 0``."""
    if fraction <= 0 or n < 2:
        return 0
    return max(1, round(n * fraction))


def stratified_indices(
    keys: Sequence[Hashable],
    *,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[list[int], list[int], list[int]]:
    """Split positions ``0..len(keys)-1`` into train / validation / test, stratified by key.

    The validation and test sizes are ``round(n * fraction)`` (at least one item for a positive
    fraction); each class contributes in proportion to its size (largest remainder), and the items
    of each class are chosen by a NumPy ``default_rng(seed)`` permutation, so the same keys and
    seed always give the same split. Every position lands in exactly one part; each part keeps
    the original order.

    Args:
        keys: The stratum of each item (usually its label).
        validation_fraction: Share of items for validation, in ``[0, 1)``.
        test_fraction: Share of items for test, in ``[0, 1)``.
        seed: Seed of the permutation.

    Returns:
        Sorted position lists ``(train, validation, test)``.

    Raises:
        ValueError: Fractions out of range or leaving nothing for training.
    """
    for name, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction must be < 1, got "
            f"{validation_fraction} + {test_fraction}"
        )
    n = len(keys)
    n_val = _split_count(n, validation_fraction)
    n_test = _split_count(n, test_fraction)
    if n - n_val - n_test < 1:
        raise ValueError(f"cannot split {n} items into train/validation/test with these fractions")

    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    members = list(groups.values())  # classes in order of first appearance: deterministic
    sizes = [len(m) for m in members]
    val_quota = _quotas(sizes, n_val)
    test_quota = _quotas([s - v for s, v in zip(sizes, val_quota, strict=True)], n_test)

    rng = np.random.default_rng(seed)
    train: list[int] = []
    validation: list[int] = []
    test: list[int] = []
    for idx, n_v, n_t in zip(members, val_quota, test_quota, strict=True):
        perm = [idx[j] for j in rng.permutation(len(idx))]
        validation += perm[:n_v]
        test += perm[n_v : n_v + n_t]
        train += perm[n_v + n_t :]
    return sorted(train), sorted(validation), sorted(test)


def _stratum(example: Example) -> Hashable:
    # Regression targets are not classes: one stratum (a plain seeded random split).
    return "" if isinstance(example.label, float) else example.label


def stratified_split(
    examples: Sequence[Example],
    *,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[list[Example], list[Example], list[Example]]:
    """Split examples into train / validation / test, stratified by label.

    Classification labels are the strata (unlabelled examples form one more stratum); regression
    targets (floats) are split at random without strata. See :func:`stratified_indices`.

    Returns:
        ``(train, validation, test)`` lists, each in the original order.
    """
    train, validation, test = stratified_indices(
        [_stratum(e) for e in examples],
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    return (
        [examples[i] for i in train],
        [examples[i] for i in validation],
        [examples[i] for i in test],
    )
