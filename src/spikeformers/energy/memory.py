r"""A memory-aware energy estimate, precision tables, and the break-even firing rate.

The paper convention and the full accounting (:mod:`spikeformers.energy.estimate`) price
arithmetic only. Moving data costs more than computing on it (Horowitz, ISSCC 2014, 45 nm: a 64-bit
read costs 10 pJ from an 8 KB SRAM, 20 pJ from 32 KB, 100 pJ from 1 MB and 1.3-2.6 nJ from DRAM,
against 0.9 pJ for a 32-bit float add), so the **memory-aware** convention adds the traffic an
event-driven accelerator needs, in the form of Lemaire et al.'s analytical model ("An Analytical
Estimation of Spiking Neural Networks Energy Efficiency", ICONIP 2022, arXiv:2210.13107: an ANN
reads every weight for every MAC; an SNN reads the weight and reads and writes the target
membrane potential for every synaptic event, updates every neuron's potential every time step,
and moves its spikes as events). Built on the counts of
:class:`~spikeformers.energy.OpCounts` (per sample), per matmul row:

============================  ================================================  ===============
traffic                       count (elements of ``bits`` bits)                 memory
============================  ================================================  ===============
weight reads                  one per MAC (real input) + one per synaptic      weights memory
                              event (``ACs``, spike or count input)            (SRAM or DRAM)
input reads (real input)      ``Linear``: MACs / out_features (each input      SRAM
                              read once per output row, Lemaire eq. 4); conv
                              and activation x activation products: one per
                              MAC (Lemaire eq. 3)
output writes (real input)    ``Linear``/conv: MACs / fan_in (one per output   SRAM
                              element); activation x activation products:
                              not counted (their shapes are not in the counts)
membrane (spike input)        2 per synaptic event (read + write the target    SRAM
                              potential)
membrane (neurons)            2 per neuron per time step (leak/fire update)    SRAM
spikes moved                  2 per spike emitted (write + read of one         SRAM
                              address event of ``spike_bits`` bits)
============================  ================================================  ===============

A synaptic event is ``ACs`` of the paper convention (``MACs × fr``; for integer count input,
``MACs ×`` its non-zero fraction: the weight is read once and added ``n`` times). Weights of
activation x activation products (attention's ``QK^T``, ``AV``) are activations and always in SRAM.
Norms, softmax and other elementwise work move no counted data (their arithmetic is in the full
accounting). ``memory`` total = full-accounting arithmetic + this traffic.

Prices: ``sram_pj_per_bit`` defaults to Horowitz's 32 KB SRAM (20 pJ per 64-bit access =
0.3125 pJ/bit) and ``dram_pj_per_bit`` to his DRAM low end (1.3 nJ per 64 bits = 20.3 pJ/bit);
weights sit in SRAM unless ``weights_in="dram"``. (Lemaire et al.'s implementation in Qualia's
``EnergyEstimationMetric`` instead fits the access energy to the memory's size,
``1.09e-5 × elements × bits + 13.2`` pJ per access, through the same three Horowitz SRAM points;
give ``sram_pj_per_bit`` to match a memory size.) ``bits`` is the width of weights, activations and
membrane state: 32 (fp32), 16 (fp16) or 8 (int8), chosen with the arithmetic table by
:func:`precision_tables`.

**Break-even firing rate.** Every convention is linear in the spike activity: scaling every
spike-driven count (synaptic events, integer magnitudes, spikes emitted) by ``s`` gives
``E(s) = E(0) + s × (E(1) - E(0))``. The break-even scale ``s*`` solves ``E(s*) = E_teacher``; the
break-even firing rate is ``s* ×`` the measured MAC-weighted input firing rate: the rate, every
layer's firing scaled alike, above which the student spends more energy than its teacher. ``None``
when the student never saves (``E(0) >= E_teacher``) or there is no spike activity to scale.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from spikeformers.energy.constants import TABLES, EnergyTable, get_table
from spikeformers.energy.counting import NEURON_OPS_PER_STEP, OpCounts, RowCounts
from spikeformers.energy.estimate import FULL, PAPER, _matches, price

MEMORY = "memory"
CONVENTIONS = (PAPER, FULL, MEMORY)
CONVENTION_MEANINGS = {
    PAPER: "arithmetic only: E_MAC per real-input MAC + E_AC per synaptic event",
    FULL: "arithmetic only: paper + integer inputs by magnitude + every other float op",
    MEMORY: "full accounting + memory traffic (weight, input, output, membrane, spike reads and "
    "writes; Lemaire et al. 2022 form)",
}

_HOROWITZ = "Horowitz, ISSCC 2014, 45 nm"


@dataclass(frozen=True, kw_only=True)
class MemoryTable:
    """Prices of memory traffic.

    Attributes:
        name: Short name.
        bits: Width of weights, activations and membrane potentials.
        spike_bits: Width of one spike event (an address).
        sram_pj_per_bit: Energy per bit read or written in on-chip SRAM.
        dram_pj_per_bit: Energy per bit read from DRAM.
        weights_in: Where the weights are read from: ``sram`` or ``dram``.
        source: Where the numbers come from.
    """

    name: str = "45nm-sram32k"
    bits: int = 32
    spike_bits: int = 16
    sram_pj_per_bit: float = 20.0 / 64
    dram_pj_per_bit: float = 1300.0 / 64
    weights_in: Literal["sram", "dram"] = "sram"
    source: str = (
        f"{_HOROWITZ}: 64-bit access 20 pJ in a 32 KB SRAM, 1.3 nJ in DRAM (low end); "
        "traffic model of Lemaire et al., ICONIP 2022"
    )

    def __post_init__(self) -> None:
        if self.weights_in not in ("sram", "dram"):
            raise ValueError(f"weights_in must be sram or dram, got {self.weights_in!r}")
        for key in ("bits", "spike_bits", "sram_pj_per_bit", "dram_pj_per_bit"):
            if not getattr(self, key) > 0:
                raise ValueError(f"MemoryTable.{key} must be > 0, got {getattr(self, key)!r}")

    @property
    def weight_pj_per_bit(self) -> float:
        """Price of one bit of weight read."""
        return self.dram_pj_per_bit if self.weights_in == "dram" else self.sram_pj_per_bit

    def to_dict(self) -> dict[str, Any]:  # noqa: D102
        return dataclasses.asdict(self)


# --precision -> (arithmetic table of Horowitz 2014, data width in bits)
PRECISIONS: dict[str, tuple[str, int]] = {
    "fp32": ("45nm", 32),
    "fp16": ("45nm-fp16", 16),
    "int8": ("45nm-int8", 8),
}


def precision_tables(
    precision: str, *, weights_in: Literal["sram", "dram"] = "sram"
) -> tuple[EnergyTable, MemoryTable]:
    """The 45 nm arithmetic table and memory table of ``fp32``, ``fp16`` or ``int8``.

    fp32: MAC 4.6 pJ (mult 3.7 + add 0.9), AC 0.9 pJ; fp16: MAC 1.5 (1.1 + 0.4), AC 0.4;
    int8: MAC 0.23 (0.2 + 0.03), AC 0.03 (Horowitz 2014; see
    :data:`~spikeformers.energy.constants.TABLES`); data width 32, 16 or 8 bits.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    table, bits = PRECISIONS[precision]
    return TABLES[table], MemoryTable(
        name=f"45nm-sram32k-{precision}", bits=bits, weights_in=weights_in
    )


@dataclass
class MemoryRow:
    """Memory traffic of one counted row, per sample (element counts, energy in pJ)."""

    name: str
    op: str
    kind: str
    weight_reads: float = 0.0
    input_reads: float = 0.0
    output_writes: float = 0.0
    membrane_accesses: float = 0.0
    spike_events: float = 0.0
    energy_pj_traffic: float = 0.0
    energy_pj_arithmetic: float = 0.0
    excluded: bool = False

    @property
    def energy_pj_memory(self) -> float:
        """Memory-aware energy of the row: arithmetic (full accounting) + traffic."""
        return self.energy_pj_arithmetic + self.energy_pj_traffic


def _fans(model: nn.Module | None, name: str) -> tuple[int, int, bool] | None:
    """``(fan_in, fan_out, is_linear)`` of the module's weight, or ``None`` if it has none."""
    if model is None:
        return None
    try:
        m = model.get_submodule(name) if name not in ("", "<root>") else model
    except AttributeError:
        return None
    w = getattr(m, "weight", None)
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features, True
    if isinstance(m, nn.modules.conv._ConvNd) and w is not None:
        return int(w[0].numel()), int(w.shape[0]), False
    return None


def _matmul_traffic(r: RowCounts, fans: tuple[int, int, bool] | None) -> dict[str, float]:
    events = r.acs_binary + r.nonzero_integer
    if fans is None:
        input_reads, output_writes = r.macs_real, 0.0
    else:
        fan_in, fan_out, linear = fans
        input_reads = r.macs_real / fan_out if linear else r.macs_real
        output_writes = r.macs_real / fan_in
    return {
        "weight_reads": r.macs_real + events,
        "input_reads": input_reads,
        "output_writes": output_writes,
        "membrane_accesses": 2.0 * events,
    }


def memory_rows(
    counts: OpCounts,
    model: nn.Module | None,
    table: EnergyTable | str | None = None,
    memory: MemoryTable | None = None,
    *,
    exclude: tuple[str, ...] | list[str] = (),
) -> list[MemoryRow]:
    """Per-row memory traffic and memory-aware energy, per sample (see the module doc).

    Args:
        counts: What an :class:`~spikeformers.energy.OpCounter` recorded (``num_samples`` set).
        model: The counted model (for the fan-in/fan-out of ``Linear`` and conv weights).
        table: Arithmetic prices (the full accounting's).
        memory: Traffic prices (default :class:`MemoryTable`).
        exclude: Module-name patterns left out of the totals (rows still reported).
    """
    memory = memory or MemoryTable()
    report = price(counts, table, exclude=exclude)
    n = max(counts.num_samples, 1)
    rows = []
    for r, priced in zip(counts.rows, report.rows, strict=True):
        row = MemoryRow(name=r.module, op=r.op, kind=r.kind, excluded=priced.excluded)
        if r.macs:
            weight = _fans(model, r.module)
            for k, v in _matmul_traffic(r, weight).items():
                setattr(row, k, v / n)
            w_price = memory.weight_pj_per_bit if weight is not None else memory.sram_pj_per_bit
        else:
            w_price = memory.sram_pj_per_bit
        if r.kind == "membrane":
            row.membrane_accesses += 2.0 * r.other_ops / NEURON_OPS_PER_STEP / n
        bits, sram = memory.bits, memory.sram_pj_per_bit
        row.energy_pj_traffic = bits * (
            w_price * row.weight_reads
            + sram * (row.input_reads + row.output_writes + row.membrane_accesses)
        )
        row.energy_pj_arithmetic = priced.energy_pj_full
        rows.append(row)
    for module, spikes in counts.spikes.items():
        row = MemoryRow(
            name=module, op="spikes", kind="spikes", excluded=_matches(module, list(exclude))
        )
        row.spike_events = 2.0 * spikes / n
        row.energy_pj_traffic = memory.spike_bits * memory.sram_pj_per_bit * row.spike_events
        rows.append(row)
    return rows


def convention_totals(
    counts: OpCounts,
    model: nn.Module | None,
    table: EnergyTable | str | None = None,
    memory: MemoryTable | None = None,
    *,
    exclude: tuple[str, ...] | list[str] = (),
) -> dict[str, float]:
    """``{paper, full, memory}`` per-sample totals in pJ (excluded rows left out)."""
    report = price(counts, table, exclude=exclude)
    rows = memory_rows(counts, model, table, memory, exclude=exclude)
    return {
        PAPER: report.energy_pj_paper,
        FULL: report.energy_pj_full,
        MEMORY: sum(r.energy_pj_memory for r in rows if not r.excluded),
    }


def mean_input_rate(counts: OpCounts) -> float | None:
    """MAC-weighted non-zero fraction of every spike/count matmul input (``None``: none)."""
    macs = sum(r.macs_binary + r.macs_integer for r in counts.rows)
    events = sum(r.acs_binary + r.nonzero_integer for r in counts.rows)
    return events / macs if macs else None


def scale_activity(counts: OpCounts, s: float) -> OpCounts:
    """A copy of ``counts`` with every spike-driven count times ``s``: synaptic events, integer
    magnitudes and the spikes each neuron emitted (dense MACs and float ops unchanged)."""
    out = copy.deepcopy(counts)
    for r in out.rows:
        r.acs_binary *= s
        r.nonzero_integer *= s
        r.magnitude_integer *= s
    out.spikes = {k: v * s for k, v in out.spikes.items()}
    return out


def break_even(
    counts: OpCounts,
    model: nn.Module | None,
    teacher_totals: dict[str, float],
    table: EnergyTable | str | None = None,
    memory: MemoryTable | None = None,
    *,
    exclude: tuple[str, ...] | list[str] = (),
) -> dict[str, dict[str, float | None]]:
    """Per convention: ``{"scale": s*, "rate": s* × measured rate, "floor_pj": E(0)}``.

    ``E(s*)`` equals the teacher's energy under that convention (see the module doc); ``rate`` is
    ``None`` when the student spends at least the teacher's energy even without spikes, or has no
    spike-driven input.
    """
    rate = mean_input_rate(counts)
    e0 = convention_totals(scale_activity(counts, 0.0), model, table, memory, exclude=exclude)
    e1 = convention_totals(counts, model, table, memory, exclude=exclude)
    out: dict[str, dict[str, float | None]] = {}
    for conv in CONVENTIONS:
        slope = e1[conv] - e0[conv]
        teacher = teacher_totals.get(conv)
        s = None
        if teacher is not None and slope > 0 and rate and e0[conv] < teacher:
            s = (teacher - e0[conv]) / slope
        out[conv] = {
            "scale": s,
            "rate": None if s is None else s * rate,
            "measured_rate": rate,
            "floor_pj": e0[conv],
            "teacher_pj": teacher,
        }
    return out


def memory_payload(
    student_counts: OpCounts,
    student: nn.Module,
    teacher_counts: OpCounts | None,
    teacher: nn.Module | None,
    table: EnergyTable | str | None,
    memory: MemoryTable,
    *,
    exclude: tuple[str, ...] | list[str] = (),
    teacher_exclude: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """The ``memory`` section of ``energy.json``: prices, per-layer rows, totals, teacher totals
    per convention and the break-even rates."""
    table = get_table(table)
    rows = memory_rows(student_counts, student, table, memory, exclude=exclude)
    totals = convention_totals(student_counts, student, table, memory, exclude=exclude)
    payload: dict[str, Any] = {
        "memory_table": memory.to_dict(),
        "conventions": dict(CONVENTION_MEANINGS),
        "totals": totals,
        "traffic": {
            k: sum(getattr(r, k) for r in rows if not r.excluded)
            for k in (
                "weight_reads",
                "input_reads",
                "output_writes",
                "membrane_accesses",
                "spike_events",
                "energy_pj_traffic",
            )
        },
        "layers": [{**vars(r), "energy_pj_memory": r.energy_pj_memory} for r in rows],
        "teacher_totals": None,
        "break_even": None,
    }
    if teacher_counts is not None:
        t_totals = convention_totals(
            teacher_counts, teacher, table, memory, exclude=teacher_exclude
        )
        payload["teacher_totals"] = t_totals
        payload["break_even"] = break_even(
            student_counts, student, t_totals, table, memory, exclude=exclude
        )
    return payload


def summary_lines(payload: dict[str, Any]) -> list[str]:
    """Plain text: every total under its convention's name, the teacher's, and break-even."""
    m = payload["memory_table"]
    lines = [
        f"memory-aware: {m['bits']}-bit data, {m['spike_bits']}-bit spike events, SRAM "
        f"{m['sram_pj_per_bit']:.4g} pJ/bit, DRAM {m['dram_pj_per_bit']:.4g} pJ/bit, weights in "
        f"{m['weights_in'].upper()} ({m['source']})",
    ]
    teacher = payload.get("teacher_totals") or {}
    be = payload.get("break_even") or {}
    for conv in CONVENTIONS:
        s = payload["totals"][conv]
        line = f"  {conv:<7} convention: student {s:.4g} pJ"
        if conv in teacher:
            t = teacher[conv]
            line += f", teacher {t:.4g} pJ, student/teacher {100 * s / t:.2f}%"
            rate = (be.get(conv) or {}).get("rate")
            line += (
                f", break-even firing rate {rate:.4f}"
                if rate is not None
                else ", no break-even (never saves, or no spikes)"
            )
        lines.append(line + f"  [{CONVENTION_MEANINGS[conv]}]")
    return lines


def plot_break_even(payload: dict[str, Any], path, title: str = "student") -> Any:
    """Energy per sample against the input firing rate, one line per convention, with the
    teacher's energy and the break-even point of each (needs a teacher in the payload)."""
    from spikeformers.plots import energy_unit, figure, save_png

    be = payload.get("break_even")
    if not be:
        return None
    rate = next(iter(be.values()))["measured_rate"]
    if not rate:
        return None
    teacher = payload["teacher_totals"]
    top = max(max(teacher.values()), *payload["totals"].values())
    scale, unit = energy_unit(top)
    fig = figure(6.5, 4.0)
    ax = fig.add_subplot()
    colors = {PAPER: "#4c72b0", FULL: "#dd8452", MEMORY: "#55a868"}
    xmax = 1.0
    for conv in CONVENTIONS:
        e0 = be[conv]["floor_pj"]
        e1 = payload["totals"][conv]
        slope = (e1 - e0) / rate  # pJ per unit of firing rate
        xs = [0.0, xmax]
        ax.plot(xs, [(e0 + slope * x) / scale for x in xs], color=colors[conv], label=conv)
        ax.axhline(teacher[conv] / scale, color=colors[conv], ls="--", lw=0.8)
        ax.plot([rate], [e1 / scale], "o", color=colors[conv])
        r = be[conv]["rate"]
        if r is not None and r <= xmax:
            ax.plot([r], [teacher[conv] / scale], "x", color=colors[conv], ms=9)
    ax.set_xlabel("input firing rate (all layers scaled alike); dot: measured, x: break-even")
    ax.set_ylabel(f"energy per sample ({unit})")
    ax.set_title(f"{title}: energy vs firing rate (dashed: teacher)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)
