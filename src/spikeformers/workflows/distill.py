"""``distill``: distil a spiking student from a teacher (stage ``general`` or ``task``)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

from spikeformers.data import (
    TRAIN_TEXTS,
    DataError,
    EncodedDataset,
    Example,
    encode_examples,
    load_unlabelled_text,
    source_list,
    training_texts,
)
from spikeformers.data.config import MAX_TEXT_CHARS, DataArgs, load_data, load_training_data
from spikeformers.data.transfer import augmented_splits
from spikeformers.data.unlabelled import chunk_texts
from spikeformers.distill.distiller import DistillConfig, Distiller, init_embeddings_from_teacher
from spikeformers.distill.teacher import freeze, load_teacher, load_tokenizer
from spikeformers.registry import is_saved_model
from spikeformers.trainer import TrainConfig
from spikeformers.workflows.context import training_run
from spikeformers.workflows.loaders import train_loader
from spikeformers.workflows.rundir import CheckpointArgs
from spikeformers.workflows.students import (
    DEFAULT_STUDENT,
    check_same_vocabulary,
    check_vocab,
    resolve_student,
)

logger = logging.getLogger(__name__)


def distill(
    *,
    stage: Literal["general", "task"],
    out_dir: str | Path,
    model: str = DEFAULT_STUDENT,
    teacher: str | None = None,
    data: DataArgs | None = None,
    unlabelled_file: str | Sequence[str] | None = None,
    augmented_file: str | None = None,
    distill_config: DistillConfig | None = None,
    train: TrainConfig | None = None,
    model_overrides: dict | None = None,
    init_embeddings: bool = True,
    freeze_embeddings: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    checkpointing: CheckpointArgs | None = None,
    report_to: list[str] | None = None,
    do_test: bool = False,
    cache_teacher: bool = False,
    split_long_texts: bool | Collection[str] = False,
) -> dict:
    """Distil a spiking student from a teacher (stage ``general`` or ``task``) and save it.

    Args:
        stage: ``general``: feature alignment to the pre-trained teacher on unlabelled text
            (``unlabelled_file``, by default the task's training sentences with labels dropped).
            ``task``: all terms from a teacher fine-tuned on the task.
        out_dir: Run directory.
        model: Registered variant (fresh) or a saved student directory (e.g. stage-1 output).
        teacher: Teacher folder or Hub id (``None``: the packaged MiniLM). For the task stage this
            must be the fine-tuned teacher.
        data: The task data (validation split used for model selection in the task stage).
        unlabelled_file: General stage: one source or several, read in order and trained on
            together: plain-text files (one paragraph a line) and ``"train"``, the task's
            training texts without labels (:mod:`spikeformers.data.unlabelled`; ``None``:
            ``"train"``). Their text and token counts are logged, recorded in
            ``run_config.json`` (``data_info``) and written to ``metrics.json`` with the tokens
            seen in training (``sources``, ``texts``, ``tokens`` per epoch, ``tokens_seen``).
        augmented_file: Task stage only: a JSON Lines transfer set written by
            ``spikeformers augment`` (sentences with stored teacher logits) that replaces the
            training split; validation and test stay the task's own.
        distill_config: Loss weights; defaults per stage.
        train: Optimisation settings.
        model_overrides: Config overrides for a fresh student (e.g. ``{"time_steps": 4}``).
        init_embeddings: Copy the teacher's word embeddings into a fresh student (same width).
        freeze_embeddings: Keep the student's word embeddings fixed (on small task data the
            embedding of a 30k vocabulary is most of the parameters and overfits first).
        device: ``cpu``, ``cuda``, ``cuda:1``... (default: CUDA when present).
        overwrite: Allow replacing a different run in ``out_dir``.
        show_progress: Show progress bars.
        checkpointing: Periodic checkpoints and resuming.
        report_to: Experiment trackers (``tensorboard``, ``wandb``, ``mlflow``; see
            :mod:`spikeformers.tracking`).
        do_test: Task stage: also score the test split at the end (validation only otherwise).
        cache_teacher: Run the teacher once over the (fixed) training set and reuse its outputs
            every epoch (:meth:`Distiller.cache_teacher_outputs`; same losses, less time).
        split_long_texts: General stage: cut the paragraphs of file sources into pieces of
            :func:`chunk_words` words, so that text past ``data.max_length`` tokens is trained
            on instead of truncated away (WikiText-2 at 64 tokens: 104k of its 255k tokens
            kept by truncation, 269k in pieces). ``True``: every file source; a collection:
            those sources only. The task's training texts (``"train"``) are never cut. Off by
            default: it changes what stage 1 trains on.
    """
    train = train or TrainConfig()
    data = data or DataArgs()
    dcfg = distill_config or DistillConfig.for_stage(stage)
    if dcfg.stage != stage:
        raise ValueError(f"distill_config.stage {dcfg.stage!r} != stage {stage!r}")
    if augmented_file and stage != "task":
        raise ValueError("--augmented-file is a task-stage option (stage 2)")
    if do_test and stage != "task":
        raise ValueError("--do-test is a task-stage option: the general stage scores nothing")
    if split_long_texts and stage != "general":
        raise ValueError("--split-long-texts is a general-stage option (stage 1)")
    command = f"distill-{stage}"
    with training_run(
        out_dir,
        command,
        train=train,
        device=device,
        overwrite=overwrite,
        checkpointing=checkpointing,
        show_progress=show_progress,
        report_to=report_to,
    ) as run:
        dev = run.device
        fresh = not is_saved_model(model)
        tok_src = (
            model if not fresh and (Path(model) / "tokenizer_config.json").is_file() else teacher
        )
        tokenizer = load_tokenizer(tok_src)
        if stage == "general":
            splits = None
            sources = _general_sources(data, unlabelled_file, split_long_texts)
            examples = [Example(text=t) for _, texts in sources for t in texts]
            t_model = freeze(load_teacher(teacher))
        else:
            splits = load_training_data(data, do_test)
            if augmented_file:
                splits = augmented_splits(splits, augmented_file)
            examples = splits.train
            t_model = freeze(load_teacher(teacher, num_labels=splits.task.num_labels))
        student = resolve_student(model, tokenizer, splits, model_overrides or {})
        check_vocab(student, tokenizer, f"--model {model}")
        if tok_src != teacher:
            check_same_vocabulary(tokenizer, teacher, f"--model {model}")
        if fresh and init_embeddings:
            init_embeddings_from_teacher(student, t_model)
        if freeze_embeddings:
            student.get_input_embeddings().weight.requires_grad_(False)
        distiller = Distiller(student, t_model, dcfg)
        ds = encode_examples(examples, tokenizer, max_length=data.max_length)
        data_info = splits.info if splits else _source_counts(sources, ds)
        if cache_teacher:
            pad = tokenizer.pad_token_id or 0
            distiller.cache_teacher_outputs(
                ds,
                device=dev,
                batch_size=train.eval_batch_size,
                pad_token_id=pad,
                precision=train.precision,
            )
        run.record(
            model=model,
            teacher=teacher,
            data=data,
            unlabelled_file=unlabelled_file,
            augmented_file=augmented_file,
            distill=dcfg,
            train=train,
            do_test=do_test,
            model_overrides=model_overrides,
            init_embeddings=init_embeddings,
            freeze_embeddings=freeze_embeddings,
            cache_teacher=cache_teacher,
            split_long_texts=(
                split_long_texts if isinstance(split_long_texts, bool) else list(split_long_texts)
            ),
            layer_map=distiller.layer_map,
            device=dev,
            student_config=student.config.to_dict(),
            data_info=data_info,
            world_size=run.env.world_size,
        )
        batches = train_loader(ds, tokenizer, data, train, run.env)
        result = run.fit(
            distiller,
            batches,
            select_module=student,
            validation=run.validation(student, splits, tokenizer, data),
        )
        if run.env.is_main:
            _save_projections(distiller, run.out)

        def metrics() -> dict:
            if splits is not None:
                return run.final_metrics(student, splits, tokenizer, data, result, do_test=do_test)
            return {
                "seconds": round(result.seconds, 2),
                "steps": result.steps,
                **data_info,
                "texts_seen": result.examples_seen,
                "tokens_seen": result.tokens_seen,
                "parameters": student.num_parameters(),
            }

        return run.finish(student, tokenizer, metrics)


def _save_projections(distiller: Distiller, out: Path) -> None:
    from safetensors.torch import save_file

    from spikeformers.utils.io import atomic_write

    state = {k: v.detach().contiguous().cpu() for k, v in distiller.projection_state_dict().items()}
    if state:
        atomic_write(out / "distiller.safetensors", lambda p: save_file(state, str(p)))


def _general_sources(
    data: DataArgs,
    unlabelled_file: str | Sequence[str] | None,
    split_long_texts: bool | Collection[str] = False,
) -> list[tuple[str, list[str]]]:
    """``(source, texts)`` of each stage-1 source, in order (see :func:`distill`)."""
    names = source_list(unlabelled_file)
    if not isinstance(split_long_texts, bool):
        unknown = sorted(set(split_long_texts) - set(names))
        if unknown:
            raise ValueError(f"split_long_texts names {unknown}, not stage-1 sources {names}")
    if TRAIN_TEXTS not in names and data.source() != "default":
        logger.warning(
            "general stage: distilling on --unlabelled-file %s; the task data (%s) is not read",
            " ".join(names),
            data.task or data.dataset or ", ".join(data.files().values()),
        )
    sources = []
    for name in names:
        if name == TRAIN_TEXTS:
            texts = training_texts(load_data(data))
            if not texts:
                raise ValueError("the general stage found no training texts to distil on")
        else:
            texts = load_unlabelled_text(name)  # DataError naming a missing or empty file
        for i, t in enumerate(texts):
            if len(t) > MAX_TEXT_CHARS:
                raise DataError(
                    f"text {i + 1} has {len(t):,} characters (the limit is {MAX_TEXT_CHARS:,}): "
                    "is a line break missing?",
                    path="the training texts" if name == TRAIN_TEXTS else name,
                )
        if name != TRAIN_TEXTS and (
            split_long_texts is True
            or not isinstance(split_long_texts, bool)
            and name in split_long_texts
        ):
            texts = _split(name, texts, data.max_length)
        sources.append((name, texts))
    return sources


def chunk_words(max_length: int) -> int:
    """Words per piece of a stage-1 file source at ``max_length`` tokens (``--split-long-texts``).

    WordPiece splits English running text into about 1.2 tokens a word (WikiText-2 valid/test:
    1.22/1.24 with the MiniLM vocabulary), so ``2/3`` of the length less [CLS]/[SEP] keeps most
    pieces whole (at 64 tokens 1.2%/1.6% of WikiText-2's pieces are still cut)."""
    return max(1, (max_length - 2) * 2 // 3)


def _split(name: str, paragraphs: list[str], max_length: int) -> list[str]:
    """A file source's paragraphs cut into pieces of :func:`chunk_words` words (whole
    sentences where they fit)."""
    pieces = chunk_texts(paragraphs, chunk_words(max_length))
    logger.info(
        "stage-1 text %s: %d paragraphs cut into %d pieces of <= %d words (max length %d)",
        name,
        len(paragraphs),
        len(pieces),
        chunk_words(max_length),
        max_length,
    )
    return pieces


def _source_counts(sources: list[tuple[str, list[str]]], ds: EncodedDataset) -> dict:
    """Texts and tokens (after truncation, special tokens included) of each source and in all;
    ``ds`` holds the sources' texts in order. Logged and returned for the run's records."""
    lengths, start, rows = ds.lengths, 0, []
    for name, texts in sources:
        tokens = sum(lengths[start : start + len(texts)])
        rows.append({"source": name, "texts": len(texts), "tokens": tokens})
        logger.info("stage-1 text %s: %d texts, %d tokens", name, len(texts), tokens)
        start += len(texts)
    total = {"texts": len(lengths), "tokens": sum(lengths)}
    logger.info("stage-1 text: %d texts, %d tokens per epoch", total["texts"], total["tokens"])
    return {**total, "sources": rows}
