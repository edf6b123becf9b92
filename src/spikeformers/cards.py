"""Model cards: a Hugging Face ``README.md`` for every finished run folder, and ``push``.

The card is written from the files of the run, nothing else:

- ``config.json``: the model (a spikeformers student, or a ``transformers`` teacher);
- ``run_config.json``: the command and every resolved setting (the reproducing command is rebuilt
  from it, flag by flag);
- ``metrics.json``: validation/test metrics and per-layer firing rates;
- ``energy.json`` (when ``spikeformers energy`` has been run on the folder): the energy under each
  convention it holds, with the teacher's and the ratio.

The YAML front matter follows the Hub's model-card metadata (``library_name``, ``tags``,
``datasets``, ``metrics``, ``base_model``, ``model-index``). ``base_model`` is only set when the
teacher is a Hub id (the packaged MiniLM is ``sentence-transformers/all-MiniLM-L6-v2``); a local
teacher folder is named under ``teacher`` instead. :func:`push_run` uploads a run folder with
``huggingface_hub`` (checkpoints left out).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
from pathlib import Path
from typing import Any

from spikeformers.data.config import DataArgs
from spikeformers.distill.distiller import TERM_WEIGHTS
from spikeformers.distill.mpnet import MPNET, MPNET_HUB_ID
from spikeformers.errors import CardError  # noqa: F401  (re-exported here)
from spikeformers.utils.io import atomic_write

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
SPIKING_FAMILIES = ("spikebert", "spikingbert", "snnbert")
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
M3E_HUB_ID = "moka-ai/m3e-small"  # --teacher m3e-small (spikeformers.distill.m3e)
NAMED_TEACHERS = {"m3e-small": M3E_HUB_ID, MPNET: MPNET_HUB_ID}
"""``--teacher`` names other than the default, and the Hub ids cards give them."""
# files never uploaded: training state and temporary files
PUSH_IGNORE = ["checkpoints/*", "checkpoints/**", ".*.tmp", "**/.*.tmp"]


def _read(path: Path, required: bool = True) -> dict | None:
    if not path.is_file():
        if required:
            raise CardError(f"{path}: missing (is {path.parent} a finished spikeformers run?)")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CardError(f"{path}: not valid JSON ({e})") from None


# -- the command that reproduces a run -------------------------------------------------------------

# a data setting equal to DataArgs' default needs no flag
_DATA_DEFAULTS = {f.name: f.default for f in dataclasses.fields(DataArgs)}
_TRAIN_FLAGS = (
    "epochs",
    "max_steps",
    "batch_size",
    "eval_batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "warmup_ratio",
    "grad_clip",
    "evals_per_epoch",
    "grad_accum",
    "precision",
)
_COMMANDS = {
    "train": "train",
    "finetune-teacher": "finetune-teacher",
    "distill-general": "distill",
    "distill-task": "distill",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, bool) else str(v)


def _data_flags(data: dict) -> list[str]:
    out: list[str] = []
    for k, v in data.items():
        if v is None or _DATA_DEFAULTS.get(k, object()) == v:
            continue
        out += [_flag(k), str(v)]
    return out


def _train_flags(train: dict) -> list[str]:
    out: list[str] = []
    for k in _TRAIN_FLAGS:
        v = train.get(k)
        if k == "grad_clip" and v is None:
            v = 0
        if v is not None:
            out += [_flag(k), _value(v)]
    if train.get("drop_last"):
        out.append("--drop-last")
    out += ["--seed", str(train.get("seed", 0))]
    return out


def _set_flags(overrides: dict | None) -> list[str]:
    if not overrides:
        return []
    return [
        "--set",
        *(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in overrides.items()),
    ]


def _distill_flags(rc: dict) -> list[str]:
    d = rc.get("distill") or {}
    out = ["--stage", d.get("stage", rc["command"].removeprefix("distill-"))]
    for k in (*TERM_WEIGHTS.values(), "temperature"):
        if k in d:
            out += [_flag(k), _value(d[k])]
    if d.get("skip_first_teacher_layers"):
        out += ["--skip-first-teacher-layers", str(d["skip_first_teacher_layers"])]
    if d.get("attn_heads", "auto") != "auto":
        out += ["--attn-heads", d["attn_heads"]]
    if d.get("always_project_features"):
        out.append("--always-project-features")
    for k in ("unlabelled_file", "augmented_file"):
        values = rc.get(k) or []
        for v in [values] if isinstance(values, str) else values:  # unlabelled_file: a list too
            out += [_flag(k), v]
    split = rc.get("split_long_texts")
    if split:
        out += ["--split-long-texts", *([] if split is True else split)]
    if rc.get("init_embeddings") is False:
        out.append("--no-init-embeddings")
    if rc.get("freeze_embeddings"):
        out.append("--freeze-embeddings")
    return out


def reproduce_command(rc: dict, out: str = "RUN") -> str:
    """The ``spikeformers`` command line that re-runs ``run_config.json`` ``rc`` into ``out``.

    Raises:
        CardError: the run's command is not one of train, finetune-teacher, distill-*.
    """
    command = rc.get("command")
    if command not in _COMMANDS:
        raise CardError(f"run_config.json: no command line for command {command!r}")
    argv = ["spikeformers", _COMMANDS[command]]
    if command.startswith("distill"):
        argv += _distill_flags(rc)
    if rc.get("model"):
        argv += ["--model", str(rc["model"])]
    if command == "train":
        argv += ["--tokenizer", str(rc.get("tokenizer") or "minilm")]
    else:
        argv += ["--teacher", str(rc.get("teacher") or "minilm")]
    argv += _set_flags(rc.get("model_overrides"))
    argv += _data_flags(rc.get("data") or {})
    argv += _train_flags(rc.get("train") or {})
    argv += ["--out", out]
    return shlex.join(argv)


# -- the card --------------------------------------------------------------------------------------


def _teacher_name(rc: dict) -> str | None:
    if rc.get("command") == "train":
        return None
    t = rc.get("teacher")
    if t in NAMED_TEACHERS:
        return NAMED_TEACHERS[t]
    return MINILM_HUB_ID if t in (None, "minilm", "default") else str(t)


def _hub_id(name: str | None) -> str | None:
    """``name`` when it looks like a Hub model id (``owner/name``, not an existing path)."""
    if not name or Path(name).exists() or name.startswith((".", "/", "~")):
        return None
    parts = name.split("/")
    return name if len(parts) == 2 and all(parts) else None


def _datasets(rc: dict, task: str | None) -> list[str]:
    data = rc.get("data") or {}
    if data.get("dataset"):
        return [data["dataset"]]
    if data.get("task"):
        return [data["task"]]
    files = [
        Path(data[k]).name for k in ("train_file", "validation_file", "test_file") if data.get(k)
    ]
    if files:
        return files
    texts = rc.get("unlabelled_file") or []
    files = [Path(t).name for t in ([texts] if isinstance(texts, str) else texts) if t != "train"]
    if files:
        return files
    return [task or "rotten_tomatoes"]


def _split_metrics(metrics: dict) -> dict[str, dict[str, float]]:
    """``{split: {metric: value}}`` of the scalar task metrics (no firing rates, no counts)."""
    out = {}
    for split in ("validation", "test"):
        m = metrics.get(split)
        if isinstance(m, dict):
            out[split] = {
                k: float(v)
                for k, v in m.items()
                if isinstance(v, int | float)
                and not isinstance(v, bool)
                and k not in ("num_examples", "firing_rate")
            }
    return out


def card_metadata(config: dict, rc: dict, metrics: dict, name: str) -> dict:
    """The YAML front matter: library, tags, datasets, metrics, base model, model-index."""
    family = str(config.get("model_type", "unknown"))
    spiking = family in SPIKING_FAMILIES
    tags = ["text-classification"]
    if spiking:
        tags += ["spiking-neural-network", family]
        if rc.get("command", "").startswith("distill"):
            tags.append("knowledge-distillation")
    else:
        tags += ["knowledge-distillation-teacher", family]
    splits = _split_metrics(metrics)
    names = sorted({k for m in splits.values() for k in m})
    task = metrics.get("task")
    datasets = _datasets(rc, task)
    meta: dict[str, Any] = {
        "library_name": "spikeformers",
        "pipeline_tag": "text-classification",
        "tags": tags,
        "datasets": datasets,
        "metrics": names,
    }
    teacher = _teacher_name(rc)
    if teacher:
        meta["teacher"] = teacher
        if _hub_id(teacher):
            meta["base_model"] = teacher
    results = [
        {
            "task": {"type": "text-classification", "name": "Text Classification"},
            "dataset": {"name": task or datasets[0], "type": datasets[0], "split": split},
            "metrics": [
                {"type": k, "value": round(v, 6), "name": f"{split} {k}"}
                for k, v in sorted(m.items())
            ],
        }
        for split, m in splits.items()
        if m
    ]
    if results:
        meta["model-index"] = [{"name": name, "results": results}]
    return meta


def _pj(x: float | None) -> str:
    if x is None:
        return "-"
    for scale, unit in ((1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1, "pJ")):
        if abs(x) >= scale:
            return f"{x / scale:.4g} {unit}"
    return f"{x:.3g} pJ"


def _accuracy_section(metrics: dict) -> list[str]:
    splits = _split_metrics(metrics)
    if not splits:
        return ["No labelled validation or test split was evaluated (see `metrics.json`)."]
    lines = ["| split | examples | " + " | ".join(sorted(next(iter(splits.values())))) + " |"]
    keys = sorted(next(iter(splits.values())))
    lines.append("|---|---:|" + "---:|" * len(keys))
    for split, m in splits.items():
        n = metrics[split].get("num_examples", "-")
        lines.append(
            f"| {split} | {n} | " + " | ".join(f"{m.get(k, float('nan')):.4f}" for k in keys) + " |"
        )
    best = metrics.get("selected") or {}
    if best.get("step") is not None:
        lines.append(
            f"\nWeights selected on the validation split at step {best['step']} "
            f"(of {metrics.get('steps', '?')}); the test split was evaluated once, at the end."
        )
    return lines


def energy_rows(energy: dict) -> list[tuple[str, float, float | None, float | None, str]]:
    """``(convention, student pJ, teacher pJ, ratio, meaning)`` for every convention held by an
    ``energy.json`` (the paper convention, the full accounting and any ``energy_pj_<name>``
    total added by later estimates)."""
    totals = energy.get("totals", {})
    teacher = (energy.get("teacher") or {}).get("totals", {})
    meanings = energy.get("conventions", {})
    rows = []
    for key, value in totals.items():
        if not key.startswith("energy_pj_") or value is None:
            continue
        conv = key.removeprefix("energy_pj_")
        t = teacher.get(key)
        rows.append((conv, float(value), t, (value / t) if t else None, meanings.get(conv, "")))
    return rows


def _energy_section(energy: dict | None) -> list[str]:
    if energy is None:
        return [
            "Not measured yet: `spikeformers energy --model RUN --teacher TEACHER_DIR` writes "
            "`energy.json` and refreshes this card."
        ]
    c = energy.get("constants", {})
    lines = [
        f"Per sample, on {energy.get('num_samples')} texts of the {energy.get('split')} split "
        f"of {energy.get('task')} (batch size {energy.get('batch_size')}), priced with "
        f"{c.get('name', '?')}: E_MAC {c.get('mac_pj')} pJ, E_AC {c.get('ac_pj')} pJ, other float "
        f"op {c.get('op_pj')} pJ ({c.get('source', '')}). Each row names its convention; "
        "these are analytical estimates from operation counts, not hardware measurements.",
        "",
        "| convention | student | teacher | student / teacher | what it prices |",
        "|---|---:|---:|---:|---|",
    ]
    for conv, s, t, ratio, meaning in energy_rows(energy):
        r = "-" if ratio is None else f"{100 * ratio:.2f}%"
        meaning = meaning.replace("|", "\\|")  # a pipe would end the table cell
        lines.append(f"| {conv} | {_pj(s)} | {_pj(t)} | {r} | {meaning} |")
    return lines


def _firing_section(metrics: dict) -> list[str]:
    for split in ("test", "validation"):
        m = metrics.get(split) or {}
        if m.get("firing_rates"):
            lines = [
                f"Measured on the {split} split: mean {m.get('firing_rate', 0):.4f} "
                "(all spikes over all neuron-steps, padding included).",
                "",
                "| layer | firing rate |",
                "|---|---:|",
            ]
            lines += [f"| `{k}` | {v:.4f} |" for k, v in m["firing_rates"].items()]
            return lines
    return ["Not a spiking model, or no labelled split was evaluated."]


def _limitations(config: dict, rc: dict, metrics: dict) -> list[str]:
    sizes = metrics.get("sizes") or {}
    lines = [
        "- Trained and evaluated for text classification only "
        f"({metrics.get('task', 'this task')}; {sizes.get('train', '?')} training examples); "
        "it has not been evaluated on other data or for bias.",
        "- Energy figures are analytical estimates (operation counts times per-operation prices "
        "of the table named above) under the convention named in each row, not measurements "
        "on neuromorphic hardware.",
    ]
    if config.get("model_type") in SPIKING_FAMILIES:
        lines.append(
            "- Inference needs `spikeformers` (`spikeformers.from_pretrained(folder)`); the "
            "weights are not a `transformers` architecture."
        )
    if _teacher_name(rc) == M3E_HUB_ID:
        lines.append(
            "- The teacher, M3E-small, is licensed for non-commercial research use only; check "
            "what that means for this model before using it."
        )
    if not (metrics.get("test") or {}):
        lines.append("- No labelled test split: only validation metrics are reported.")
    return lines


def model_card(run: str | Path) -> str:
    """The card text of a finished run folder.

    Raises:
        CardError: ``config.json``, ``run_config.json`` or ``metrics.json`` is missing or broken.
    """
    import yaml

    run = Path(run)
    config = _read(run / "config.json")
    rc = _read(run / "run_config.json")
    metrics = _read(run / "metrics.json")
    energy = _read(run / "energy.json", required=False)
    name = run.resolve().name
    meta = card_metadata(config, rc, metrics, name)
    family = config.get("model_type", "model")
    teacher = _teacher_name(rc)
    what = (
        f"A spiking **{family}** student"
        if family in SPIKING_FAMILIES
        else f"A **{family}** teacher fine-tuned"
    )
    how = (
        f"distilled from `{teacher}`"
        if rc.get("command", "").startswith("distill")
        else (
            "trained directly with cross-entropy (no teacher)"
            if rc.get("command") == "train"
            else f"from `{teacher}`"
        )
    )
    body = [
        f"# {name}",
        "",
        f"{what} for {metrics.get('task', 'text classification')}, {how}, with "
        f"[spikeformers](https://pypi.org/project/spikeformers/) "
        f"{rc.get('spikeformers_version', '')} (`spikeformers {rc.get('command')}`).",
        "",
        "## Accuracy",
        "",
        *_accuracy_section(metrics),
        "",
        "## Energy",
        "",
        *_energy_section(energy),
        "",
        "## Firing rates",
        "",
        *_firing_section(metrics),
        "",
        "## Configuration",
        "",
        "`config.json` (the model):",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
        "Every resolved setting of the run is in `run_config.json`.",
        "",
        "## Teacher",
        "",
        f"`{teacher}`" if teacher else "None: trained directly on the labels.",
        "",
        "## How to reproduce",
        "",
        "```bash",
        reproduce_command(rc, out=name),
        "```",
        "",
        "## Limitations",
        "",
        *_limitations(config, rc, metrics),
        "",
    ]
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n" + "\n".join(body)


def write_model_card(run: str | Path) -> Path:
    """Write (or refresh) ``RUN/README.md``; returns its path."""
    path = Path(run) / CARD_NAME
    text = model_card(run)
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path


def read_card_metadata(path: str | Path) -> dict:
    """The YAML front matter of a card (a dict)."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise CardError(f"{path}: no YAML front matter")
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end])


# -- push ------------------------------------------------------------------------------------------


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def push_run(run: str | Path, repo_id: str, *, private: bool = False) -> str:
    """Refresh the card and upload the run folder (checkpoints left out) to the Hub.

    Returns:
        The URL of the commit.

    Raises:
        OSError: offline (``HF_HUB_OFFLINE``) or the upload failed (one line, the reason).
        CardError: ``run`` is not a finished run.
    """
    run = Path(run)
    if not run.is_dir():
        raise CardError(f"{run}: no such run folder")
    write_model_card(run)
    if _offline():
        raise OSError(
            f"cannot push {run} to {repo_id}: HF_HUB_OFFLINE is set (the folder is ready to "
            "upload as it is, with its README.md card)"
        )
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(run),
            repo_id=repo_id,
            ignore_patterns=PUSH_IGNORE,
            commit_message=f"spikeformers run {run.resolve().name}",
        )
    except Exception as e:  # network, auth, hub errors: one clean line for the CLI
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OSError(f"cannot push {run} to {repo_id}: {type(e).__name__}: {reason}") from e
    return str(getattr(info, "commit_url", info))


def refresh_card(run: str | Path) -> Path | None:
    """Write the card of a finished run folder; a folder that is not one (no ``run_config.json``
    or ``metrics.json``) gets none, and a card that cannot be written is a logged warning (the
    run's own results are already saved)."""
    run = Path(run)
    if not all((run / f).is_file() for f in ("config.json", "run_config.json", "metrics.json")):
        logger.debug("%s: not a finished run, no model card", run)
        return None
    try:
        return write_model_card(run)
    except (CardError, OSError, KeyError, TypeError, ImportError) as e:
        logger.warning("%s: model card not written: %s", run, e)
        return None
