"""Matplotlib figures without a display (Agg), saved as PNG, and an energy unit picker."""

from __future__ import annotations

from pathlib import Path


def figure(width: float, height: float):
    """A constrained-layout ``Figure`` of ``width x height`` inches on an Agg canvas.

    Raises:
        MissingDependencyError: matplotlib is not installed (with the install command).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        from spikeformers.data.examples import MissingDependencyError

        raise MissingDependencyError(
            "plots need matplotlib: pip install 'spikeformers[plots]' (or pip install matplotlib)"
        ) from e
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def energy_unit(max_pj: float) -> tuple[float, str]:
    """``(scale, unit)`` to show energies up to ``max_pj`` picojoules: pJ, nJ, µJ or mJ."""
    for scale, unit in ((1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ")):
        if max_pj >= scale:
            return scale, unit
    return 1.0, "pJ"
