"""Run folders: refusing to overwrite another run, ``run_config.json`` and ``run.log``."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spikeformers import __version__
from spikeformers.errors import RunDirError  # noqa: F401  (re-exported here)
from spikeformers.utils.io import write_json


@dataclass(frozen=True, kw_only=True)
class CheckpointArgs:
    """Periodic checkpoints and resuming (see ``docs/SCALING.md``)."""

    save_every: int = 0
    """Optimizer steps between checkpoints in ``OUT/checkpoints/step-N`` (0: none)."""
    keep_last: int = 2
    """Complete checkpoints kept."""
    resume: bool = False
    """Continue from the latest complete checkpoint (from scratch when there is none)."""


def prepare_out_dir(out_dir: str | Path, kind: str, *, overwrite: bool = False) -> Path:
    """Create ``out_dir``; refuse one that already holds a different kind of run.

    A directory with a ``run_config.json`` of another command (or any model not produced by this
    command) is refused unless ``overwrite``: finished work is never silently replaced by a
    different run.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out}: exists and is not a folder")
    rc = out / "run_config.json"
    if rc.is_file() and not overwrite:
        import json

        try:
            prev = json.loads(rc.read_text(encoding="utf-8")).get("command")
        except (ValueError, UnicodeDecodeError):
            prev = None
        if prev != kind:
            raise RunDirError(
                f"{out} already holds a {prev or 'different'} run; choose another --out or pass "
                "--overwrite"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_run_config(out: Path, command: str, **settings: Any) -> None:
    """Record every resolved setting of a run in ``run_config.json``."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.asdict(v)
        if isinstance(v, Path | torch.device):
            return str(v)
        return v

    write_json(
        out / "run_config.json",
        {
            "command": command,
            "spikeformers_version": __version__,
            **{k: plain(v) for k, v in settings.items()},
        },
    )


def attach_file_log(out: Path, enabled: bool = True) -> logging.Handler | None:
    if not enabled:  # other ranks of a distributed run: rank 0 writes run.log
        return None
    handler = logging.FileHandler(out / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("spikeformers").addHandler(handler)
    return handler


def detach_file_log(handler: logging.Handler | None) -> None:
    if handler is None:
        return
    logging.getLogger("spikeformers").removeHandler(handler)
    handler.close()
