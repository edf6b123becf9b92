"""Device selection."""

from __future__ import annotations

import torch


def pick_device(device: str | None = None) -> torch.device:
    """Resolve ``device``: ``None`` or ``"auto"`` means CUDA when present, else CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    return dev
