"""``masked_mean``: the token mean over real tokens, checked against hand arithmetic."""

from __future__ import annotations

import pytest
import torch

from spikeformers.layers import masked_mean


def test_masked_mean_over_tokens_by_hand():
    h = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 8.0], [9.0, 0.0]]]
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = masked_mean(h, mask, dim=1)  # [B, L, D] -> [B, D]
    torch.testing.assert_close(out, torch.tensor([[2.0, 3.0], [7.0, 14.0 / 3.0]]))
    assert masked_mean(h, None, dim=1).tolist() == h.mean(1).tolist()


def test_masked_mean_time_first_layout_and_an_all_padding_row():
    h = torch.arange(2 * 2 * 3 * 1, dtype=torch.float32).reshape(2, 2, 3, 1)  # [T, B, L, D]
    mask = torch.tensor([[1, 0, 1], [0, 0, 0]])
    out = masked_mean(h, mask, dim=2)  # -> [T, B, D]
    # t=0: row 0 averages tokens 0 and 2 (values 0, 2); row 1 has no real token -> 0.
    # t=1: row 0 averages values 6 and 8.
    assert out.squeeze(-1).tolist() == [[1.0, 0.0], [7.0, 0.0]]


def test_masked_mean_needs_a_batch_axis_before_the_tokens():
    with pytest.raises(ValueError, match="dim=0"):
        masked_mean(torch.zeros(3, 2), torch.ones(1, 3), dim=0)
