"""Spikes saved for backward as bytes: autograd keeps integer-valued operands as ``uint8``.

A Linear layer or a matrix product whose input is spikes (``{0, 1}``) or a small sum of spikes
(the additive residual stream of a Spikformer) saves that input for its backward, in the float
dtype it was computed in: 4 bytes for what one byte holds exactly. Inside
:func:`save_packed`, autograd saves any view of the named tensors as ``uint8`` (same shape and
strides) and restores it to the float dtype when the backward needs it, so the backward runs the
same kernels on the same values: gradients are bit for bit those without packing.

The caller vouches that the tensors hold integers in ``[0, 255]``; nothing checks it (a check
would cost a full pass over every tensor, as much as the packing saves in time). A model
enables packing only while all of its spike functions spike (see :func:`all_spiking`).

Packing and recomputing ``neuron(LayerNorm(.))`` in backward save memory and may cost time: on
2 CPU cores, separate processes gave a SpikeBERT 4 x 256 step 3.15 s with both on and 2.06 s off
(peak RSS 2283 against 2713 MiB), but an interleaved check in one process
(``benchmarks/memory_saving_toggles.py``) found no such gap; docs/RESULTS.md has both. The
models' config field ``memory_saving`` (:data:`MEMORY_SAVING`) chooses: ``"on"``, ``"off"``, or
``"auto"`` (the default: on for tensors on an accelerator, where memory bounds the batch; off on
the CPU). The numbers are the same either way (bit for bit, tested).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from spikeformers.neurons.surrogate import Surrogate

__all__ = ["MEMORY_SAVING", "all_spiking", "memory_saving_active", "save_packed"]

MEMORY_SAVING = ("auto", "on", "off")
"""Values of the ``memory_saving`` config field of SpikeBERT and SNN-BERT."""


def memory_saving_active(mode: str | bool, like: torch.Tensor) -> bool:
    """Whether ``mode`` (:data:`MEMORY_SAVING`, or a bool) saves memory for tensors like ``like``:
    ``"auto"`` does on an accelerator, not on the CPU."""
    if isinstance(mode, bool):
        return mode
    return mode == "on" or (mode == "auto" and like.device.type != "cpu")


_Key = tuple[int, int, tuple[int, ...], tuple[int, ...]]
_PACKED = object()  # tags a packed entry


def _key(t: torch.Tensor) -> _Key:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements tile its memory exactly (any dimension order, no gaps/overlap)."""
    expected = 1
    for stride, size in sorted((s, n) for s, n in zip(t.stride(), t.shape, strict=True) if n > 1):
        if stride != expected:
            return False
        expected *= size
    return True


class _Packer:
    """The pack/unpack hooks of one :func:`save_packed` context."""

    def __init__(self, tensors: tuple[torch.Tensor, ...]) -> None:
        self.storages = {t.untyped_storage().data_ptr() for t in tensors}
        self.cache: dict[_Key, tuple[Any, ...]] = {}  # one byte copy per saved view

    def pack(self, t: torch.Tensor) -> Any:
        if not t.is_floating_point() or t.untyped_storage().data_ptr() not in self.storages:
            return t
        key = _key(t)
        if key not in self.cache:
            # A dense view keeps its strides, so the backward runs the same kernels on it.
            stride = t.stride() if _dense(t) else None
            if stride is None:
                u8 = torch.empty(t.shape, dtype=torch.uint8, device=t.device)
            else:
                u8 = torch.empty_strided(t.shape, stride, dtype=torch.uint8, device=t.device)
            self.cache[key] = (_PACKED, u8.copy_(t), t.dtype, stride)
        return self.cache[key]

    @staticmethod
    def unpack(obj: Any) -> torch.Tensor:
        if not (isinstance(obj, tuple) and obj and obj[0] is _PACKED):
            return obj
        _, u8, dtype, stride = obj
        if stride is None:
            return u8.to(dtype)
        out = torch.empty_strided(u8.shape, stride, dtype=dtype, device=u8.device)
        return out.copy_(u8)


@contextmanager
def save_packed(*tensors: torch.Tensor, enabled: bool = True) -> Iterator[None]:
    """Within the context, autograd saves every view of ``tensors`` as ``uint8``.

    Args:
        tensors: Float tensors holding integers in ``[0, 255]`` (spikes, sums of spikes).
        enabled: ``False`` makes this a no-op (no hooks installed).

    Example::

        with save_packed(spikes):
            y = linear(spikes)  # the Linear's backward gets spikes back from bytes
    """
    if not enabled or not torch.is_grad_enabled():
        yield
        return
    packer = _Packer(tensors)
    with torch.autograd.graph.saved_tensors_hooks(packer.pack, packer.unpack):
        yield


def all_spiking(model: nn.Module) -> bool:
    """Whether every :class:`Surrogate` in ``model`` emits spikes (``spiking=True``).

    Only then are the activations that :func:`save_packed` packs integers.
    """
    return all(m.spiking for m in model.modules() if isinstance(m, Surrogate))
