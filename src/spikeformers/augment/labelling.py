"""Labelling the synthesized sentences with the fine-tuned teacher and writing the transfer set."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikeformers.augment.rules import AugmentConfig, PosVocabulary, sentence_digest, synthesize
from spikeformers.augment.taggers import Tagger
from spikeformers.data.examples import Example
from spikeformers.data.text_classification import PadCollator, encode_examples

logger = logging.getLogger(__name__)


@torch.inference_mode()
def teacher_logits(
    teacher: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_length: int = 128,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``[N, C]`` float32 logits of a ``transformers`` classifier, in the order of ``examples``.

    Items are batched by length (less padding); the result is put back in input order.
    """
    if not examples:
        return torch.zeros(0, int(teacher.config.num_labels))
    encoded = encode_examples(examples, tokenizer, max_length=max_length)
    collate = PadCollator(tokenizer.pad_token_id or 0)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    out = torch.empty(len(encoded), int(teacher.config.num_labels))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([encoded[i] for i in idx])
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")}
        out[idx] = teacher(**inputs).logits.float().cpu()
    return out


def check_fine_tuned(teacher: nn.Module, num_labels: int) -> None:
    """Refuse a teacher whose classification head was not trained (or has the wrong width).

    Raises:
        ValueError: The saved model is not a ``*ForSequenceClassification`` or has another
            number of classes.
    """
    archs = getattr(teacher.config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ValueError(
            "the augmentation teacher must be fine-tuned on the task (a saved "
            f"*ForSequenceClassification model); this one is {archs or 'a bare encoder'}: its "
            "classification head would be random"
        )
    if int(teacher.config.num_labels) != num_labels:
        raise ValueError(
            f"the teacher predicts {teacher.config.num_labels} classes, the task has {num_labels}"
        )


@dataclass
class AugmentStats:
    """What :func:`augment_dataset` wrote."""

    sources: int
    """Training examples read."""
    originals: int
    """Original rows written."""
    synthetic: int
    """Synthetic rows written."""
    candidates: int
    """Synthetic candidates generated (``sources * n_iter``)."""
    duplicates: int
    """Candidates dropped as duplicates (or empty)."""
    seconds: float
    """Wall time."""
    path: str
    """The JSONL file."""

    @property
    def rows(self) -> int:
        """Rows in the file."""
        return self.originals + self.synthetic


def _row(
    text: str,
    pair: str | None,
    logits: torch.Tensor,
    *,
    gold: int | float | None,
    augmented: bool,
    index: int,
) -> dict:
    values = [float(v) for v in logits.tolist()]
    row: dict[str, Any] = {"sentence": text}
    if pair is not None:
        row["text_pair"] = pair
    if gold is not None and not augmented:
        row["label"], row["label_source"] = gold, "gold"
    else:
        label = values[0] if len(values) == 1 else int(logits.argmax())
        row["label"], row["label_source"] = label, "teacher"
    row["teacher_logits"] = values
    row["augmented"] = augmented
    row["source_index"] = index
    return row


def augment_dataset(
    examples: Sequence[Example],
    *,
    teacher: nn.Module,
    tokenizer: Any,
    tagger: Tagger,
    out_path: str | os.PathLike,
    config: AugmentConfig | None = None,
    device: torch.device | str = "cpu",
    show_progress: bool = True,
) -> AugmentStats:
    """Build the teacher-labelled transfer set of ``examples`` and stream it to ``out_path``.

    Args:
        examples: Training examples (their ``label`` is kept for the original rows).
        teacher: The fine-tuned ``transformers`` classifier (frozen here).
        tokenizer: The teacher's tokenizer; its ``mask_token`` is the masking token.
        tagger: Word splitter and POS tagger.
        out_path: JSON Lines file to write (replaced atomically at the end).
        config: Augmentation settings.
        device: Where the teacher runs.
        show_progress: Show a progress bar over the source sentences.

    Returns:
        Counts and timing; the same is written to ``out_path + ".meta.json"``.
    """
    from tqdm.auto import tqdm

    cfg = config or AugmentConfig()
    start = time.perf_counter()
    mask_token = getattr(tokenizer, "mask_token", None)
    if not mask_token:
        raise ValueError("the teacher's tokenizer has no mask token (needed for masking)")
    teacher.eval().requires_grad_(False).to(device)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    logger.info("tagging %d training examples with %s", len(examples), tagger.name)
    tagged = tagger.tag([e.text for e in examples])
    is_pair = [e.text_pair is not None for e in examples]
    tagged_pairs = (
        tagger.tag([e.text_pair for e in examples if e.text_pair is not None])
        if any(is_pair)
        else []
    )
    pair_iter = iter(tagged_pairs)
    tagged_pair_of = [next(pair_iter) if p else None for p in is_pair]
    vocab = PosVocabulary([*tagged, *tagged_pairs])
    logger.info("POS vocabulary: %d tags", len(vocab))

    seen: set[bytes] = set()
    for e, words, words_pair in zip(examples, tagged, tagged_pair_of, strict=True):
        seen.add(sentence_digest(e.text, e.text_pair))
        rejoined_pair = None if words_pair is None else tagger.joiner.join(w for w, _ in words_pair)
        seen.add(sentence_digest(tagger.joiner.join(w for w, _ in words), rejoined_pair))

    stats = AugmentStats(len(examples), 0, 0, 0, 0, 0.0, str(out_path))
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    bar = tqdm(total=len(examples), desc="augment", disable=not show_progress, dynamic_ncols=True)
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for lo in range(0, len(examples), cfg.chunk_size):
                rows: list[tuple[Example, bool, int]] = []
                for i in range(lo, min(lo + cfg.chunk_size, len(examples))):
                    e = examples[i]
                    if cfg.keep_original:
                        rows.append((e, False, i))
                    new = synthesize(
                        i,
                        tagged[i],
                        tagged_pair_of[i],
                        (e.text, e.text_pair),
                        vocab=vocab,
                        mask_token=mask_token,
                        joiner=tagger.joiner,
                        cfg=cfg,
                        seen=seen,
                    )
                    stats.candidates += cfg.n_iter
                    stats.duplicates += cfg.n_iter - len(new)
                    rows += [(Example(t, p), True, i) for t, p in new]
                logits = teacher_logits(
                    teacher,
                    tokenizer,
                    [r[0] for r in rows],
                    max_length=cfg.max_length,
                    batch_size=cfg.batch_size,
                    device=device,
                )
                for (e, augmented, i), z in zip(rows, logits, strict=True):
                    gold = None if augmented else e.label
                    row = _row(e.text, e.text_pair, z, gold=gold, augmented=augmented, index=i)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    if augmented:
                        stats.synthetic += 1
                    else:
                        stats.originals += 1
                f.flush()
                bar.update(min(cfg.chunk_size, len(examples) - lo))
                bar.set_postfix(rows=stats.rows)
        os.replace(tmp, out_path)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    stats.seconds = round(time.perf_counter() - start, 2)
    meta = {
        "config": dataclasses.asdict(cfg),
        "tagger": tagger.name,
        "mask_token": mask_token,
        "stats": {**dataclasses.asdict(stats), "rows": stats.rows},
    }
    Path(f"{out_path}.meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info(
        "wrote %s: %d original + %d synthetic rows (%d duplicates dropped) in %.1fs",
        out_path,
        stats.originals,
        stats.synthetic,
        stats.duplicates,
        stats.seconds,
    )
    return stats


def augment_with_teacher(
    examples: Sequence[Example],
    teacher_dir: str,
    *,
    num_labels: int,
    tagger: Tagger,
    out_path: str | os.PathLike,
    config: AugmentConfig,
    device: str | None = None,
    show_progress: bool = True,
) -> AugmentStats:
    """:func:`augment_dataset` with the fine-tuned teacher and its tokenizer loaded from a folder.

    Records the teacher in ``out_path + ".meta.json"`` (``"teacher"``), so a later run can tell
    which teacher labelled the file.
    """
    from spikeformers.distill.teacher import freeze, load_teacher, load_tokenizer
    from spikeformers.utils.seed import pick_device

    teacher = freeze(load_teacher(teacher_dir, num_labels=num_labels))
    check_fine_tuned(teacher, num_labels)
    stats = augment_dataset(
        examples,
        teacher=teacher,
        tokenizer=load_tokenizer(teacher_dir),
        tagger=tagger,
        out_path=out_path,
        config=config,
        device=pick_device(device),
        show_progress=show_progress,
    )
    meta = Path(f"{out_path}.meta.json")
    labelled = {**json.loads(meta.read_text(encoding="utf-8")), "teacher": str(teacher_dir)}
    meta.write_text(json.dumps(labelled, indent=2) + "\n", encoding="utf-8")
    return stats


def finished_transfer_set(
    path: str | os.PathLike, config: AugmentConfig, teacher_dir: str
) -> dict | None:
    """The stats of ``path`` if it exists and its ``.meta.json`` records ``config`` and a
    labelling by ``teacher_dir`` (as :func:`augment_with_teacher` writes it); else ``None``.

    Lets a resumed run reuse a transfer set only when remaking it would give the same file.
    """
    meta = Path(f"{path}.meta.json")
    if not (Path(path).is_file() and meta.is_file()):
        return None
    old = json.loads(meta.read_text(encoding="utf-8"))
    same = old.get("config") == json.loads(json.dumps(dataclasses.asdict(config)))
    return old.get("stats") if same and old.get("teacher") == str(teacher_dir) else None
