"""Energy and spike analysis: operation counts priced in picojoules.

- :mod:`~spikeformers.energy.counting`: :class:`OpCounter`, a ``TorchDispatchMode`` that counts
  the aten ops of any model and attributes them to modules (no per-family code);
- :mod:`~spikeformers.energy.constants`: :class:`EnergyTable` prices with their source (default
  ``45nm``: Horowitz, ISSCC 2014);
- :mod:`~spikeformers.energy.estimate`: :func:`price` and :func:`estimate`, giving an
  :class:`EnergyReport` under the paper convention and under a full accounting, for a student and
  its teacher on the same texts.

Example::

    report = estimate(student, loader, teacher=teacher, max_batches=100)
    print(report.table())
"""

from spikeformers.energy.constants import DEFAULT_TABLE, TABLES, EnergyTable, get_table
from spikeformers.energy.counting import OpCounter, OpCounts, RowCounts, describe_input
from spikeformers.energy.estimate import (
    EnergyReport,
    LayerEnergy,
    count_batches,
    estimate,
    price,
)

__all__ = [
    "DEFAULT_TABLE",
    "TABLES",
    "EnergyReport",
    "EnergyTable",
    "LayerEnergy",
    "OpCounter",
    "OpCounts",
    "RowCounts",
    "count_batches",
    "describe_input",
    "estimate",
    "get_table",
    "price",
]
