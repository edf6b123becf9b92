"""Record the pipeline calls a workflow makes (stand-ins that write nothing but empty folders).

Used to check that the quickstart, as a caller of the recipe runner, makes the same calls in the
same order with the same arguments as the quickstart did before the runner existed
(``quickstart_calls_fast.json`` was recorded from that code, commit fda3588).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

RECORDED = ("finetune_teacher", "distill", "train_direct", "evaluate_model", "load_data")


def normalise(value: Any, out: Path) -> Any:
    """JSON-able form of a call argument: paths relative to ``out``, dataclasses as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **normalise(dataclasses.asdict(value), out)}
    if isinstance(value, dict):
        return {str(k): normalise(v, out) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [normalise(v, out) for v in value]
    if isinstance(value, Path) or (isinstance(value, str) and value.startswith(str(out))):
        p = Path(value)
        try:
            return "OUT/" + str(p.relative_to(out))
        except ValueError:
            return str(p)
    return value


def _text_file(path: str) -> dict:
    data = Path(path).read_bytes()
    return {"lines": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()[:16]}


class Recorder:
    """Stand-ins for the pipeline functions and ``energy_of_run`` that log their calls."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.calls: list[dict] = []

    def _log(self, name: str, kwargs: dict) -> None:
        args = dict(kwargs)
        if args.get("unlabelled_file"):
            args["unlabelled_file"] = _text_file(args["unlabelled_file"])
        self.calls.append({"call": name, "kwargs": normalise(args, self.out)})

    def training(self, name: str, real_load_data):
        def fn(**kwargs):
            self._log(name, kwargs)
            Path(kwargs["out_dir"]).mkdir(parents=True, exist_ok=True)
            return {"validation": {"accuracy": 0.5}}

        return fn

    def evaluate_model(self, **kwargs):
        self._log("evaluate_model", kwargs)
        return {"accuracy": 0.5, "f1": 0.5, "num_examples": 4, "firing_rate": 0.25}

    def load_data(self, real):
        def fn(args, **kwargs):
            self._log("load_data", {"args": args, **kwargs})
            return real(args, **kwargs)

        return fn

    def energy_of_run(self, model_dir, data, **kwargs):
        self._log("energy_of_run", {"model_dir": model_dir, "data": data, **kwargs})
        teacher = SimpleNamespace(energy_pj_paper=4e6, energy_pj_full=8e6)
        report = SimpleNamespace(
            num_samples=kwargs.get("max_samples"),
            energy_pj_paper=1e6,
            energy_pj_full=2e6,
            teacher=teacher,
            ratio_paper=0.25,
            ratio_full=0.25,
        )
        return report, {"constants": {"name": "45nm"}}

    def dumps(self) -> str:
        return json.dumps(self.calls, indent=1, sort_keys=True)
