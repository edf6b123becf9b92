r"""Pricing operation counts, and the one-call estimate for a model (and its teacher).

Two totals, both per sample (one sequence):

**Paper convention** (Spikformer lineage, as SpikeBERT prices it)::

    E_paper = E_MAC × MACs(matmuls with real-valued input)
            + E_AC  × Σ_l fr_l × MACs_l (matmuls with binary or integer input)

``fr_l`` is the measured non-zero fraction of layer ``l``'s input; ``MACs_l`` already includes the
``T`` time steps (see :mod:`spikeformers.energy.counting`), so this is ``E_AC × Σ_l SOPs_l`` with
``SOPs_l = T × fr_l × MACs_per_step_l``. Nothing else is priced. The input decides, never the
module (:data:`BOOKING_RULE`): a neuron's internal kernel on a real-valued input, such as BPSN's
learnable temporal filters on the LayerNorm output, is priced as MACs like any layer. Integer
inputs (the residual stream, spike counts) are treated as spikes with ``fr`` their non-zero
fraction, which is what the papers do when they measure a "firing rate" of such a layer.

**Full accounting** adds what the convention leaves out:

- integer-valued inputs cost ``E_AC × MACs × mean|x|`` instead of ``E_AC × MACs × fr``: a count
  ``n`` is delivered as ``n`` events (``w·n = w + ... + w``), exact on event-driven hardware and
  equal to the paper's count for binary input. (Pricing each non-zero count as a MAC instead
  would cost more for every count below ``E_MAC / E_AC ≈ 5``, which is where residual counts
  sit.)
- every other float op at ``E_op`` each: LayerNorm, softmax, GELU, membrane updates, residual,
  mask and bias adds, pooling (see the per-element constants in
  :mod:`spikeformers.energy.counting`). The float classifier head is a real-input matmul, so
  both totals price it as MACs.

Memory traffic and training are priced by neither.

The teacher ANN is counted by the same counter on the same texts: all its matmuls have real input,
so its paper-convention energy is ``E_MAC × MACs``. (SpikeBERT's table reports BERT's ~22.2 G
*FLOPs* per MR sample times 4.6 pJ, i.e. it prices two FLOPs per MAC; here a MAC is one
``E_MAC``, so our teacher figure is about half of theirs and the student/teacher ratio about
twice theirs for the same counts.)

Padding: counts are taken on the batches actually run, padding included (padded positions are
computed like any others); the spiking modules' firing rates are over real tokens
(``firing_rate_padded`` counts every position). Per-sample figures are totals divided by the
number of sequences; ``mean_tokens`` (real tokens) and ``mean_positions`` (positions run) tell how
much padding there was. With batch size 1, the CLI default, nothing is padded.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from spikeformers.energy.constants import EnergyTable, get_table
from spikeformers.energy.counting import OpCounter, OpCounts, RowCounts

__all__ = ["BOOKING_RULE", "EnergyReport", "LayerEnergy", "count_batches", "estimate", "price"]

PAPER = "paper"
FULL = "full"

BOOKING_RULE = (
    "one rule for every family, at any place in the network: a matmul-like op (linear layer, "
    "attention product, convolution, a neuron's own kernel such as BPSN's temporal filters) with "
    "a real-valued input is priced as MACs; one whose input is spikes (binary, or integer spike "
    "counts) as ACs; elementwise work (membrane updates, norms, softmax...) only in the full "
    "accounting"
)
"""How every op is booked; printed by the energy CLI and stored in ``energy.json``."""


@dataclass
class LayerEnergy:
    """One row of the report: one op of one module, per sample.

    Attributes:
        name: Module the op ran in (innermost).
        op: Aten op (``addmm``, ``bmm#1``, ``layer_norm``, ``membrane``...).
        kind: Operation kind (``matmul``, ``conv``, ``attention``, ``norm``, ``softmax``,
            ``activation``, ``elementwise``, ``reduction``, ``membrane``, ``embedding``).
        input_kind: Kinds of input seen (``real``, ``binary``, ``integer``, joined by ``+``); empty
            for non-matmul rows.
        input_rate: Non-zero fraction of the spike/count input (MAC-weighted over calls), or
            ``None`` when the input was real.
        input_mean_magnitude: Mean ``|x|`` of the spike/count input, or ``None``.
        macs: Dense multiply-accumulates.
        acs: Accumulates of the paper convention, ``Σ MACs × fr`` over spike/count inputs.
        acs_full: Accumulates of the full accounting, ``Σ MACs × mean|x|``.
        macs_priced: MACs priced as MACs (real-valued input).
        other_ops: Other float ops (full accounting only).
        energy_pj_paper: Energy under the paper convention.
        energy_pj_full: Energy under the full accounting.
        calls: Calls per sample.
        excluded: Left out of the totals (``exclude`` patterns).
    """

    name: str
    op: str
    kind: str
    input_kind: str
    input_rate: float | None
    input_mean_magnitude: float | None
    macs: float
    acs: float
    acs_full: float
    macs_priced: float
    other_ops: float
    energy_pj_paper: float
    energy_pj_full: float
    calls: float
    excluded: bool = False


@dataclass
class EnergyReport:
    """Per-layer and total energy of one model on a set of batches (all figures per sample).

    Attributes:
        model: Model class name.
        constants: Prices used.
        num_samples: Sequences counted.
        mean_tokens: Real (unpadded) tokens per sample, when known.
        mean_positions: Token positions run per sample, padding included, when known.
        rows: Per-layer rows in execution order.
        macs: Dense MACs of all included matmuls.
        macs_priced: MACs priced as MACs (real-valued input).
        acs: Paper-convention accumulates.
        acs_full: Full-accounting accumulates.
        other_ops: Other float ops.
        energy_pj_paper: Total under the paper convention.
        energy_pj_full: Total under the full accounting.
        excluded_energy_pj_paper: Energy of excluded rows (paper convention), not in the totals.
        excluded_energy_pj_full: Energy of excluded rows (full accounting), not in the totals.
        exclude: Module-name patterns left out of the totals.
        firing_rates: Output firing rate of every spiking module, over real tokens.
        firing_rate_padded: All spikes over all spiking-module outputs at every position run,
            padding included (``None`` for an ANN).
        uncounted_ops: Aten ops seen without a cost rule (name -> calls over the whole run).
        teacher: The teacher's report on the same texts, if any.
    """

    model: str
    constants: EnergyTable
    num_samples: int
    mean_tokens: float | None
    mean_positions: float | None
    rows: list[LayerEnergy]
    macs: float
    macs_priced: float
    acs: float
    acs_full: float
    other_ops: float
    energy_pj_paper: float
    energy_pj_full: float
    excluded_energy_pj_paper: float = 0.0
    excluded_energy_pj_full: float = 0.0
    exclude: list[str] = field(default_factory=list)
    firing_rates: dict[str, float] = field(default_factory=dict)
    firing_rate_padded: float | None = None
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    teacher: EnergyReport | None = None

    @property
    def mean_firing_rate(self) -> float | None:
        """Unweighted mean of the spiking modules' output firing rates (``None`` for an ANN)."""
        if not self.firing_rates:
            return None
        return sum(self.firing_rates.values()) / len(self.firing_rates)

    @property
    def ratio_paper(self) -> float | None:
        """Student / teacher energy under the paper convention."""
        if self.teacher is None or not self.teacher.energy_pj_paper:
            return None
        return self.energy_pj_paper / self.teacher.energy_pj_paper

    @property
    def ratio_full(self) -> float | None:
        """Student / teacher energy under the full accounting."""
        if self.teacher is None or not self.teacher.energy_pj_full:
            return None
        return self.energy_pj_full / self.teacher.energy_pj_full

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``energy.json`` format)."""
        return {
            "model": self.model,
            "num_samples": self.num_samples,
            "mean_tokens": self.mean_tokens,
            "mean_positions": self.mean_positions,
            "constants": self.constants.to_dict(),
            "conventions": {
                "rule": BOOKING_RULE,
                PAPER: "E_MAC*MACs(real input) + E_AC*sum(fr*MACs)(binary/integer input); "
                "MACs include the T time steps",
                FULL: "paper + integer inputs as E_AC*MACs*mean|x| + other float ops at op_pj",
                "per_sample": "totals over the batches run (padding included) / num_samples",
            },
            "totals": {
                "macs": self.macs,
                "macs_priced": self.macs_priced,
                "acs": self.acs,
                "acs_full": self.acs_full,
                "other_ops": self.other_ops,
                "energy_pj_paper": self.energy_pj_paper,
                "energy_pj_full": self.energy_pj_full,
                "excluded_energy_pj_paper": self.excluded_energy_pj_paper,
                "excluded_energy_pj_full": self.excluded_energy_pj_full,
            },
            "exclude": list(self.exclude),
            "firing_rate": self.mean_firing_rate,
            "firing_rates": dict(self.firing_rates),
            "firing_rate_padded": self.firing_rate_padded,
            "uncounted_ops": dict(self.uncounted_ops),
            "layers": [vars(r).copy() for r in self.rows],
            "teacher": None if self.teacher is None else self.teacher.to_dict(),
            "ratio_paper": self.ratio_paper,
            "ratio_full": self.ratio_full,
        }

    def table(self, *, max_rows: int | None = None) -> str:
        """Pretty text: per-layer rows, totals, teacher totals and ratios, constants."""
        lines = [self._header()]
        head = (
            f"{'module':<34} {'op':<12} {'input':<14} {'rate':>6} {'|x|':>6} {'MACs':>8} "
            f"{'ACs':>8} {'ACs full':>8} {'other':>8} {'E paper':>10} {'E full':>10}"
        )
        lines += [head, "-" * len(head)]
        rows = self.rows if max_rows is None else self.rows[:max_rows]
        for r in rows:
            name = r.name if len(r.name) <= 34 else "…" + r.name[-33:]
            lines.append(
                f"{name:<34} {r.op:<12} {(r.input_kind or '-')[:14]:<14} "
                f"{_fmt_rate(r.input_rate):>6} {_fmt_rate(r.input_mean_magnitude):>6} "
                f"{_si(r.macs):>8} {_si(r.acs):>8} {_si(r.acs_full):>8} {_si(r.other_ops):>8} "
                f"{_si(r.energy_pj_paper * 1e-12, 'J'):>10} "
                f"{_si(r.energy_pj_full * 1e-12, 'J'):>10}" + ("  (excluded)" if r.excluded else "")
            )
        if max_rows is not None and len(self.rows) > max_rows:
            lines.append(f"... {len(self.rows) - max_rows} more rows")
        lines.append("-" * len(head))
        lines += self._summary()
        return "\n".join(lines)

    def _header(self) -> str:
        tokens = ""
        if self.mean_tokens is not None:
            tokens = f", {self.mean_tokens:.1f} real tokens"
            if self.mean_positions is not None:
                tokens += f" ({self.mean_positions:.1f} positions run, padding included)"
        return (
            f"Energy of {self.model}: per sample, {self.num_samples} samples{tokens}\n"
            f"Constants {self.constants.describe()}"
        )

    def _summary(self) -> list[str]:
        out = [
            f"booking rule: {BOOKING_RULE}",
            f"total per sample   paper convention {_si(self.energy_pj_paper * 1e-12, 'J')}"
            f"  (E_MAC x {_si(self.macs_priced)} MACs + E_AC x {_si(self.acs)} ACs)",
            f"                   full accounting  {_si(self.energy_pj_full * 1e-12, 'J')}"
            f"  (ACs with integer inputs by magnitude: {_si(self.acs_full)}; "
            f"+ {_si(self.other_ops)} other float ops)",
        ]
        if self.excluded_energy_pj_full:
            out.append(
                f"excluded ({', '.join(self.exclude)}): paper "
                f"{_si(self.excluded_energy_pj_paper * 1e-12, 'J')}, full "
                f"{_si(self.excluded_energy_pj_full * 1e-12, 'J')} (not in the totals)"
            )
        if self.mean_firing_rate is not None:
            out.append(
                f"mean firing rate of spiking modules (real tokens): {self.mean_firing_rate:.4f}"
            )
        if self.teacher is not None:
            t = self.teacher
            out.append(
                f"teacher {t.model}: paper {_si(t.energy_pj_paper * 1e-12, 'J')} "
                f"({_si(t.macs)} MACs), full {_si(t.energy_pj_full * 1e-12, 'J')}"
            )
            out.append(
                f"student / teacher: paper {_pct(self.ratio_paper)}, full {_pct(self.ratio_full)}"
            )
        if self.uncounted_ops:
            names = ", ".join(f"{k} x{v}" for k, v in sorted(self.uncounted_ops.items()))
            out.append(f"aten ops without a cost rule (not counted): {names}")
        return out


def _fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _si(x: float, unit: str = "") -> str:
    """``1234567 -> '1.23M'``; with a unit, ``1.2e-9, 'J' -> '1.2 nJ'``."""
    if x == 0:
        return f"0 {unit}".strip() if unit else "0"
    prefixes = [
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
        (1, ""),
        (1e-3, "m"),
        (1e-6, "µ"),
        (1e-9, "n"),
        (1e-12, "p"),
        (1e-15, "f"),
    ]
    if not unit:
        prefixes = [p for p in prefixes if p[0] >= 1]
    for scale, prefix in prefixes:
        if abs(x) >= scale:
            return f"{x / scale:.3g}{' ' if unit else ''}{prefix}{unit}"
    scale, prefix = prefixes[-1]
    return f"{x / scale:.3g}{' ' if unit else ''}{prefix}{unit}"


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(name, p) or name.startswith(p + ".") or name == p for p in patterns
    )


def _price_row(r: RowCounts, table: EnergyTable, n: int, excluded: bool) -> LayerEnergy:
    spike_macs = r.macs_binary + r.macs_integer
    acs = r.acs_binary + r.nonzero_integer
    acs_full = r.acs_binary + r.magnitude_integer
    kinds = "+".join(k for k in ("real", "binary", "integer") if k in r.input_kinds)
    paper = table.mac_pj * r.macs_real + table.ac_pj * acs
    full = table.mac_pj * r.macs_real + table.ac_pj * acs_full + table.op_pj * r.other_ops
    return LayerEnergy(
        name=r.module,
        op=r.op,
        kind=r.kind,
        input_kind=kinds,
        input_rate=acs / spike_macs if spike_macs else None,
        input_mean_magnitude=acs_full / spike_macs if spike_macs else None,
        macs=r.macs / n,
        acs=acs / n,
        acs_full=acs_full / n,
        macs_priced=r.macs_real / n,
        other_ops=r.other_ops / n,
        energy_pj_paper=paper / n,
        energy_pj_full=full / n,
        calls=r.calls / n,
        excluded=excluded,
    )


def price(
    counts: OpCounts,
    table: EnergyTable | str | None = None,
    *,
    exclude: Sequence[str] = (),
    model_name: str = "model",
) -> EnergyReport:
    """Turn counts into a per-sample :class:`EnergyReport` under both conventions.

    Args:
        counts: What an :class:`~spikeformers.energy.OpCounter` recorded; ``num_samples`` must be
            set (``0`` is treated as 1).
        table: Prices: an :class:`~spikeformers.energy.EnergyTable` or anything
            :func:`~spikeformers.energy.get_table` accepts (default ``45nm``).
        exclude: Module-name patterns (shell-style; a name also matches its submodules) whose
            rows are reported but left out of the totals.
        model_name: Name to print.
    """
    table = get_table(table)
    n = max(counts.num_samples, 1)
    rows = [_price_row(r, table, n, _matches(r.module, exclude)) for r in counts.rows]
    kept = [r for r in rows if not r.excluded]
    dropped = [r for r in rows if r.excluded]
    return EnergyReport(
        model=model_name,
        constants=table,
        num_samples=counts.num_samples,
        mean_tokens=None if counts.num_tokens is None else counts.num_tokens / n,
        mean_positions=None if counts.num_positions is None else counts.num_positions / n,
        rows=rows,
        macs=sum(r.macs for r in kept),
        macs_priced=sum(r.macs_priced for r in kept),
        acs=sum(r.acs for r in kept),
        acs_full=sum(r.acs_full for r in kept),
        other_ops=sum(r.other_ops for r in kept),
        energy_pj_paper=sum(r.energy_pj_paper for r in kept),
        energy_pj_full=sum(r.energy_pj_full for r in kept),
        excluded_energy_pj_paper=sum(r.energy_pj_paper for r in dropped),
        excluded_energy_pj_full=sum(r.energy_pj_full for r in dropped),
        exclude=list(exclude),
        firing_rates=counts.firing_rates(),
        firing_rate_padded=counts.firing_rate_padded(),
        uncounted_ops=dict(counts.uncounted),
    )


Batch = dict[str, torch.Tensor]


def _default_forward(model: nn.Module, batch: Batch) -> Any:
    from spikeformers.evaluation import forward_logits

    return forward_logits(model, batch)


def count_batches(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    forward: Callable[[nn.Module, Batch], Any] | None = None,
) -> OpCounts:
    """Run ``model`` on every batch (no grad, eval mode) inside one :class:`OpCounter`.

    Args:
        model: A spikeformers model or a ``transformers`` classifier.
        batches: Collated batches with ``input_ids`` ``[B, L]`` and ``attention_mask`` (and
            ``token_type_ids`` for teachers); moved to the model's device.
        forward: ``forward(model, batch)``; default
            :func:`~spikeformers.evaluation.forward_logits`.
    """
    from spikeformers.evaluation import to_device

    forward = forward or _default_forward
    param = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    samples, tokens, positions = 0, 0, 0
    have_mask = True
    try:
        with torch.no_grad(), OpCounter(model) as counter:
            for batch in batches:
                batch = to_device(batch, device)
                ids = batch["input_ids"]
                samples += ids.shape[0]
                positions += ids.numel()
                if "attention_mask" in batch:
                    tokens += int(batch["attention_mask"].sum())
                else:
                    have_mask = False
                forward(model, batch)
    finally:
        model.train(was_training)
    counts = counter.counts
    counts.num_samples = samples
    counts.num_positions = positions
    counts.num_tokens = tokens if have_mask else None
    return counts


def estimate(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    table: EnergyTable | str | None = None,
    teacher: nn.Module | None = None,
    teacher_batches: Iterable[Batch] | None = None,
    max_batches: int | None = None,
    exclude: Sequence[str] | None = None,
    forward: Callable[[nn.Module, Batch], Any] | None = None,
    counts_out: dict[str, OpCounts] | None = None,
) -> EnergyReport:
    """Count and price a model's inference on ``batches`` (and its teacher's on the same texts).

    Args:
        model: A spikeformers model (any family) or a ``transformers`` classifier.
        batches: Collated batches (``input_ids``, ``attention_mask``...), e.g. from
            :func:`spikeformers.data.make_dataloader`. Counts include padding; use batch size 1
            for padding-free per-sample figures.
        table: Prices (default ``45nm``, Horowitz ISSCC 2014).
        teacher: Optional ANN teacher counted on the same batches.
        teacher_batches: The same texts encoded with the teacher's tokenizer, when it differs
            from the student's; default ``batches``.
        max_batches: Count at most this many batches.
        exclude: Module-name patterns reported but left out of the totals (e.g. distillation-only
            heads); default the model's ``energy_exclude`` attribute, if any.
        forward: ``forward(model, batch)``; default
            :func:`~spikeformers.evaluation.forward_logits`.
        counts_out: If given, receives the raw counts under ``"student"`` (and ``"teacher"``),
            for estimates built on them (:mod:`spikeformers.energy.memory`).

    Returns:
        The student's :class:`EnergyReport`, with ``teacher`` and the ratios filled in when a
        teacher was given.
    """
    table = get_table(table)
    batches = list(itertools.islice(batches, max_batches))
    if exclude is None:
        exclude = tuple(getattr(model, "energy_exclude", ()))
    counts = count_batches(model, batches, forward=forward)
    if counts_out is not None:
        counts_out["student"] = counts
    report = price(
        counts,
        table,
        exclude=exclude,
        model_name=type(model).__name__,
    )
    if teacher is not None:
        t_batches = batches if teacher_batches is None else teacher_batches
        t_batches = list(itertools.islice(t_batches, max_batches))
        t_counts = count_batches(teacher, t_batches, forward=forward)
        if counts_out is not None:
            counts_out["teacher"] = t_counts
        report.teacher = price(
            t_counts,
            table,
            exclude=tuple(getattr(teacher, "energy_exclude", ())),
            model_name=type(teacher).__name__,
        )
    return report
