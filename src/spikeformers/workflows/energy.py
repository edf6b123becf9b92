"""``energy_of_run``: count and price a saved model (and its teacher) on a split of the data."""

from __future__ import annotations

from pathlib import Path

from spikeformers.data.config import DataArgs, load_data, model_label_set
from spikeformers.energy.constants import get_table
from spikeformers.energy.estimate import estimate
from spikeformers.energy.memory import (
    CONVENTION_MEANINGS,
    MEMORY,
    MemoryTable,
    memory_payload,
    precision_tables,
)
from spikeformers.utils.seed import pick_device
from spikeformers.workflows.inference import load_any
from spikeformers.workflows.loaders import loader


def energy_of_run(
    model_dir: str | Path,
    data: DataArgs,
    *,
    split: str = "test",
    teacher_dir: str | Path | None = None,
    max_samples: int | None = None,
    batch_size: int = 1,
    table: str = "45nm",
    exclude: list[str] | None = None,
    device: str | None = None,
    model_overrides: dict | None = None,
    precision: str | None = None,
    weights_in: str = "sram",
):
    """Count and price a saved model (and its teacher) on a split of ``data``.

    Args:
        model_dir: Saved student (or teacher) folder.
        data: :class:`~spikeformers.data.config.DataArgs` naming the texts.
        split: ``train``, ``validation`` or ``test``.
        teacher_dir: Fine-tuned teacher folder, counted on the same texts.
        max_samples: Count only the first N texts of the split.
        batch_size: Texts per forward (1: nothing padded, exact per-text counts).
        table: Price table name, ``key=value`` overrides or a JSON file.
        exclude: Module-name patterns reported but left out of the totals.
        device: ``cpu``, ``cuda``... (default: CUDA when present).
        model_overrides: Inference-time config of a saved spiking model (e.g. ``time_steps``).
        precision: ``fp32``, ``fp16`` or ``int8``: the 45 nm tables of that precision for the
            arithmetic and the memory-aware estimate (``table`` must then be the default).
        weights_in: ``sram`` or ``dram``: where the memory-aware estimate reads weights from.

    Returns:
        ``(report, payload)``: the :class:`EnergyReport` and the ``energy.json`` dict.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"--max-samples must be >= 1, got {max_samples}")
    if precision is not None:
        if table != "45nm":
            raise ValueError("give --precision or --table, not both")
        prices, memory = precision_tables(precision, weights_in=weights_in)
    else:
        prices, memory = get_table(table), MemoryTable(weights_in=weights_in)
    dev = pick_device(device)
    model, tokenizer = load_any(model_dir, model_overrides)
    # Only the split counted is needed (--test-file alone will do); labels are read with the
    # model's label set, though energy needs none (an unlabelled test file is fine).
    splits = load_data(data, need_train=False, labels=model_label_set(model))
    examples = list(getattr(splits, split))[:max_samples]
    if not examples:
        given = data.files()
        hint = f" (files given: {', '.join(given)}; give --{split}-file)" if given else ""
        raise ValueError(f"the {split} split of {splits.task.name} is empty{hint}")
    batches = loader(examples, tokenizer, data, batch_size, shuffle=False)
    teacher, teacher_loader = None, None
    if teacher_dir:
        teacher, teacher_tok = load_any(teacher_dir)
        teacher.to(dev)
        teacher_loader = loader(examples, teacher_tok, data, batch_size, shuffle=False)
    model.to(dev)
    counts: dict = {}
    report = estimate(
        model,
        batches,
        table=prices,
        teacher=teacher,
        teacher_batches=teacher_loader,
        exclude=exclude,
        counts_out=counts,
    )
    payload = {
        **_with_memory(report, counts, model, teacher, prices, memory),
        "model_dir": str(model_dir),
        "teacher_dir": str(teacher_dir) if teacher_dir else None,
        "task": splits.task.name,
        "split": split,
        "batch_size": batch_size,
        "max_length": data.max_length,
        "device": str(dev),
        "model_overrides": dict(model_overrides or {}),
    }
    return report, payload


def _with_memory(report, counts: dict, model, teacher, prices, memory) -> dict:
    """``report.to_dict()`` plus the memory-aware convention: its totals beside the others
    (``totals.energy_pj_memory``, the teacher's too), the ``memory`` section and the break-even
    firing rates (:mod:`spikeformers.energy.memory`)."""
    out = report.to_dict()
    mem = memory_payload(
        counts["student"],
        model,
        counts.get("teacher"),
        teacher,
        prices,
        memory,
        exclude=report.exclude,
        teacher_exclude=report.teacher.exclude if report.teacher is not None else (),
    )
    out["conventions"][MEMORY] = CONVENTION_MEANINGS[MEMORY]
    out["totals"]["energy_pj_memory"] = mem["totals"][MEMORY]
    if out["teacher"] is not None:
        out["teacher"]["totals"]["energy_pj_memory"] = mem["teacher_totals"][MEMORY]
        out["ratio_memory"] = mem["totals"][MEMORY] / mem["teacher_totals"][MEMORY]
    out["memory"] = mem
    out["break_even"] = mem["break_even"]
    return out
