"""glibc's allocator on CPU: give freed tensor memory back to the operating system.

PyTorch's CPU tensors come from ``malloc``. glibc serves a block of at least
``M_MMAP_THRESHOLD`` bytes with its own memory mapping, unmapped when freed; smaller blocks come
from the heap, which keeps freed blocks for reuse. The threshold starts at 128 KiB and is
*dynamic*: freeing a mapped block raises it to that block's size (up to 32 MiB on 64-bit), so
after the first training step nearly every activation lives on the heap, and the heap's high-water
mark (fragmented by the step's mix of sizes) sets the process's peak memory (RSS), well above the
bytes live at any moment. Fixing the threshold with ``mallopt`` (which also switches the dynamic
adjustment off) makes every block of that size or more a mapping of its own: peak RSS then
follows the live tensors. The price is page faults: each such allocation is fresh, zero-filled
memory from the kernel (measured at SpikeBERT 4x256: 5.6x the page faults and 1.9x the CPU
seconds per training step, for 0.44x the peak RSS; ``benchmarks/allocator_cost.py``). It must
be set before the heap has grown: later, freed heap blocks are reused first.

:func:`set_malloc_mmap_threshold` is the one place that does it (``ctypes``, glibc only; a no-op
returning ``False`` elsewhere). The trainer calls it on CPU with
``TrainConfig.malloc_mmap_threshold`` (``--malloc-mmap-threshold``; default 0, which leaves the
allocator alone: opting in trades about 2x the CPU time of a step for about 0.4x its peak memory,
so it is for runs that do not fit otherwise; :data:`LOW_MEMORY_MMAP_THRESHOLD` is the measured
value). It changes where memory comes from, never a computed value.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["LOW_MEMORY_MMAP_THRESHOLD", "set_malloc_mmap_threshold"]

LOW_MEMORY_MMAP_THRESHOLD = 65536
"""Bytes: blocks of 64 KiB or more are mapped on their own (``MALLOC_MMAP_THRESHOLD_=65536``)."""

_M_MMAP_THRESHOLD = -3  # mallopt parameter number, from glibc's <malloc.h>
_MAX_THRESHOLD = 32 * 2**20  # glibc's HEAP_MAX / 2 on 64-bit: mallopt rejects larger values


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has ``gnu_get_libc_version`` and ``mallopt``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return None  # e.g. musl
    return libc


def set_malloc_mmap_threshold(nbytes: int) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, nbytes)``: blocks of ``nbytes`` or more get their own mapping.

    Process-wide and not undone (glibc has no call that restores the dynamic threshold).

    Args:
        nbytes: Threshold in bytes, ``1 .. 32 MiB``.

    Returns:
        Whether the setting took effect (``False`` off glibc, or if glibc refused it).

    Raises:
        ValueError: If ``nbytes`` is out of range.
    """
    if not 0 < nbytes <= _MAX_THRESHOLD:
        raise ValueError(f"malloc mmap threshold must be in 1 .. {_MAX_THRESHOLD}, got {nbytes}")
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(nbytes)))
