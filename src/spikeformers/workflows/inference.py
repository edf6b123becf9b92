"""Loading a saved run (student or teacher) and scoring or predicting with it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from torch import nn

from spikeformers.data import Example
from spikeformers.data.config import (
    DataArgs,
    check_scorable,
    load_data,
    model_label_names,
    model_label_set,
)
from spikeformers.distill.teacher import load_tokenizer
from spikeformers.evaluation import evaluate, padding_invariant, predict
from spikeformers.models.base import CONFIG_NAME, read_config
from spikeformers.registry import is_saved_model, load_model
from spikeformers.utils.seed import pick_device
from spikeformers.workflows.loaders import loader


def load_any(model_dir: str | Path, overrides: dict | None = None) -> tuple[nn.Module, Any]:
    """Load a saved student or teacher run directory with its tokenizer.

    ``overrides`` changes a saved spiking model's config at load time (inference settings such
    as ``time_steps``); a ``transformers`` teacher takes none.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"--model {model_dir}: no such directory")
    cfg = read_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    if is_saved_model(model_dir):
        return load_model(model_dir, **(overrides or {})), tokenizer
    if overrides:
        raise ValueError(f"--set: {model_dir} is not a spikeformers model; it takes no overrides")
    if cfg.get("model_type") is None:
        raise ValueError(f"{model_dir / CONFIG_NAME}: no model_type")
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager"
    ), tokenizer


def evaluate_model(
    *,
    model_dir: str | Path,
    data: DataArgs | None = None,
    split: Literal["train", "validation", "test"] = "test",
    batch_size: int = 64,
    device: str | None = None,
    model_overrides: dict | None = None,
) -> dict:
    """Score a saved student or teacher on a split: task metrics and firing rates.

    ``model_overrides`` sets inference-time config of a saved spiking model, e.g.
    ``{"time_steps": 64}`` to evaluate a SpikingBERT student at another ``T``.
    """
    data = data or DataArgs()
    dev = pick_device(device)
    model, tokenizer = load_any(model_dir, model_overrides)
    splits = load_data(data, need_train=False, labels=model_label_set(model))
    examples = check_scorable(splits, split, data, f"--split {split}")
    model.to(dev)
    start = time.perf_counter()
    batches = loader(
        examples, tokenizer, data, batch_size, shuffle=False,
        group_by_length=padding_invariant(model),
    )  # fmt: skip
    metrics = evaluate(model, batches, splits.task, dev)
    metrics.update(
        split=split, task=splits.task.name, seconds=round(time.perf_counter() - start, 2)
    )
    if model_overrides:
        metrics["model_overrides"] = dict(model_overrides)
    return metrics


def predict_texts(
    *,
    model_dir: str | Path,
    texts: list[str],
    text_pairs: list[str] | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    device: str | None = None,
) -> list[dict]:
    """Predict labels for raw texts: ``[{"text", "label", "label_id", "probs"}, ...]``.

    A regression model (one output) gives ``[{"text", <target name>: value}, ...]``.
    """
    dev = pick_device(device)
    model, tokenizer = load_any(model_dir)
    model.to(dev).eval()
    names = model_label_names(model)
    pairs = text_pairs or [None] * len(texts)
    examples = [Example(text=t, text_pair=p) for t, p in zip(texts, pairs, strict=True)]
    batches = loader(
        examples, tokenizer, DataArgs(max_length=max_length), batch_size, shuffle=False,
        group_by_length=padding_invariant(model),
    )  # fmt: skip
    logits, _ = predict(model, batches, dev)  # inference mode, rows in ``texts`` order
    if logits.shape[-1] == 1:  # regression: the predicted value
        return [
            {"text": t, names[0] if names else "score": round(float(z), 6)}
            for t, z in zip(texts, logits[:, 0], strict=True)
        ]
    probs = logits.softmax(-1)
    out = []
    for text, p in zip(texts, probs, strict=True):
        i = int(p.argmax())
        out.append(
            {
                "text": text,
                "label": names[i] if i < len(names) else str(i),
                "label_id": i,
                "probs": [round(float(x), 6) for x in p],
            }
        )
    return out
