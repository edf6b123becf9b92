"""Energy prices per operation: the pJ tables that turn operation counts into energy.

Counting (:mod:`spikeformers.energy.counting`) never sees these numbers; pricing
(:func:`spikeformers.energy.price`) multiplies counts by one :class:`EnergyTable`:

- ``mac_pj``: one multiply-accumulate, for matmuls whose input activations are real-valued;
- ``ac_pj``: one accumulate, for matmuls driven by spikes (or by small integer counts);
- ``op_pj``: one "other" floating-point operation (LayerNorm, softmax, GELU, membrane updates,
  residual adds, bias adds, pooling...), used only by the full accounting.

The default, ``45nm``, is the field's convention: Horowitz, "Computing's energy problem (and what
we can do about it)", ISSCC 2014, 45 nm CMOS, 32-bit float: add 0.9 pJ, multiply 3.7 pJ, so a
MAC is 4.6 pJ and an AC 0.9 pJ (as in Spikformer and SpikeBERT). Other float ops are priced as one
fp32 MAC (4.6 pJ): SpikeBERT prices each of BERT's FLOPs at 4.6 pJ, and our per-element op counts
mix adds (cheaper) with exp/divide/sqrt (dearer). Memory traffic is not priced by any table.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TABLE", "TABLES", "EnergyTable", "get_table"]

_HOROWITZ = 'M. Horowitz, "Computing\'s energy problem (and what we can do about it)", ISSCC 2014'


@dataclass(frozen=True, kw_only=True)
class EnergyTable:
    """Energy per operation in picojoules, with the source of the numbers.

    Attributes:
        name: Short name (``45nm``, ``custom``...).
        mac_pj: Energy of one multiply-accumulate (real-valued input).
        ac_pj: Energy of one accumulate (spike-driven input).
        op_pj: Energy of one other floating-point operation (full accounting only).
        source: Where the numbers come from; printed with every report.
    """

    name: str = "custom"
    mac_pj: float
    ac_pj: float
    op_pj: float
    source: str = "user-supplied values"

    def __post_init__(self) -> None:
        for key in ("mac_pj", "ac_pj", "op_pj"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and value >= 0 and value == value):
                raise ValueError(f"EnergyTable.{key} must be a number >= 0, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line: the prices and their source."""
        return (
            f"{self.name}: E_MAC {self.mac_pj:g} pJ, E_AC {self.ac_pj:g} pJ, "
            f"other float op {self.op_pj:g} pJ (source: {self.source})"
        )


TABLES: dict[str, EnergyTable] = {
    "45nm": EnergyTable(
        name="45nm",
        mac_pj=4.6,
        ac_pj=0.9,
        op_pj=4.6,
        source=f"{_HOROWITZ}; 45 nm, 32-bit float: MAC = mult 3.7 + add 0.9 pJ, AC = add 0.9 pJ; "
        "other ops priced as one MAC",
    ),
    "45nm-fp16": EnergyTable(
        name="45nm-fp16",
        mac_pj=1.5,
        ac_pj=0.4,
        op_pj=1.5,
        source=f"{_HOROWITZ}; 45 nm, 16-bit float: mult 1.1 + add 0.4 pJ; other ops as one MAC",
    ),
    "45nm-int32": EnergyTable(
        name="45nm-int32",
        mac_pj=3.2,
        ac_pj=0.1,
        op_pj=4.6,
        source=f"{_HOROWITZ}; 45 nm, 32-bit int: mult 3.1 + add 0.1 pJ; other ops as fp32 MAC",
    ),
    "45nm-int8": EnergyTable(
        name="45nm-int8",
        mac_pj=0.23,
        ac_pj=0.03,
        op_pj=4.6,
        source=f"{_HOROWITZ}; 45 nm, 8-bit int: mult 0.2 + add 0.03 pJ; other ops as fp32 MAC",
    ),
}
DEFAULT_TABLE = "45nm"


def get_table(spec: str | EnergyTable | dict | None = None) -> EnergyTable:
    """Resolve a table from a name, ``key=value`` pairs, a JSON file, a dict or a table.

    Args:
        spec: ``None`` (the default ``45nm``); an :class:`EnergyTable`; a name in :data:`TABLES`;
            a path to a JSON file holding the table's fields; a dict of its fields; or a string
            of comma-separated overrides of the default, e.g. ``"mac=3.1,ac=0.1"`` (keys ``mac``,
            ``ac``, ``op`` or the field names, plus ``name`` and ``source``).

    Raises:
        ValueError: An unknown name, a malformed string or invalid values.
    """
    if spec is None:
        return TABLES[DEFAULT_TABLE]
    if isinstance(spec, EnergyTable):
        return spec
    if isinstance(spec, dict):
        return _from_fields(spec)
    if spec in TABLES:
        return TABLES[spec]
    if spec.endswith(".json") and Path(spec).is_file():
        try:
            fields = json.loads(Path(spec).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{spec}: not a JSON energy table ({e})") from None
        if not isinstance(fields, dict):
            raise ValueError(f"{spec}: expected a JSON object of table fields")
        return _from_fields({"source": spec, **fields})
    if "=" in spec:
        fields: dict[str, Any] = {}
        for item in spec.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"energy table {spec!r}: expected key=value, got {item!r}")
            fields[key.strip()] = value.strip()
        base = TABLES[DEFAULT_TABLE].to_dict()
        base.update(name="custom", source=f"{base['source']} (overridden: {spec})")
        return _from_fields({**base, **fields})
    raise ValueError(
        f"unknown energy table {spec!r}; choose one of {sorted(TABLES)}, give key=value pairs "
        "(mac=4.6,ac=0.9,op=4.6) or a JSON file"
    )


_ALIASES = {"mac": "mac_pj", "ac": "ac_pj", "op": "op_pj"}


def _from_fields(fields: dict[str, Any]) -> EnergyTable:
    names = {f.name for f in dataclasses.fields(EnergyTable)}
    out: dict[str, Any] = {}
    for key, value in fields.items():
        key = _ALIASES.get(key, key)
        if key not in names:
            raise ValueError(f"unknown energy table field {key!r}; known: {sorted(names)}")
        if key.endswith("_pj"):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"energy table {key}={value!r} is not a number") from None
        out[key] = value
    missing = {"mac_pj", "ac_pj", "op_pj"} - set(out)
    if missing:
        raise ValueError(f"energy table lacks {sorted(missing)}")
    return EnergyTable(**out)
