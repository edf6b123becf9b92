"""Experiment tracking: ``--report-to {none,tensorboard,wandb,mlflow}`` (several allowed).

The training loop (:func:`spikeformers.trainer.fit`) hands every record it writes to
``train_log.jsonl`` to its callbacks; :class:`TrackingCallback` turns a record into scalars and
sends them to each tracker. Everything works offline and writes inside the run folder:

- ``tensorboard``: event files under ``RUN/tensorboard/`` (``torch.utils.tensorboard``; needs the
  ``tensorboard`` package). On resume the writer purges events at or after the first step it logs,
  so a resumed run shows no duplicate points.
- ``wandb``: a W&B run in offline mode under ``RUN/wandb/`` (``wandb sync`` uploads it later);
  set ``WANDB_MODE=online`` to log live instead.
- ``mlflow``: a local MLflow file store ``RUN/mlruns/`` (``mlflow ui --backend-store-uri
  RUN/mlruns`` shows it).

What is logged (tag names):

- ``train/<term>``: every loss term of the objective (``loss``, ``ce``, ``logit``, ``feat``...),
  the global-batch mean on each log step; ``train/lr``: the learning rate;
  ``train/steps_per_s``: optimizer steps per wall-clock second between two log records
  (validation passes in between included);
- ``train/examples_per_s`` and ``train/tokens_per_s``: global training examples and real
  (non-padding, ``attention_mask``) tokens per second of training time over the steps since the
  previous training record, from the ``interval`` the loop adds to the records it hands its
  callbacks (not written to ``train_log.jsonl``; validation and checkpoint time excluded;
  ``tokens_per_s`` only when the batches carry a host-side mask);
- ``validation/<metric>``: the validation metrics (accuracy, F1..., ``firing_rate``, and
  ``spikes_per_token``: the spikes of every spiking layer over all time steps per real token,
  i.e. the sum over layers of firing rate x neurons x time steps per token);
- ``firing_rate/<layer>``: per spiking layer, from the validation pass (spiking models only).

No spikes/s is logged: the training forwards are not hooked (counting their spikes would cost a
host sync per step), so the records hold spike counts of validation passes only. An estimate of
training spikes/s is ``validation/spikes_per_token x train/tokens_per_s`` (validation runs in eval
mode, without dropout, so it is an estimate, not a measurement).

Run parameters (the flattened ``run_config.json``) go to W&B's config and MLflow's params; the
trackers start at the first record, so a run that fails before training leaves nothing behind.
None of these packages is a dependency: ``pip install 'spikeformers[track]'`` (or the one package)
installs them; a missing one is reported before any training starts.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPORT_TO_CHOICES = ("none", "tensorboard", "wandb", "mlflow")
# --report-to NAME -> (module to import, pip package)
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}
_PACKAGES["mlflow"] = ("mlflow", "mlflow-skinny")


def resolve_report_to(values: Iterable[str] | None) -> list[str]:
    """Validated tracker names in order, without duplicates; ``none`` (or nothing) -> ``[]``.

    Raises:
        ValueError: an unknown name, or ``none`` given together with a tracker.
        ImportError: a tracker's package is missing (names the extra to install).
    """
    names: list[str] = []
    for v in values or []:
        if v not in REPORT_TO_CHOICES:
            raise ValueError(f"--report-to {v!r}: choose from {', '.join(REPORT_TO_CHOICES)}")
        if v not in names:
            names.append(v)
    if "none" in names and len(names) > 1:
        raise ValueError("--report-to none cannot be combined with a tracker")
    names = [n for n in names if n != "none"]
    for n in names:
        module, package = _PACKAGES[n]
        if importlib.util.find_spec(module) is None:
            raise ImportError(
                f"--report-to {n} needs the {package!r} package, which is not installed: "
                f"pip install {package} (or pip install 'spikeformers[track]')"
            )
    return names


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a/b/c": leaf}`` (lists and other leaves kept as they are)."""
    if not isinstance(obj, dict):
        return {prefix: obj} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def _is_scalar(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def record_scalars(record: dict) -> tuple[int, dict[str, float]]:
    """The step and the tagged scalars of one ``train_log.jsonl`` record (see the module doc)."""
    step = int(record["step"])
    scalars: dict[str, float] = {}
    if "validation" in record:
        metrics = dict(record["validation"])
        rates = metrics.pop("firing_rates", None) or {}
        for k, v in flatten(metrics, "validation").items():
            if _is_scalar(v):
                scalars[k] = float(v)
        for layer, v in rates.items():
            if _is_scalar(v):
                scalars[f"firing_rate/{layer}"] = float(v)
        return step, scalars
    for k, v in record.items():
        if k != "step" and _is_scalar(v):
            scalars[f"train/{k}"] = float(v)
    scalars.update(throughput(record.get("interval")))
    return step, scalars


def throughput(interval: dict | None) -> dict[str, float]:
    """``train/examples_per_s`` and ``train/tokens_per_s`` of a record's ``interval`` (see
    :class:`~spikeformers.trainer.TrainCallback`); ``{}`` without one or without time."""
    if not interval or not _is_scalar(interval.get("seconds")) or interval["seconds"] <= 0:
        return {}
    out = {}
    for key in ("examples", "tokens"):
        if _is_scalar(interval.get(key)):
            out[f"train/{key}_per_s"] = interval[key] / interval["seconds"]
    return out


class Tracker:
    """One backend. Subclasses start it lazily in ``_start`` (at the first record)."""

    name = "tracker"

    def __init__(self, out: Path, params: dict[str, Any]):
        self.out = Path(out)
        self.params = params
        self.started = False

    def _start(self, first_step: int) -> None:
        raise NotImplementedError

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Send ``scalars`` (tag -> value) at ``step``."""
        if not self.started:
            self._start(step)
            self.started = True
        self._log(step, scalars)

    def _log(self, step: int, scalars: dict[str, float]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and close (no-op if never started)."""


class TensorBoardTracker(Tracker):
    """Event files under ``OUT/tensorboard``."""

    name = "tensorboard"

    def _start(self, first_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: a resumed run drops the events the interrupted run wrote from here on
        self.writer = SummaryWriter(log_dir=str(self.out / "tensorboard"), purge_step=first_step)
        if self.params:
            text = "\n".join(f"    {k}: {v}" for k, v in sorted(self.params.items()))
            self.writer.add_text("run_config", text, global_step=first_step)

    def _log(self, step: int, scalars: dict[str, float]) -> None:
        for tag, v in scalars.items():
            self.writer.add_scalar(tag, v, global_step=step)
        self.writer.flush()

    def close(self) -> None:  # noqa: D102
        if self.started:
            self.writer.close()


class WandbTracker(Tracker):
    """A W&B run under ``OUT/wandb``, offline unless ``WANDB_MODE`` says otherwise."""

    name = "wandb"

    def _start(self, first_step: int) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "spikeformers"),
            name=self.out.name,
            dir=str(self.out),
            mode=os.environ.get("WANDB_MODE", "offline"),
            config=self.params,
        )

    def _log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:  # noqa: D102
        if self.started:
            self.run.finish()


class MlflowTracker(Tracker):
    """A local MLflow file store ``OUT/mlruns`` (experiment ``spikeformers``)."""

    name = "mlflow"

    def _start(self, first_step: int) -> None:
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri((self.out / "mlruns").resolve().as_uri())
        mlflow.set_experiment("spikeformers")
        self.run = mlflow.start_run(run_name=self.out.name)
        # MLflow params are strings of at most 6000 characters (500 in old versions)
        params = {k: str(v)[:500] for k, v in self.params.items()}
        if params:
            mlflow.log_params(params)

    def _log(self, step: int, scalars: dict[str, float]) -> None:
        # MLflow metric names allow letters, digits, _ - . / and spaces
        clean = {
            "".join(c if c.isalnum() or c in "_-./ " else "_" for c in k): v
            for k, v in scalars.items()
        }
        self.mlflow.log_metrics(clean, step=step)

    def close(self) -> None:  # noqa: D102
        if self.started:
            self.mlflow.end_run()


TRACKERS: dict[str, type[Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "wandb": WandbTracker,
    "mlflow": MlflowTracker,
}


class TrackingCallback:
    """A :class:`~spikeformers.trainer.TrainCallback` that feeds one or more trackers."""

    def __init__(self, trackers: Sequence[Tracker]):
        self.trackers = list(trackers)
        self._last: tuple[int, float] | None = None  # (step, time) of the last training record

    def on_log(self, record: dict) -> None:  # noqa: D102
        step, scalars = record_scalars(record)
        if "validation" not in record:
            now = time.perf_counter()
            if self._last is not None and step > self._last[0]:
                scalars["train/steps_per_s"] = (step - self._last[0]) / (now - self._last[1])
            self._last = (step, now)
        for t in self.trackers:
            t.log(step, scalars)

    def on_train_end(self) -> None:  # noqa: D102
        for t in self.trackers:
            try:
                t.close()
            except Exception as e:  # a tracker failing to close must not hide the run's outcome
                logger.warning("closing the %s tracker failed: %s", t.name, e)


def run_params(out: Path) -> dict[str, Any]:
    """The run's flattened ``run_config.json`` (``{}`` when there is none yet)."""
    path = Path(out) / "run_config.json"
    if not path.is_file():
        return {}
    flat = flatten(json.loads(path.read_text(encoding="utf-8")))
    return {
        k: v if isinstance(v, int | float | str | bool) else json.dumps(v)
        for k, v in flat.items()
        if v is not None
    }


def open_trackers(report_to: Iterable[str] | None, out: str | Path, *, is_main: bool = True):
    """Callbacks for :func:`~spikeformers.trainer.fit` logging to ``report_to`` in ``out``.

    Returns ``[]`` for ``none``/nothing and on ranks other than 0 (which log nothing).
    """
    names = resolve_report_to(report_to)
    if not names or not is_main:
        return []
    params = run_params(Path(out))
    return [TrackingCallback([TRACKERS[n](Path(out), params) for n in names])]
