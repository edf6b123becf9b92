"""Periodic training checkpoints and resuming from them.

A checkpoint is a folder ``OUT/checkpoints/step-N/`` holding:

- ``model.safetensors``: the objective's trainable state (the student and the distiller's
  projections, or the fine-tuned model), frozen teacher weights left out;
- ``best.safetensors``: the best-so-far weights of the selected module (when there are any);
- ``trainer_state.pt``: optimizer, scheduler, grad-scaler, step, data position, the RNG states of
  every rank (Python, NumPy, torch, CUDA), the selection state and the train-log offset; loaded
  with ``torch.load(weights_only=True)``;
- ``meta.json``: step, settings and the size of every file, written last.

Writes are atomic at the folder level: everything goes to a hidden ``.tmp-step-N-*`` folder, each
file is flushed to disk, and one ``rename`` to ``step-N`` publishes it. Only such folders with a
``meta.json`` count as complete, so a crash or ``kill -9`` at any moment leaves the previous
checkpoints intact; leftover temporary folders are removed at the next start.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikeformers.errors import CheckpointError

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
WEIGHTS = "model.safetensors"
BEST = "best.safetensors"
STATE = "trainer_state.pt"
META = "meta.json"
FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step-(\d+)$")

# TrainConfig fields that shape the trajectory: a resumed run must use the same values.
TRAJECTORY_FIELDS = (
    "epochs",
    "max_steps",
    "batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "warmup_ratio",
    "grad_clip",
    "evals_per_epoch",
    "seed",
    "grad_accum",
    "drop_last",
    "precision",
)


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    """Where and how often to checkpoint, and whether to resume."""

    dir: Path
    """Folder of the ``step-N`` checkpoints (``OUT/checkpoints``)."""
    save_every: int = 0
    """Optimizer steps between checkpoints (0: none)."""
    keep_last: int = 2
    """Complete checkpoints kept (older ones are deleted)."""
    resume: bool = False
    """Continue from the latest complete checkpoint in ``dir`` (from scratch when there is none)."""

    def __post_init__(self) -> None:
        if self.save_every < 0:
            raise ValueError(f"--save-every must be >= 0, got {self.save_every}")
        if self.keep_last < 1:
            raise ValueError(f"--keep-checkpoints must be >= 1, got {self.keep_last}")


def complete_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint in ``directory``, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / META).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def prepare(
    out: Path,
    *,
    save_every: int,
    keep_last: int,
    resume: bool,
    overwrite: bool,
    train_config: Any,
    is_main: bool = True,
) -> CheckpointConfig | None:
    """Check ``OUT/checkpoints`` before a run starts; return the run's checkpoint settings.

    Refuses to start from scratch over the checkpoints of an earlier run (unless ``overwrite``,
    which deletes them), and refuses to resume with different training settings. Removes
    temporary folders left by an interrupted write.
    """
    cfg = CheckpointConfig(
        dir=out / CHECKPOINT_DIR, save_every=save_every, keep_last=keep_last, resume=resume
    )
    # other ranks skip the listing when rank 0 may be deleting the folder (--overwrite)
    existing = complete_checkpoints(cfg.dir) if is_main or resume or not overwrite else []
    if existing and not resume:
        if not overwrite:
            raise ValueError(
                f"{cfg.dir} holds checkpoints of an earlier run (up to step {existing[-1][0]}): "
                "pass --resume to continue it, or --overwrite to start over"
            )
        if is_main:
            logger.warning("--overwrite: deleting %d earlier checkpoint(s)", len(existing))
            shutil.rmtree(cfg.dir)
        existing = []
    if is_main and cfg.dir.is_dir():
        for p in cfg.dir.iterdir():
            if p.name.startswith((".tmp-", ".trash-")):
                shutil.rmtree(p, ignore_errors=True)
    if resume and existing:
        meta = _read_meta(existing[-1][1])
        check_compatible(meta.get("train_config", {}), train_config, existing[-1][1])
    if not resume and not save_every:
        return None
    return cfg


def check_compatible(saved: dict, train_config: Any, where: Path) -> None:
    """Raise if ``train_config`` differs from a checkpoint's in a field that shapes training."""
    now = asdict(train_config)
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}"
        for k in TRAJECTORY_FIELDS
        if k in saved and saved.get(k) != now.get(k)
    ]
    if diffs:
        raise ValueError(
            f"cannot resume from {where}: the training settings differ ({'; '.join(diffs)}); "
            "pass the same settings as the interrupted run"
        )


# -- RNG -------------------------------------------------------------------------------------


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The state of every RNG that training draws from (plain types: ``weights_only``-safe)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list | tuple) else x


# -- weights ---------------------------------------------------------------------------------


def trainable_state(objective: nn.Module) -> dict[str, torch.Tensor]:
    """The objective's state dict without frozen parameters (e.g. the teacher's), on CPU."""
    frozen = {n for n, p in objective.named_parameters() if not p.requires_grad}
    # copy=True: separate storage per tensor (safetensors refuses shared memory, e.g. ties)
    return {
        k: v.detach().to("cpu", copy=True).contiguous()
        for k, v in objective.state_dict().items()
        if k not in frozen
    }


def load_trainable_state(objective: nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """Load :func:`trainable_state` output; only frozen parameters may be missing."""
    frozen = {n for n, p in objective.named_parameters() if not p.requires_grad}
    expected = objective.state_dict()
    missing = sorted(set(expected) - set(state) - frozen)
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{where} does not match this run's model: missing {missing[:10]}, unexpected "
            f"{unexpected[:10]}, shape mismatches {shapes[:10]}"
        )
    objective.load_state_dict(state, strict=False)


# -- writing ---------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(state, str(path), metadata={"format": "pt"})


def _write_trainer_state(path: Path, state: dict[str, Any]) -> None:
    torch.save(state, path)


def save(
    directory: Path,
    step: int,
    *,
    weights: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor] | None,
    trainer_state: dict[str, Any],
    meta: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the last ``keep_last``.

    Returns:
        The published folder ``directory/step-<step>``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step}"
    tmp = directory / f".tmp-step-{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_weights(tmp / WEIGHTS, weights)
        if best is not None:
            _write_weights(tmp / BEST, best)
        _write_trainer_state(tmp / STATE, trainer_state)
        files = {p.name: p.stat().st_size for p in tmp.iterdir()}
        meta = {"format": FORMAT_VERSION, "step": step, **meta, "files": files}
        (tmp / META).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        for p in tmp.iterdir():
            _fsync(p)
        if final.exists():  # an older run's (or a failed resume's) folder of the same step
            trash = directory / f".trash-step-{step}-{os.getpid()}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)  # the commit point
        _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in complete_checkpoints(directory)[:-keep_last]:
        trash = directory / f".trash-{old.name}-{os.getpid()}"
        os.replace(old, trash)  # never leave a half-deleted folder that looks complete
        shutil.rmtree(trash, ignore_errors=True)
    return final


# -- reading ---------------------------------------------------------------------------------


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder / META}: unreadable ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{folder / META}: not a spikeformers checkpoint (format 1)")
    return meta


@dataclass
class Loaded:
    """A checkpoint read back from disk."""

    folder: Path
    step: int
    weights: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    state: dict[str, Any]
    meta: dict[str, Any]


def load(folder: Path) -> Loaded:
    """Read and validate one checkpoint folder (raises ``CheckpointError`` naming the file)."""
    from safetensors.torch import load_file

    meta = _read_meta(folder)
    for name, size in meta.get("files", {}).items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != size:
            raise CheckpointError(f"{p}: missing or truncated (expected {size} bytes)")

    def tensors(p: Path) -> dict[str, torch.Tensor]:
        try:
            return load_file(str(p))
        except Exception as e:  # safetensors raises several types for corrupt files
            raise CheckpointError(f"{p}: cannot read weights ({e})") from e

    weights = tensors(folder / WEIGHTS)
    best = tensors(folder / BEST) if (folder / BEST).is_file() else None
    try:
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip errors for damaged files
        raise CheckpointError(f"{folder / STATE}: cannot read trainer state ({e})") from e
    return Loaded(folder, int(meta["step"]), weights, best, state, meta)


def discard_after(directory: Path, step: int) -> None:
    """Delete complete checkpoints newer than ``step`` (damaged ones skipped by a resume)."""
    for s, folder in complete_checkpoints(directory):
        if s > step:
            trash = directory / f".trash-{folder.name}-{os.getpid()}"
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)


def load_latest(directory: Path) -> Loaded | None:
    """The newest checkpoint that loads; older ones are tried when a newer one is damaged.

    Returns:
        ``None`` when ``directory`` holds no complete checkpoint.

    Raises:
        CheckpointError: Checkpoints exist but none can be read.
    """
    problems = []
    for _, folder in reversed(complete_checkpoints(directory)):
        try:
            return load(folder)
        except CheckpointError as e:
            logger.warning("skipping damaged checkpoint: %s", e)
            problems.append(str(e))
    if problems:
        raise CheckpointError("no checkpoint could be read: " + "; ".join(problems))
    return None
