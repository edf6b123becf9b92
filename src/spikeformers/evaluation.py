"""Evaluation shared by every model: logits, task metrics and per-layer firing rates.

Works for spikeformers students and for ``transformers`` teachers alike, so a teacher and its
students are scored by the same code on the same batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

from spikeformers.data.examples import TaskSpec
from spikeformers.data.metrics import compute_metrics
from spikeformers.models.base import SpikingModel
from spikeformers.neurons.bpsn import BPSN
from spikeformers.neurons.if_node import IFNode
from spikeformers.neurons.lif import LIF
from spikeformers.neurons.surrogate import Surrogate

# Module types whose outputs are spikes. Families with other neurons append theirs here.
SPIKING_MODULE_TYPES: list[type[nn.Module]] = [LIF, BPSN, IFNode, Surrogate]


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
    """Outermost modules that emit spikes (a LIF's inner surrogate is not listed twice)."""
    types = tuple(SPIKING_MODULE_TYPES)
    found: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if isinstance(m, types) and not any(name.startswith(p + ".") for p, _ in found):
            found.append((name, m))
    return found


@dataclass
class FiringRates:
    """Accumulated spike counts per spiking module.

    ``rate = spikes / elements``: the fraction of ones over every neuron, time step and token
    (padding included: padded positions are computed like any other).
    """

    spikes: dict[str, float] = field(default_factory=dict)
    elements: dict[str, int] = field(default_factory=dict)

    def layers(self) -> dict[str, float]:
        """Firing rate of each spiking module."""
        return {k: self.spikes[k] / max(self.elements[k], 1) for k in self.spikes}

    def mean(self) -> float:
        """Overall rate: all spikes over all neuron-steps."""
        n = sum(self.elements.values())
        return sum(self.spikes.values()) / n if n else 0.0


@contextlib.contextmanager
def record_firing_rates(model: nn.Module) -> Iterator[FiringRates]:
    """Context manager: count spikes of every spiking module during the forwards inside it."""
    rates = FiringRates()
    totals: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name: str):
        def fn(_m: nn.Module, _inp, out: torch.Tensor) -> None:
            s = out.detach().sum(dtype=torch.float64)
            totals[name] = totals[name] + s if name in totals else s
            rates.elements[name] = rates.elements.get(name, 0) + out.numel()

        return fn

    for name, m in spiking_modules(model):
        handles.append(m.register_forward_hook(hook(name or type(m).__name__)))
    try:
        yield rates
    finally:
        for h in handles:
            h.remove()
        rates.spikes.update({k: float(v) for k, v in totals.items()})


@torch.no_grad()
def predict(
    model: nn.Module, loader: DataLoader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All logits ``[N, C]`` (and labels ``[N]`` when the data has them), in loader order."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        for batch in loader:
            batch = to_device(batch, device)
            logits.append(forward_logits(model, batch).float().cpu())
            if "labels" in batch:
                labels.append(batch["labels"].cpu())
    finally:
        model.train(was_training)
    return torch.cat(logits), (torch.cat(labels) if labels else None)


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
        ``{"accuracy": ..., ..., "num_examples": N}`` plus ``"firing_rate"`` (overall) and
        ``"firing_rates"`` (per layer) when the model has spiking modules.
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
        result["firing_rate"] = rates.mean()
        result["firing_rates"] = rates.layers()
    return result
