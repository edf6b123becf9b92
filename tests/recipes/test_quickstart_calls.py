"""The quickstart, now a caller of the recipe runner, makes the calls the old quickstart made.

``quickstart_calls_fast.json`` holds the pipeline calls (function, arguments, order) that the
quickstart made before the runner existed (recorded from commit fda3588 with
``tests/recipes/calls.py``), for the fast config of every family; since then SpikeBERT's recipe
caches the teacher's outputs (`cache_teacher: true` added to its distill calls) and the
quickstart runs its stage 2 for 4 epochs instead of 5 (``QUICKSTART_TASK_EPOCHS``; stop 13).
Arguments equal to a function's default count as not given (passing a default explicitly is the
same call).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from spikeformers import pipeline
from spikeformers.quickstart import QuickstartConfig, quickstart
from spikeformers.trainer import TrainConfig
from spikeformers.workflows import energy as energy_workflow
from tests.recipes.calls import RECORDED, Recorder, normalise
from tests.test_quickstart import needs_defaults

EXPECTED = json.loads((Path(__file__).parent / "quickstart_calls_fast.json").read_text())
REAL = {name: getattr(pipeline, name) for name in RECORDED} | {
    "energy_of_run": energy_workflow.energy_of_run
}


_TRAIN_DEFAULTS = normalise(TrainConfig(), Path("/nonexistent"))


def _train_defaults_dropped(value):
    """``TrainConfig`` fields at their defaults count as not given, as arguments do: a field
    added after the recording (``malloc_mmap_threshold``) leaves the call unchanged."""
    if isinstance(value, dict):
        is_train = value.get("type") == "TrainConfig"
        return {
            k: _train_defaults_dropped(v)
            for k, v in value.items()
            if not (is_train and k != "type" and _TRAIN_DEFAULTS.get(k) == v)
        }
    if isinstance(value, list):
        return [_train_defaults_dropped(v) for v in value]
    return value


def _without_defaults(calls: list[dict], out: Path) -> list[dict]:
    result = []
    for c in calls:
        params = inspect.signature(REAL[c["call"]]).parameters
        kw = {
            k: _train_defaults_dropped(v)
            for k, v in c["kwargs"].items()
            if not (k in params and normalise(params[k].default, out) == v)
        }
        result.append({"call": c["call"], "kwargs": kw})
    return result


@needs_defaults
@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_quickstart_makes_the_old_calls_in_the_old_order(family, tmp_path, monkeypatch):
    out = tmp_path / "qs"
    rec = Recorder(out)
    for name in ("finetune_teacher", "distill", "train_direct"):
        monkeypatch.setattr(pipeline, name, rec.training(name, None))
    monkeypatch.setattr(pipeline, "evaluate_model", rec.evaluate_model)
    monkeypatch.setattr(pipeline, "load_data", rec.load_data(pipeline.load_data))
    monkeypatch.setattr(energy_workflow, "energy_of_run", rec.energy_of_run)

    quickstart(out, QuickstartConfig(family=family, fast=True), show_progress=False)

    got = _without_defaults(json.loads(rec.dumps()), out)
    want = _without_defaults(EXPECTED[family], Path("/nonexistent"))
    assert [c["call"] for c in got] == [c["call"] for c in want]
    for g, w in zip(got, want, strict=True):
        assert g == w
