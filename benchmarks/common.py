"""Shared helpers for benchmark scripts: machine description and result files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

# SPIKEFORMERS_BENCH_RESULTS redirects every script's result files (benchmarks/smoke.py uses it,
# so smoke runs never overwrite recorded results).
RESULTS = Path(
    os.environ.get("SPIKEFORMERS_BENCH_RESULTS") or Path(__file__).resolve().parent / "results"
)


def machine() -> dict:
    """What the numbers were measured on."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu"] = names[0] if names else None
    except OSError:
        info["cpu"] = None
    return info


def save(name: str, obj: dict) -> Path:
    """Write ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    return path
