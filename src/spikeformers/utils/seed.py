"""Seeding.

``pick_device`` moved to :mod:`spikeformers.utils.device`; it is re-exported here for old
imports.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from spikeformers.utils.device import pick_device

__all__ = ["pick_device", "seed_everything"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a seeded CPU generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)
