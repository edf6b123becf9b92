"""``spikeformers augment``: write a teacher-labelled transfer set (Tang et al. 2019).

:func:`add_options` and :func:`augment_config` are shared with ``ablate``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from spikeformers.cli import options as o

HELP = "write a teacher-labelled augmented transfer set (Tang et al. 2019)"


def add_options(g: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """The augmentation flags shared by ``augment`` and ``ablate``."""
    from spikeformers.augment import SPACY_MODELS, TAGGERS

    g.add_argument("--n-iter", type=int, default=20, help="candidates per sentence (20)")
    g.add_argument("--p-mask", type=float, default=0.1, help="per-word masking probability (0.1)")
    g.add_argument(
        "--p-pos", type=float, default=0.1, help="per-word POS-replacement probability (0.1)"
    )
    g.add_argument(
        "--p-ng", type=float, default=0.25, help="per-sentence n-gram sampling probability (0.25)"
    )
    g.add_argument("--ngram-max", type=int, default=5, help="n-gram length drawn from 1..N (5)")
    g.add_argument(
        "--tagger",
        choices=TAGGERS,
        default="auto",
        help="POS tagger: spacy (English), jieba (Chinese); auto picks by the task's language",
    )
    g.add_argument("--spacy-model", help=f"spaCy pipeline package (default: {SPACY_MODELS})")
    g.add_argument(
        "--augment-batch-size", type=int, default=64, help="sentences per teacher forward (64)"
    )


def augment_config(a: argparse.Namespace, *, seed: int, max_length: int):
    """:class:`AugmentConfig` from the flags of :func:`add_options`."""
    from spikeformers.augment import AugmentConfig

    return AugmentConfig(
        n_iter=a.n_iter,
        p_mask=a.p_mask,
        p_pos=a.p_pos,
        p_ng=a.p_ng,
        ngram_max=a.ngram_max,
        seed=seed,
        max_length=max_length,
        batch_size=a.augment_batch_size,
    )


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``augment``."""

    p.add_argument("--teacher", required=True, help="teacher folder fine-tuned on the task")
    p.add_argument("--out", required=True, help="JSON Lines file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    g = p.add_argument_group("augmentation (Tang et al. 2019)")
    add_options(g)
    o.add_data_args(p)
    o.add_run_args(p, out=False)


def run(a: argparse.Namespace) -> int:
    """Write a teacher-labelled augmented training set (stage-2 transfer set) as JSON Lines."""
    from spikeformers.augment import augment_with_teacher, make_tagger
    from spikeformers.data.config import load_data

    out = Path(a.out)
    if out.exists() and not a.overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    data = o.data_args(a)
    cfg = augment_config(a, seed=a.seed, max_length=data.max_length)
    splits = load_data(data)
    tagger = make_tagger(a.tagger, language=splits.task.language, spacy_model=a.spacy_model)
    stats = augment_with_teacher(
        splits.train,
        a.teacher,
        num_labels=splits.task.num_labels,
        tagger=tagger,
        out_path=out,
        config=cfg,
        device=a.device,
        show_progress=not a.no_progress,
    )
    sys.stdout.write(json.dumps({**dataclasses.asdict(stats), "rows": stats.rows}, indent=2) + "\n")
    return 0
