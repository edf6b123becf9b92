"""Paper-convention energy of a fixed random model of each family, for an energy-rule change.

For each quickstart student (``spikeformers.quickstart.QUICKSTART_STUDENTS``: the variant and its
sizes), a model initialised with ``torch.manual_seed(SEED)`` (no training) is counted on ONE
batch: the first ``--batch`` test texts of the embedded default data (Rotten Tomatoes snippets),
tokenised with the quickstart teacher's (MiniLM) tokenizer at ``--max-length``, padded to the
longest. The teacher (all-MiniLM-L6-v2's BERT 6x384 with a fresh 2-class head; its MACs depend
only on its shapes) is counted on the same batch. Nothing here depends on training, so the
figures isolate how the counting rule prices each family.

Run it with the code before and after a change to compare, e.g.::

    git archive OLD_COMMIT src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src python benchmarks/energy_rule_change.py --out /tmp/before.json
    PYTHONPATH=src python benchmarks/energy_rule_change.py --out /tmp/after.json
    python benchmarks/energy_rule_change.py --compare /tmp/before.json /tmp/after.json

Writes JSON (per family: per-sample energy paper/full in pJ, teacher energy, ratios, and the
paper energy of the rows inside spiking modules) and prints a Markdown table.

Firing rates, likewise before / after: the same random models are evaluated the way
``spikeformers evaluate`` does it (``evaluate_model``'s batches of 64, padded to the longest) on
the whole embedded test split; ``firing_rate`` is what ``evaluate`` reports (before the change
an average over every position, padding included; after it, over real tokens) and
``firing_rate_padded`` the all-positions figure (after the change only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

SEED = 0


def _rates(model, examples, tok, max_length: int) -> dict:
    """``evaluate``'s firing rates of ``model`` on ``examples`` in batches of 64."""
    from spikeformers.data import encode_examples, make_dataloader
    from spikeformers.evaluation import predict, record_firing_rates

    ds = encode_examples(examples, tok, max_length=max_length)
    loader = make_dataloader(ds, batch_size=64, shuffle=False, pad_token_id=tok.pad_token_id or 0)
    with record_firing_rates(model) as rates:
        predict(model, loader, torch.device("cpu"))
    padded = getattr(rates, "mean_padded", None)
    masks = [b["attention_mask"] for b in loader]
    return {
        "firing_rate": rates.mean(),
        "firing_rate_padded": padded() if padded else None,
        "eval_positions": sum(m.numel() for m in masks),
        "eval_real_tokens": sum(int(m.sum()) for m in masks),
    }


def measure(batch_size: int, max_length: int) -> dict:
    """Counts of every quickstart family's random model and of the teacher on one batch."""
    from spikeformers import create_model
    from spikeformers.distill.teacher import load_teacher, load_tokenizer
    from spikeformers.energy import estimate
    from spikeformers.evaluation import spiking_modules
    from spikeformers.pipeline import DataArgs, load_data
    from spikeformers.quickstart import QUICKSTART_STUDENTS

    tok = load_tokenizer("minilm")
    splits = load_data(DataArgs(max_length=max_length))
    texts = [ex.text for ex in list(splits.test)[:batch_size]]
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    batch = {k: torch.as_tensor(v) for k, v in enc.items()}
    teacher = load_teacher("minilm", num_labels=2)
    out: dict = {
        "batch_size": batch_size,
        "positions": int(batch["input_ids"].numel()),
        "real_tokens": int(batch["attention_mask"].sum()),
        "families": {},
    }
    for family, spec in QUICKSTART_STUDENTS.items():
        torch.manual_seed(SEED)
        model = create_model(
            spec.variant,
            vocab_size=len(tok),
            pad_token_id=tok.pad_token_id or 0,
            num_labels=2,
            **spec.overrides,
        )
        report = estimate(model, [batch], teacher=teacher)
        neurons = [name for name, _ in spiking_modules(model)]
        inside = [
            r
            for r in report.rows
            if r.op != "membrane"
            and any(r.name == n or r.name.startswith(n + ".") for n in neurons)
        ]
        out["families"][family] = {
            "model": spec.variant,
            "overrides": dict(spec.overrides),
            "energy_pj_paper": report.energy_pj_paper,
            "energy_pj_full": report.energy_pj_full,
            "teacher_pj_paper": report.teacher.energy_pj_paper,
            "teacher_pj_full": report.teacher.energy_pj_full,
            "ratio_paper": report.ratio_paper,
            "ratio_full": report.ratio_full,
            "neuron_matmul_pj_paper": sum(r.energy_pj_paper for r in inside),
            "neuron_matmul_macs_priced": sum(r.macs_priced for r in inside),
            "neuron_matmul_acs": sum(r.acs for r in inside),
            **_rates(model, list(splits.test), tok, max_length),
        }
    return out


def table(before: dict, after: dict | None = None) -> str:
    """Markdown: per family paper/full energy (µJ per sample) and the ratio to the teacher."""
    rows = [
        "| family (model) | paper µJ | full µJ | paper ratio | full ratio | firing rate |"
        + (
            " paper µJ after | paper ratio after | full ratio after | firing rate after |"
            if after
            else ""
        ),
        "|---|---|---|---|---|---|" + ("---|---|---|---|" if after else ""),
    ]
    for fam, b in before["families"].items():
        line = (
            f"| {fam} ({b['model']}) | {b['energy_pj_paper'] / 1e6:.3f} | "
            f"{b['energy_pj_full'] / 1e6:.3f} | {100 * b['ratio_paper']:.2f}% | "
            f"{100 * b['ratio_full']:.2f}% | {b['firing_rate']:.4f} |"
        )
        if after:
            a = after["families"][fam]
            line += (
                f" {a['energy_pj_paper'] / 1e6:.3f} | {100 * a['ratio_paper']:.2f}% | "
                f"{100 * a['ratio_full']:.2f}% | {a['firing_rate']:.4f} |"
            )
        rows.append(line)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="test texts in the one batch (8)")
    p.add_argument("--max-length", type=int, default=64, help="tokens per text (64, as quickstart)")
    p.add_argument("--out", help="write the JSON here")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="two JSON files")
    args = p.parse_args(argv)
    if args.compare:
        before, after = (json.loads(Path(f).read_text(encoding="utf-8")) for f in args.compare)
        sys.stdout.write(table(before, after) + "\n")
        return 0
    torch.set_num_threads(1)
    result = measure(args.batch, args.max_length)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    sys.stdout.write(table(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
