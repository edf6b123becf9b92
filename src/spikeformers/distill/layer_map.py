"""Which teacher layer each student layer learns from."""

from __future__ import annotations

import math


def map_layers(n_student: int, n_teacher: int, *, skip_first: int = 0) -> list[int]:
    """Uniform layer map for any depths.

    Student layer ``i`` (0-based) is matched to teacher hidden state
    ``skip_first + ceil((i + 1) * (n_teacher - skip_first) / n_student)``, where teacher hidden
    state 0 is the embedding output and ``k`` is the output of teacher layer ``k``. The last
    student layer always meets the last teacher layer. Examples: 12 -> 4 gives ``[3, 6, 9, 12]``;
    6 -> 4 gives ``[2, 3, 5, 6]``; 2 -> 4 gives ``[1, 1, 2, 2]``.
    (The public SpikeBERT code's ``int(12 / depth)`` stride only works for divisors of 12.)

    Args:
        n_student: Student depth (number of feature layers).
        n_teacher: Teacher depth (number of transformer layers).
        skip_first: Teacher layers to leave out at the bottom.

    Returns:
        ``n_student`` teacher hidden-state indices in ``1..n_teacher``, non-decreasing.
    """
    if n_student < 1 or n_teacher < 1:
        raise ValueError(f"depths must be >= 1, got student {n_student}, teacher {n_teacher}")
    if not 0 <= skip_first < n_teacher:
        raise ValueError(f"skip_first must be in [0, {n_teacher}), got {skip_first}")
    span = n_teacher - skip_first
    return [skip_first + math.ceil((i + 1) * span / n_student) for i in range(n_student)]
