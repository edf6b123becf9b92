"""The on-disk layout of a saved model: file names and reading its ``config.json``.

Below the model layer, so the registry can tell a saved model's ``model_type`` without importing
a family.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spikeformers.errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read ``directory/config.json``, raising ``CheckpointError`` with the path on failure."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (is {directory} a saved spikeformers model?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
