"""SpikingBERT: the gap between simulated rates and the rate equilibrium, against T, per population.

For a SpikingBERT model (a trained student, or a fresh ``spikingbert-mini`` cut to 2 layers) and
real sentences, runs the spiking simulation for each ``T`` and reports, per population, the mean
and max of ``|F_local(a) - a|`` over real tokens of all layers
(:meth:`SpikingBertForSequenceClassification.equilibrium_gaps`). K and V are linear in their
input, so their gap falls like 1/T; the LayerNorm populations S and O keep a gap.

Usage::

    .venv/bin/python benchmarks/spikingbert_equilibrium.py --model runs/sst2/spikingbert/student \
        --task sst2 --data-dir ../shared/data

Writes ``benchmarks/results/spikingbert_equilibrium.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402

from spikeformers.data import encode_examples, make_dataloader  # noqa: E402
from spikeformers.distill.teacher import load_tokenizer  # noqa: E402
from spikeformers.pipeline import DataArgs, load_data  # noqa: E402
from spikeformers.registry import create_model, from_pretrained  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="saved SpikingBERT folder (default: a fresh 2-layer mini)")
    p.add_argument("--task", default="sst2")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--split", default="test")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--steps", nargs="+", type=int, default=[8, 16, 32, 64, 128, 256])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)

    if a.model:
        model, tok_src = from_pretrained(a.model), a.model
    else:
        model = create_model("spikingbert-mini", vocab_size=30522, num_layers=2)
        tok_src = "minilm"
    model.eval()
    tokenizer = load_tokenizer(tok_src)
    splits = load_data(DataArgs(task=a.task, data_dir=a.data_dir, max_length=64))
    examples = getattr(splits, a.split)[: a.samples]
    loader = make_dataloader(
        encode_examples(examples, tokenizer, max_length=64),
        batch_size=a.samples,
        shuffle=False,
        pad_token_id=tokenizer.pad_token_id or 0,
    )
    batch = next(iter(loader))
    rows = []
    for t in a.steps:
        t0 = time.perf_counter()
        gaps = model.equilibrium_gaps(batch["input_ids"], batch["attention_mask"], time_steps=t)
        rows.append({"time_steps": t, **gaps, "seconds": round(time.perf_counter() - t0, 2)})
        print(
            json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in rows[-1].items()})
        )
    doc = {
        "benchmark": "spikingbert_equilibrium",
        "model": a.model or "fresh spikingbert-mini, num_layers=2 (untrained)",
        "model_config": model.config.to_dict(),
        "data": {"task": a.task, "split": a.split, "sentences": len(examples)},
        "rows": rows,
        "machine": machine(),
    }
    print(f"wrote {save('spikingbert_equilibrium', doc)}")


if __name__ == "__main__":
    main()
