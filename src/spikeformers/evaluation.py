"""Evaluation shared by every model: logits, task metrics and per-layer firing rates.

Works for spikeformers students and for ``transformers`` teachers alike, so a teacher and its
students are scored by the same code on the same batches.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

from spikeformers.data.examples import TaskSpec
from spikeformers.data.metrics import compute_metrics
from spikeformers.models.base import SpikingModel
from spikeformers.neurons.base import SpikingModule


def forward_logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B, C]`` logits of a spikeformers model or a ``transformers`` classifier."""
    if isinstance(model, SpikingModel):
        return model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    return model(**inputs).logits


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move every tensor of a collated batch to ``device``."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def spiking_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Outermost spiking modules (:class:`~spikeformers.neurons.base.SpikingModule`), in order.

    A LIF's inner surrogate is not listed twice; a wrapper that is itself a spiking module
    (SNN-BERT's ``HeavisideEncoder``, which zeroes its surrogate's spikes at padding) is listed
    instead of its surrogate.
    """
    found: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if isinstance(m, SpikingModule) and not any(name.startswith(p + ".") for p, _ in found):
            found.append((name, m))
    return found


def spike_layouts(model: nn.Module) -> dict[str, str | None]:
    """Layout (``"TBLD"``...) of every spiking module's output, ``None`` where none is known.

    Read from the model's declared :attr:`~spikeformers.models.base.SpikingModel.spike_layouts`
    rules (``(module-name pattern, layout)``, first match wins); a model without them (a
    ``transformers`` teacher) has none.
    """
    rules = getattr(model, "spike_layouts", ())
    out: dict[str, str | None] = {}
    for name, _ in spiking_modules(model):
        out[name] = next((lay for pat, lay in rules if fnmatch.fnmatchcase(name, pat)), None)
    return out


def token_weights(
    out: torch.Tensor, mask: torch.Tensor, layout: str | None, name: str
) -> torch.Tensor:
    """The ``[B, L]`` mask laid out to broadcast against a spiking module's output.

    Args:
        out: The module's output, e.g. ``[T, B, L, D]``.
        mask: ``[B, L]``, 1 for real tokens, 0 for padding.
        layout: One letter per axis of ``out`` with ``B`` and ``L`` among them (``"TBLD"``).
        name: Module name, for the error message.

    Returns:
        A float64 tensor with ``out.dim()`` axes, ``B`` and ``L`` in place and 1 elsewhere.

    Raises:
        ValueError: No layout is known, or ``out`` does not match it.
    """
    b, n = mask.shape
    if layout is None:
        raise ValueError(
            f"spiking module {name!r}: no token layout known for this model family, so firing "
            "rates over real tokens cannot be computed (declare it in the family's "
            "spike_layouts class attribute)"
        )
    ib, il = layout.find("B"), layout.find("L")
    if out.dim() != len(layout) or out.shape[ib] != b or out.shape[il] != n:
        raise ValueError(
            f"spiking module {name!r}: output shape {tuple(out.shape)} does not match its layout "
            f"{layout} for a [B, L] = [{b}, {n}] attention mask"
        )
    m = mask.to(device=out.device, dtype=torch.float64)
    if ib > il:
        m = m.t()
    shape = [1] * out.dim()
    shape[ib], shape[il] = b, n
    return m.reshape(shape)


def real_token_spikes(
    out: torch.Tensor,
    mask: torch.Tensor | None,
    layout: str | None,
    name: str,
    *,
    nonzero: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and neuron-steps of one spiking module's output, over real tokens only.

    The one place that restricts a spike count to real tokens (used by
    :func:`record_firing_rates` and the energy counter).

    Args:
        out: The module's output, e.g. ``[T, B, L, D]``.
        mask: ``[B, L]``, 1 real, 0 padding; ``None`` means every position is real.
        layout: The output's layout (see :func:`token_weights`).
        name: Module name, for errors.
        nonzero: Count non-zero outputs instead of summing them (graded spikes count once).

    Returns:
        ``(spikes, elements)``: float64 scalars on ``out``'s device.
    """

    def count(t: torch.Tensor) -> torch.Tensor:
        if nonzero:
            return torch.count_nonzero(t).to(torch.float64)
        return t.sum(dtype=torch.float64)

    if mask is None:
        return count(out), out.new_tensor(float(out.numel()), dtype=torch.float64)
    w = token_weights(out, mask, layout, name)
    return count(out * w), w.sum() * (out.numel() // (mask.shape[0] * mask.shape[1]))


@dataclass
class FiringRates:
    """Accumulated spike counts per spiking module, over real tokens and over every position.

    ``rate = spikes / elements``: the fraction of ones over every neuron and time step of the
    REAL tokens (the batches' attention masks say which), so rates are comparable across
    families and batchings. The ``*_padded`` fields count every position run, padding included
    (what a padded batch costs, not a property of the model).
    """

    spikes: dict[str, float] = field(default_factory=dict)
    elements: dict[str, int] = field(default_factory=dict)
    spikes_padded: dict[str, float] = field(default_factory=dict)
    elements_padded: dict[str, int] = field(default_factory=dict)
    tokens: int | None = 0

    def spikes_per_token(self) -> float | None:
        """All spikes of every spiking module over all time steps, per real token (the sum over
        modules of rate x neurons x time steps per token); ``None`` when no token was counted."""
        return sum(self.spikes.values()) / self.tokens if self.tokens else None

    def layers(self) -> dict[str, float]:
        """Firing rate of each spiking module over real tokens."""
        return {k: self.spikes[k] / max(self.elements[k], 1) for k in self.spikes}

    def mean(self) -> float:
        """Overall rate over real tokens: all spikes over all neuron-steps."""
        n = sum(self.elements.values())
        return sum(self.spikes.values()) / n if n else 0.0

    def mean_padded(self) -> float:
        """Overall rate over every position run, padding included."""
        n = sum(self.elements_padded.values())
        return sum(self.spikes_padded.values()) / n if n else 0.0

    def merge(self, other: FiringRates) -> FiringRates:
        """The counts of both (e.g. two ranks' shards): spikes, elements and tokens add up."""

        def add(a: dict, b: dict) -> dict:
            return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}

        tokens = None if self.tokens is None or other.tokens is None else self.tokens + other.tokens
        return FiringRates(
            add(self.spikes, other.spikes),
            add(self.elements, other.elements),
            add(self.spikes_padded, other.spikes_padded),
            add(self.elements_padded, other.elements_padded),
            tokens,
        )

    def metrics(self) -> dict:
        """``firing_rate``, ``firing_rates`` (per layer), ``firing_rate_padded`` and, when the
        tokens are known, ``spikes_per_token``: what :func:`evaluate` reports."""
        out = {
            "firing_rate": self.mean(),
            "firing_rates": self.layers(),
            "firing_rate_padded": self.mean_padded(),
        }
        if self.spikes_per_token() is not None:
            out["spikes_per_token"] = self.spikes_per_token()
        return out


@contextlib.contextmanager
def record_firing_rates(model: nn.Module) -> Iterator[FiringRates]:
    """Context manager: count spikes of every spiking module during the forwards inside it.

    Each forward's ``attention_mask`` (keyword argument of ``model``; none means no padding)
    decides which positions are real; the family's ``spike_layouts`` say where the token axis is.
    """
    rates = FiringRates()
    totals: dict[str, list[torch.Tensor]] = {}  # name -> [spikes, elements, spikes_pad]
    current: dict[str, torch.Tensor | None] = {"mask": None}
    tokens: list[torch.Tensor | None] = []  # real tokens of each forward (None: unknown)
    layouts = spike_layouts(model)
    handles = []

    def on_forward(_m: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        current["mask"] = None if mask is None or bool(mask.all()) else mask
        ids = kwargs.get("input_ids", args[0] if args else None)
        if mask is not None:
            tokens.append(mask.sum(dtype=torch.float64))
        elif isinstance(ids, torch.Tensor) and ids.dim() == 2:
            tokens.append(torch.tensor(float(ids.numel()), dtype=torch.float64))
        else:
            tokens.append(None)

    def hook(name: str, key: str):
        def fn(_m: nn.Module, _inp, out: torch.Tensor) -> None:
            y = out.detach()
            s_pad = y.sum(dtype=torch.float64)
            s, n = real_token_spikes(y, current["mask"], layouts[name], name)
            acc = totals.setdefault(
                key, [torch.zeros((), dtype=torch.float64, device=y.device)] * 3
            )
            totals[key] = [acc[0] + s, acc[1] + n, acc[2] + s_pad]
            rates.elements_padded[key] = rates.elements_padded.get(key, 0) + y.numel()

        return fn

    handles.append(model.register_forward_pre_hook(on_forward, with_kwargs=True))
    for name, m in spiking_modules(model):
        handles.append(m.register_forward_hook(hook(name, name or type(m).__name__)))
    try:
        yield rates
    finally:
        for h in handles:
            h.remove()
        for k, (s, n, s_pad) in totals.items():
            rates.spikes[k] = float(s)
            rates.elements[k] = round(float(n))
            rates.spikes_padded[k] = float(s_pad)
        known = all(t is not None for t in tokens)
        rates.tokens = round(sum(float(t) for t in tokens)) if known else None


def padding_invariant(model: nn.Module) -> bool:
    """Whether ``model``'s logits of an example do not depend on the padding around it.

    True for every spikeformers family except a SpikeBERT with ``mask_padding=False`` (the
    paper's model: ``[PAD]`` is an ordinary token). ``False`` for a ``transformers`` model (not
    checked here), so it keeps the batches it is given. Only a padding-invariant model may be
    scored on length-bucketed batches (see :func:`spikeformers.workflows.loaders.loader`).
    """
    return isinstance(model, SpikingModel) and bool(getattr(model.config, "mask_padding", True))


def predict(
    model: nn.Module, loader: DataLoader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All logits ``[N, C]`` (and labels ``[N]`` when the data has them), in dataset order.

    Runs under :func:`torch.inference_mode` in eval mode. Batches that carry ``index`` (every
    :class:`~spikeformers.data.PadCollator` batch) are put back in dataset order, so a
    length-bucketed loader gives the rows of a sequential one; otherwise rows come in loader
    order.
    """
    was_training = model.training
    model.eval()
    logits, labels, index = [], [], []
    try:
        with torch.inference_mode():
            for batch in loader:
                batch = to_device(batch, device)
                logits.append(forward_logits(model, batch).float().cpu())
                if "labels" in batch:
                    labels.append(batch["labels"].cpu())
                if "index" in batch:
                    index.append(batch["index"].cpu())
    finally:
        model.train(was_training)
    out, lab = torch.cat(logits), (torch.cat(labels) if labels else None)
    if len(index) == len(logits):  # every batch says where its rows belong
        order = torch.cat(index).argsort(stable=True)
        out, lab = out[order], (None if lab is None else lab[order])
    return out, lab


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    task: TaskSpec,
    device: torch.device,
    *,
    firing_rates: bool = True,
) -> dict:
    """Task metrics, and for spiking models the mean and per-layer firing rates.

    Returns:
        ``{"accuracy": ..., ..., "num_examples": N}`` plus, when the model has spiking modules,
        ``"firing_rate"`` (overall) and ``"firing_rates"`` (per layer), both over real tokens,
        ``"firing_rate_padded"`` (overall, over every position run, padding included) and
        ``"spikes_per_token"`` (every module's spikes over all time steps per real token, when the
        forwards show their tokens).
    """
    spiking = firing_rates and bool(spiking_modules(model))
    ctx = record_firing_rates(model) if spiking else contextlib.nullcontext()
    with ctx as rates:
        logits, labels = predict(model, loader, device)
    if labels is None:
        raise ValueError("evaluation needs labelled data")
    result: dict = dict(compute_metrics(logits, labels, task=task))
    result["num_examples"] = int(labels.shape[0])
    if spiking:
        result |= rates.metrics()
    return result
