"""Every error type spikeformers raises on purpose, importable from one place.

This module imports nothing of the package at load time, so any layer may import it. Errors
defined here: :class:`CheckpointError` (a saved model or training checkpoint cannot be loaded).
The others are re-exported from the modules that still define them (resolved on first access,
so importing ``spikeformers.errors`` never pulls in a higher layer); they move here as those
modules are refactored.
"""

from __future__ import annotations

import importlib
from typing import Any


class CheckpointError(ValueError):
    """A saved model cannot be loaded: missing files, corrupt data or mismatched weights."""


# name -> module that defines it today (re-exported lazily; see the module docstring)
_ELSEWHERE = {
    "CardError": "spikeformers.cards",
    "DataError": "spikeformers.data.examples",
    "MissingDependencyError": "spikeformers.data.examples",
    "RunDirError": "spikeformers.pipeline",
    "TeacherError": "spikeformers.distill.teacher",
    "VocabularyMismatchError": "spikeformers.distill.distiller",
}

__all__ = ["CheckpointError", *sorted(_ELSEWHERE)]


def __getattr__(name: str) -> Any:
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
