"""Plots and a one-page report for finished runs (firing rates, spike rasters, energy, accuracy).

What a run folder may hold, and what is read from it:

- ``metrics.json`` (written by training/distillation): ``test`` and/or ``validation`` dicts with
  ``accuracy``, ``firing_rate`` and ``firing_rates`` (``{spiking module: rate}``, over real
  tokens; files without ``firing_rate_padded`` predate that and are labelled as counting
  padding); the ``test``
  split is preferred. A flat dict (``spikeformers evaluate --output``) works too.
- ``energy.json`` (written by ``spikeformers energy``; :meth:`EnergyReport.to_dict` plus
  ``model_dir``, ``teacher_dir``, ``task``, ``split``): per-layer rows (``layers``), totals per
  sample (``totals.energy_pj_paper``/``energy_pj_full``, and ``energy_pj_memory`` in files
  written since the memory-aware convention exists), ``firing_rates`` (used when
  ``metrics.json`` has none), ``constants``, the ``teacher`` report, and in newer files the
  ``memory`` section (memory-aware per-layer rows and prices) and ``break_even`` firing rates.
  Older files without them give the paper and full conventions only.
- ``config.json`` + ``model.safetensors`` + tokenizer files: the model, loaded only to draw the
  spike raster of one sentence.

:func:`write_report` writes, per run, ``<run>_firing_rates.png``, ``<run>_raster.png`` and
``<run>_energy_layers.png`` (full accounting by operation kind), ``<run>_energy_conventions.png``
(per layer, one bar per convention) and, when ``energy.json`` has break-even rates,
``<run>_break_even.png``; for all runs ``accuracy_vs_energy.png`` (the teacher included when a
student's ``energy.json`` names a ``teacher_dir`` with a ``metrics.json``); and ``report.md``
embedding them. A plot whose data is missing is skipped and the report says so.

matplotlib is the optional ``plots`` extra. Figures are drawn on ``matplotlib.figure.Figure``
objects with the Agg canvas, never through ``pyplot``, so no display or global state is touched.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikeformers.energy.memory import CONVENTION_MEANINGS, CONVENTIONS, plot_break_even
from spikeformers.plots import energy_unit, figure, save_png

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SENTENCE",
    "Raster",
    "Run",
    "find_runs",
    "layer_group",
    "load_run",
    "spike_raster",
    "write_report",
]

DEFAULT_SENTENCE = "a funny and moving film , but the plot is not very good ."

# Stack categories of the energy-per-layer plot, in drawing order.
_CATEGORIES = (
    ("MAC (real-input matmul)", "#4c72b0"),
    ("AC (spike-input matmul, paper)", "#55a868"),
    ("AC extra (integer inputs, full)", "#8fd18f"),
    ("norm", "#c44e52"),
    ("softmax", "#dd8452"),
    ("activation", "#937860"),
    ("membrane update", "#8172b3"),
    ("other float ops", "#b0b0b0"),
)


# -- runs ----------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        logger.warning("%s: unreadable JSON (%s); ignored", path, e)
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Run:
    """What :func:`write_report` knows about one run folder."""

    name: str
    path: Path
    metrics: dict | None = None
    energy: dict | None = None
    config: dict | None = None

    def _split_metrics(self) -> dict:
        m = self.metrics or {}
        for split in ("test", "validation"):
            if isinstance(m.get(split), dict):
                return m[split]
        return m

    @property
    def accuracy(self) -> float | None:
        """Test (else validation) accuracy."""
        acc = self._split_metrics().get("accuracy")
        return float(acc) if isinstance(acc, int | float) else None

    def _rates_source(self) -> dict:
        """The dict the firing rates come from: the metrics' split, else ``energy.json``."""
        m = self._split_metrics()
        if m.get("firing_rates") or not self.energy:
            return m
        return self.energy

    @property
    def firing_rates(self) -> dict[str, float]:
        """Per-layer output firing rates from ``metrics.json``, else from ``energy.json``."""
        return dict(self._rates_source().get("firing_rates") or {})

    @property
    def firing_rates_scope(self) -> str:
        """What the rates are averaged over: ``real tokens`` (files that also give
        ``firing_rate_padded``), else ``all positions, padding included`` (older files)."""
        if "firing_rate_padded" in self._rates_source():
            return "real tokens"
        return "all positions, padding included"

    def energy_pj(self, convention: str) -> float | None:
        """Energy per sample in pJ under ``paper``, ``full`` or ``memory``, if measured."""
        if not self.energy:
            return None
        value = (self.energy.get("totals") or {}).get(f"energy_pj_{convention}")
        return float(value) if isinstance(value, int | float) else None


def _is_run(path: Path) -> bool:
    return any((path / f).is_file() for f in ("metrics.json", "energy.json", "config.json"))


def find_runs(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Run folders among ``paths``: each path itself if it is a run, else its run subfolders."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: no such run folder")
        if _is_run(p):
            found.append(p)
        else:
            found += [c for c in sorted(p.iterdir()) if c.is_dir() and _is_run(c)]
    if not found:
        raise FileNotFoundError(
            f"no run folders (with metrics.json, energy.json or config.json) in {list(paths)}"
        )
    return list(dict.fromkeys(p.resolve() for p in found))


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Read a run folder's ``metrics.json``, ``energy.json`` and ``config.json``."""
    path = Path(path)
    return Run(
        name=name or path.name,
        path=path,
        metrics=_read_json(path / "metrics.json"),
        energy=_read_json(path / "energy.json"),
        config=_read_json(path / "config.json"),
    )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


# -- spike raster --------------------------------------------------------------------------------


@dataclass
class Raster:
    """Spikes of one spiking module for one input.

    Attributes:
        name: Module name.
        spikes: ``[neurons, steps]`` array of 0/1 (the first ``max_neurons`` neurons).
        shape: Output shape with singleton axes removed; the last axis is the neuron axis and
            the leading ones, flattened in order, are the steps (``T × L`` for a time-first
            SpikeBERT layer, ``L`` for a token-as-time BPSN).
    """

    name: str
    spikes: Any
    shape: tuple[int, ...] = field(default_factory=tuple)


@torch.no_grad()
def spike_raster(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    max_layers: int = 4,
    max_neurons: int = 64,
) -> list[Raster]:
    """Record the spikes of a few spiking modules (evenly spaced in execution order) for one input.

    Generic over families: hooks on :func:`spikeformers.evaluation.spiking_modules`; each output
    is squeezed and reshaped to ``[steps, neurons]`` with the last axis as neurons.

    Args:
        model: Any model with spiking modules; returns ``[]`` for one without.
        input_ids: ``[1, L]`` token ids (one sentence).
        attention_mask: ``[1, L]`` or ``None``.
        max_layers: How many modules to keep.
        max_neurons: How many neurons (from the first) to keep per module.
    """
    from spikeformers.evaluation import forward_logits, spiking_modules

    mods = spiking_modules(model)
    if not mods:
        return []
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name: str):
        def fn(_m: nn.Module, _inp: Any, out: Any) -> None:
            y = out[0] if isinstance(out, tuple | list) else out
            if isinstance(y, torch.Tensor) and name not in captured:
                captured[name] = y.detach().float().cpu()

        return fn

    for name, m in mods:
        handles.append(m.register_forward_hook(hook(name or type(m).__name__)))
    was_training = model.training
    model.eval()
    try:
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        forward_logits(model, {"input_ids": input_ids, "attention_mask": mask})
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    names = list(captured)  # execution order
    k = min(max_layers, len(names))
    picks = sorted({round(i * (len(names) - 1) / max(k - 1, 1)) for i in range(k)})
    out = []
    for i in picks:
        y = captured[names[i]]
        shape = tuple(s for s in y.shape if s != 1) or (1,)
        y = y.reshape(-1, shape[-1])  # (steps, neurons)
        out.append(Raster(names[i], y[:, :max_neurons].T.numpy(), shape))
    return out


def _run_raster(run: Run, sentence: str) -> list[Raster]:
    from spikeformers.workflows.inference import load_any

    model, tokenizer = load_any(run.path)
    enc = tokenizer(sentence, return_tensors="pt", truncation=True, max_length=128)
    return spike_raster(model, enc["input_ids"], enc.get("attention_mask"))


# -- plots ---------------------------------------------------------------------------------------


def plot_firing_rates(run: Run, path: Path) -> Path | None:
    """Horizontal bars: output firing rate of every spiking module."""
    rates = run.firing_rates
    if not rates:
        return None
    names = list(rates)
    fig = figure(7.5, max(2.5, 0.22 * len(names) + 1.2))
    ax = fig.add_subplot()
    ax.barh(range(len(names)), [rates[n] for n in names], color="#4c72b0")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"firing rate (fraction of ones over neurons, time steps and {run.firing_rates_scope})"
    )
    ax.set_title(f"{run.name}: firing rate per spiking layer")
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path)


def plot_raster(run_name: str, rasters: list[Raster], path: Path) -> Path | None:
    """One panel per module: neurons (rows) x steps (columns), black = spike."""
    if not rasters:
        return None
    fig = figure(8.0, 1.9 * len(rasters) + 0.6)
    axes = fig.subplots(len(rasters), 1, squeeze=False)[:, 0]
    for ax, r in zip(axes, rasters, strict=True):
        ax.imshow(r.spikes, aspect="auto", interpolation="nearest", cmap="Greys", vmin=0, vmax=1)
        rate = float(r.spikes.mean()) if r.spikes.size else 0.0
        ax.set_title(f"{r.name}  (output {r.shape}, rate {rate:.3f})", fontsize=8)
        ax.set_ylabel("neuron", fontsize=7)
        ax.tick_params(labelsize=6)
        if len(r.shape) >= 3:  # several leading axes: mark where the first one advances
            block = math.prod(r.shape[1:-1])
            for x in range(block, r.spikes.shape[1], block):
                ax.axvline(x - 0.5, color="#c44e52", lw=0.6, alpha=0.6)
    axes[-1].set_xlabel("step (leading output axes flattened; red lines: next index of the first)")
    fig.suptitle(f"{run_name}: spikes of one sentence", fontsize=10)
    return save_png(fig, path)


def layer_group(name: str) -> str:
    """Group a module name into a layer: up to the first numeric part, else two parts.

    ``blocks.0.attn.q.linear -> blocks.0``, ``bert.encoder.layer.3.output.dense ->
    bert.encoder.layer.3``, ``bert.embeddings.LayerNorm -> bert.embeddings``,
    ``classifier -> classifier``.
    """
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2])


def _row_categories(row: dict, constants: dict) -> dict[str, float]:
    mac, ac, op = constants["mac_pj"], constants["ac_pj"], constants["op_pj"]
    other = op * row.get("other_ops", 0.0)
    cats = {
        "MAC (real-input matmul)": mac * row.get("macs_priced", 0.0),
        "AC (spike-input matmul, paper)": ac * row.get("acs", 0.0),
        "AC extra (integer inputs, full)": ac * (row.get("acs_full", 0.0) - row.get("acs", 0.0)),
    }
    kind = row.get("kind", "")
    key = {
        "norm": "norm",
        "softmax": "softmax",
        "activation": "activation",
        "membrane": "membrane update",
    }.get(kind, "other float ops")
    cats[key] = cats.get(key, 0.0) + other
    return cats


def energy_by_layer(energy: dict) -> dict[str, dict[str, float]]:
    """``{layer group: {category: pJ per sample}}`` (full accounting) from an ``energy.json``."""
    constants = energy["constants"]
    groups: dict[str, dict[str, float]] = {}
    for row in energy.get("layers", []):
        if row.get("excluded"):
            continue
        g = groups.setdefault(layer_group(row["name"]), {})
        for cat, value in _row_categories(row, constants).items():
            g[cat] = g.get(cat, 0.0) + value
    return groups


def plot_energy_layers(run: Run, path: Path) -> Path | None:
    """Stacked horizontal bars: energy per layer by operation kind (full accounting)."""
    if not run.energy or not run.energy.get("layers"):
        return None
    groups = energy_by_layer(run.energy)
    names = list(groups)
    totals = [sum(groups[n].values()) for n in names]
    scale, unit = energy_unit(max(totals, default=0.0))
    fig = figure(8.0, max(2.5, 0.28 * len(names) + 1.6))
    ax = fig.add_subplot()
    left = [0.0] * len(names)
    for cat, color in _CATEGORIES:
        values = [groups[n].get(cat, 0.0) / scale for n in names]
        if any(values):
            ax.barh(range(len(names)), values, left=left, color=color, label=cat)
            left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"energy per sample ({unit}), full convention; "
        "the MAC and AC-paper parts are the paper convention"
    )
    paper = run.energy_pj("paper") or 0.0
    full = run.energy_pj("full") or 0.0
    ax.set_title(
        f"{run.name}: energy per layer (full convention {full / scale:.3g} {unit}, "
        f"paper convention {paper / scale:.3g} {unit} per sample)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path)


def energy_by_convention(energy: dict) -> dict[str, dict[str, float]]:
    """``{layer group: {convention: pJ per sample}}`` from an ``energy.json``, excluded rows left
    out: ``paper`` and ``full`` from ``layers``, ``memory`` from ``memory.layers`` when the file
    has them (its ``spikes`` rows, the spike traffic, fall in the group of the emitting module)."""
    groups: dict[str, dict[str, float]] = {}

    def add(name: str, conv: str, value: Any) -> None:
        if isinstance(value, int | float):
            g = groups.setdefault(layer_group(name), {})
            g[conv] = g.get(conv, 0.0) + float(value)

    for row in energy.get("layers", []):
        if not row.get("excluded"):
            for conv in ("paper", "full"):
                add(row["name"], conv, row.get(f"energy_pj_{conv}"))
    for row in (energy.get("memory") or {}).get("layers", []):
        if not row.get("excluded"):
            add(row["name"], "memory", row.get("energy_pj_memory"))
    return groups


def _conventions_in(tables: Sequence[dict[str, Any]]) -> list[str]:
    """The conventions (in :data:`CONVENTIONS` order) that any of ``tables`` has a value for."""
    return [c for c in CONVENTIONS if any(t.get(c) is not None for t in tables)]


_COLORS = {"paper": "#4c72b0", "full": "#dd8452", "memory": "#55a868"}


def plot_energy_conventions(run: Run, path: Path) -> Path | None:
    """Grouped horizontal bars: energy per layer, one bar per convention in ``energy.json``."""
    if not run.energy or not run.energy.get("layers"):
        return None
    groups = energy_by_convention(run.energy)
    names = list(groups)
    convs = _conventions_in(list(groups.values()))
    scale, unit = energy_unit(max((v for g in groups.values() for v in g.values()), default=0.0))
    fig = figure(8.0, max(2.5, 0.22 * len(names) * len(convs) + 1.6))
    ax = fig.add_subplot()
    height = 0.8 / len(convs)
    for j, conv in enumerate(convs):
        ys = [i + (j - (len(convs) - 1) / 2) * height for i in range(len(names))]
        values = [groups[n].get(conv, 0.0) / scale for n in names]
        total = run.energy_pj(conv)
        label = f"{conv} convention" + (f" ({_fmt_pj(total)} per sample)" if total else "")
        ax.barh(ys, values, height=height, color=_COLORS[conv], label=label)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"energy per sample ({unit}) under the {', '.join(convs)} conventions")
    ax.set_title(f"{run.name}: energy per layer under each convention", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path)


@dataclass
class _Point:
    name: str
    accuracy: float
    energy: dict[str, float]  # convention -> pJ per sample (only those measured)
    teacher: bool = False


def _totals(totals: dict) -> dict[str, float]:
    """``{convention: pJ}`` of an ``energy.json`` ``totals`` dict (the conventions it has)."""
    out = {}
    for conv in CONVENTIONS:
        value = totals.get(f"energy_pj_{conv}")
        if isinstance(value, int | float) and value:
            out[conv] = float(value)
    return out


def _points(runs: list[Run]) -> list[_Point]:
    points: list[_Point] = []
    known = {r.path.resolve() for r in runs}
    seen_teachers: set[Path] = set()
    for r in runs:
        energy = _totals((r.energy or {}).get("totals") or {})
        if r.accuracy is not None and energy:
            points.append(_Point(r.name, r.accuracy, energy, not r.firing_rates))
        teacher = (r.energy or {}).get("teacher")
        t_dir = (r.energy or {}).get("teacher_dir")
        if not teacher or not t_dir:
            continue
        t_path = Path(t_dir).resolve()
        if t_path in known or t_path in seen_teachers:
            continue
        t_run = load_run(t_path)
        if t_run.accuracy is None:
            continue
        seen_teachers.add(t_path)
        label = t_path.name if "teacher" in t_path.name else f"{t_path.name} (teacher)"
        points.append(_Point(label, t_run.accuracy, _totals(teacher.get("totals", {})), True))
    return points


def _borrow_teacher_energy(runs: list[Run]) -> None:
    """Give a teacher run without its own ``energy.json`` the report a student's ``energy.json``
    holds for it (the teacher counted on the same texts), so it is plotted and tabled."""
    by_path = {r.path.resolve(): r for r in runs}
    for r in runs:
        t_dir, teacher = (r.energy or {}).get("teacher_dir"), (r.energy or {}).get("teacher")
        t_run = by_path.get(Path(t_dir).resolve()) if t_dir and teacher else None
        if t_run is not None and t_run.energy is None:
            t_run.energy = teacher


# convention -> (marker, filled) in the accuracy-vs-energy plot
_MARKERS = {"paper": ("o", False), "full": ("o", True), "memory": ("s", True)}


def plot_accuracy_vs_energy(runs: list[Run], path: Path) -> Path | None:
    """Accuracy against energy per sample for every run, one point per convention measured
    (hollow circle: paper, filled circle: full, square: memory-aware); colour: the run."""
    from matplotlib.lines import Line2D

    points = _points(runs)
    if not points:
        return None
    energies = [x for p in points for x in p.energy.values()]
    convs = _conventions_in([p.energy for p in points])
    scale, unit = energy_unit(max(energies))
    fig = figure(7.0, 4.5)
    ax = fig.add_subplot()
    for i, p in enumerate(points):
        color = "#c44e52" if p.teacher else f"C{i % 10}"
        xs = [p.energy[c] / scale for c in convs if c in p.energy]
        if len(xs) >= 2:
            ax.plot([min(xs), max(xs)], [p.accuracy] * 2, color=color, lw=0.8, alpha=0.6)
        for conv in convs:
            if conv not in p.energy:
                continue
            marker, filled = _MARKERS[conv]
            ax.scatter(
                [p.energy[conv] / scale],
                [p.accuracy],
                marker=marker,
                s=90 if p.teacher else 60,
                zorder=3,
                **({"color": color} if filled else {"facecolors": "none", "edgecolors": color}),
            )
    handles = [
        Line2D([], [], color="#c44e52" if p.teacher else f"C{i % 10}", lw=3, label=p.name)
        for i, p in enumerate(points)
    ]
    for conv in convs:
        marker, filled = _MARKERS[conv]
        face = "grey" if filled else "none"
        handles.append(
            Line2D([], [], ls="", marker=marker, mfc=face, mec="grey", label=f"{conv} convention")
        )
    log = max(energies) / min(energies) > 20
    if log:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0)
    shapes = {"paper": "hollow circle", "full": "filled circle", "memory": "square"}
    ax.set_xlabel(
        f"energy per sample ({unit}{', log' if log else ''}); "
        + ", ".join(f"{c} convention: {shapes[c]}" for c in convs),
        fontsize=8,
    )
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy vs energy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(handles=handles, fontsize=7)
    return save_png(fig, path)


# -- report --------------------------------------------------------------------------------------


def _fmt_pj(pj: float | None) -> str:
    if pj is None:
        return "-"
    scale, unit = energy_unit(pj)
    return f"{pj / scale:.3g} {unit}"


def _fmt(x: Any, spec: str = ".4f") -> str:
    return "-" if not isinstance(x, int | float) else format(x, spec)


def _summary_table(runs: list[Run]) -> list[str]:
    """Accuracy, firing rate, energy per sample and student/teacher ratio under each convention
    any run measured (a column per convention, named in its header)."""
    points = _points(runs)
    convs = _conventions_in(
        [p.energy for p in points] + [_totals((r.energy or {}).get("totals") or {}) for r in runs]
    ) or ["paper", "full"]
    head = ["run", "accuracy", "firing rate (real tokens)"]
    head += [f"energy/sample, {c} convention" for c in convs]
    head += [f"student/teacher, {c} convention" for c in convs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        rates = r.firing_rates
        rate = _fmt(sum(rates.values()) / len(rates) if rates else None)
        if rates and r.firing_rates_scope != "real tokens":
            rate += " (padding included)"
        e = r.energy or {}
        cells = [r.name, _fmt(r.accuracy), rate]
        cells += [_fmt_pj(r.energy_pj(c)) for c in convs]
        cells += [_fmt(e.get(f"ratio_{c}"), ".2%") for c in convs]
        lines.append("| " + " | ".join(cells) + " |")
    names = {r.name for r in runs}
    for p in points:
        if p.teacher and p.name not in names:
            cells = [p.name, _fmt(p.accuracy), "-"]
            cells += [_fmt_pj(p.energy.get(c)) for c in convs] + ["-"] * len(convs)
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _layer_table(run: Run) -> list[str]:
    """Energy per sample of each layer group under each convention ``energy.json`` holds."""
    groups = energy_by_convention(run.energy or {})
    convs = _conventions_in(list(groups.values()))
    if not groups or not convs:
        return []
    head = ["layer", *[f"{c} convention, energy/sample" for c in convs]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, g in groups.items():
        lines.append("| " + " | ".join([f"`{name}`", *[_fmt_pj(g.get(c)) for c in convs]]) + " |")
    totals = [_fmt_pj(sum(g.get(c, 0.0) for g in groups.values())) for c in convs]
    lines.append("| " + " | ".join(["**total** (excluded rows left out)", *totals]) + " |")
    return lines


def _memory_lines(run: Run) -> list[str]:
    """The memory-aware convention's prices, when ``energy.json`` has them."""
    m = ((run.energy or {}).get("memory") or {}).get("memory_table")
    if not m:
        return []
    return [
        f"Memory-aware convention prices `{m.get('name')}`: {m.get('bits')}-bit data, "
        f"{m.get('spike_bits')}-bit spike events, SRAM {_fmt(m.get('sram_pj_per_bit'), '.4g')} "
        f"pJ/bit, DRAM {_fmt(m.get('dram_pj_per_bit'), '.4g')} pJ/bit, weights in "
        f"{str(m.get('weights_in', '?')).upper()} ({m.get('source')}).",
        "",
    ]


def _fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "none (never saves, or no spikes)"
    return _fmt(rate) + (" (above 1: saves at every possible rate)" if rate > 1 else "")


def _break_even_table(run: Run) -> list[str]:
    """Break-even firing rate per convention (``energy.json``'s ``break_even``), if present."""
    be = (run.energy or {}).get("break_even")
    if not isinstance(be, dict) or not be:
        return []
    lines = [
        "Break-even firing rates (the student uses its teacher's energy at that input rate):",
        "",
        "| convention | student energy/sample | teacher energy/sample | energy/sample at rate 0 "
        "| measured input firing rate (MAC-weighted) | break-even firing rate |",
        "|---|---|---|---|---|---|",
    ]
    for conv in CONVENTIONS:
        b = be.get(conv)
        if not isinstance(b, dict):
            continue
        rate = b.get("rate")
        lines.append(
            f"| {conv} convention | {_fmt_pj(run.energy_pj(conv))} | {_fmt_pj(b.get('teacher_pj'))}"
            f" | {_fmt_pj(b.get('floor_pj'))} | {_fmt(b.get('measured_rate'))} | "
            + _fmt_rate(rate)
            + " |"
        )
    return [*lines, ""]


def write_report(
    run_dir_or_dirs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    sentence: str = DEFAULT_SENTENCE,
    raster: bool = True,
) -> list[Path]:
    """Write the PNG plots and ``report.md`` for one or more runs.

    Args:
        run_dir_or_dirs: A run folder, a folder of run folders, or a list of either.
        out_dir: Where the files go (created).
        sentence: Sentence whose spikes the raster shows.
        raster: Draw spike rasters (loads each run's model; skipped for runs without one).

    Returns:
        Paths of the files written, ``report.md`` last.

    Raises:
        FileNotFoundError: No run folder found.
        MissingDependencyError: matplotlib is not installed.
    """
    figure(1, 1)  # fail early, with the install hint, when matplotlib is missing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = find_runs(run_dir_or_dirs)
    names = [p.name for p in paths]
    runs = [
        load_run(p, p.name if names.count(p.name) == 1 else f"{p.parent.name}_{p.name}")
        for p in paths
    ]
    _borrow_teacher_energy(runs)
    written: list[Path] = []
    md = ["# spikeformers report", ""]
    notes: list[str] = []

    acc_png = plot_accuracy_vs_energy(runs, out / "accuracy_vs_energy.png")
    md += ["## Accuracy vs energy", ""]
    if acc_png:
        written.append(acc_png)
        md += [f"![accuracy vs energy]({acc_png.name})", ""]
    else:
        md += ["No run has both an accuracy (metrics.json) and an energy (energy.json).", ""]
    md += [*_summary_table(runs), ""]

    for r in runs:
        stem = _safe(r.name)
        md += [f"## {r.name}", "", f"`{r.path}`", ""]
        fr = plot_firing_rates(r, out / f"{stem}_firing_rates.png")
        if fr:
            written.append(fr)
            md += [f"![firing rates]({fr.name})", ""]
        if raster and r.config is not None:
            try:
                rasters = _run_raster(r, sentence)
            except Exception as e:  # a report should not die on one unloadable model
                logger.warning("%s: no spike raster (%s)", r.path, e)
                notes.append(f"{r.name}: no spike raster ({e})")
                rasters = []
            ra = plot_raster(r.name, rasters, out / f"{stem}_raster.png")
            if ra:
                written.append(ra)
                md += [f"Spikes of *{sentence}*:", "", f"![spike raster]({ra.name})", ""]
        en = plot_energy_layers(r, out / f"{stem}_energy_layers.png")
        if en:
            written.append(en)
            md += [f"![energy per layer]({en.name})", ""]
            c = r.energy.get("constants", {})
            md += [
                f"Counted on {r.energy.get('num_samples')} samples of "
                f"{r.energy.get('task', '?')}/{r.energy.get('split', '?')}, "
                f"{_fmt(r.energy.get('mean_tokens'), '.1f')} real tokens per sample. "
                f"Prices `{c.get('name')}`: {c.get('source')}.",
                "",
                *_layer_table(r),
                "",
            ]
            ec = plot_energy_conventions(r, out / f"{stem}_energy_conventions.png")
            if ec:
                written.append(ec)
                md += [f"![energy per layer under each convention]({ec.name})", ""]
            md += _memory_lines(r)
            be = _break_even_table(r)
            md += be
            if be and (r.energy.get("memory") or {}).get("break_even"):
                png = plot_break_even(
                    r.energy["memory"], out / f"{stem}_break_even.png", title=r.name
                )
                if png:
                    written.append(png)
                    md += [f"![energy vs firing rate, break-even]({png.name})", ""]
        if not (fr or en):
            md += ["No firing rates or energy recorded for this run.", ""]

    md += [
        "## Conventions",
        "",
        "- Paper convention: E_MAC x MACs of real-input matmuls + E_AC x fr x MACs of spike-input "
        "matmuls (MACs include the T time steps, so this is E_AC x T x fr x MACs_per_step).",
        "- Full accounting: adds integer-valued inputs as E_AC x MACs x mean|x| and LayerNorm, "
        "softmax, GELU, membrane updates, residual/bias adds and pooling as float ops.",
        f"- Memory-aware convention: {CONVENTION_MEANINGS['memory']}; see "
        "`spikeformers.energy.memory` (runs whose energy.json predates it show paper and full "
        "only).",
        "- Break-even firing rate: the input firing rate (every layer's firing scaled alike) at "
        "which the student's energy under a convention equals its teacher's under the same one.",
        "- Counts are taken on the batches run, padding included; paper and full price no memory "
        "traffic.",
        "",
    ]
    if notes:
        md += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    report = out / "report.md"
    report.write_text("\n".join(md), encoding="utf-8")
    written.append(report)
    return written
