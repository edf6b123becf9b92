"""Layer mapping for any student/teacher depths."""

import pytest

from spikeformers.distill.layer_map import map_layers


@pytest.mark.parametrize(
    ("n_s", "n_t", "expected"),
    [
        (4, 12, [3, 6, 9, 12]),  # SpikingBERT / TinyBERT's 12 -> 4
        (6, 12, [2, 4, 6, 8, 10, 12]),  # the divisor case the public int(12/depth) handles
        (5, 12, [3, 5, 8, 10, 12]),  # ceil(12/5*(i+1)): 2.4->3, 4.8->5, 7.2->8, 9.6->10, 12
        (4, 6, [2, 3, 5, 6]),  # ceil(1.5, 3, 4.5, 6)
        (2, 4, [2, 4]),
        (4, 2, [1, 1, 2, 2]),  # deeper student than teacher
        (1, 6, [6]),
    ],
)
def test_uniform_map(n_s, n_t, expected):
    assert map_layers(n_s, n_t) == expected


def test_skip_first_maps_onto_upper_layers():
    # span = 12 - 4 = 8 over 4 students: 4 + ceil(2, 4, 6, 8)
    assert map_layers(4, 12, skip_first=4) == [6, 8, 10, 12]


@pytest.mark.parametrize("args", [(0, 12), (4, 0), (4, 12, 12)])
def test_bad_depths_raise(args):
    with pytest.raises(ValueError):
        map_layers(*args[:2], skip_first=args[2] if len(args) > 2 else 0)
