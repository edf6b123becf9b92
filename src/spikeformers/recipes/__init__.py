"""Training recipes as data: one YAML file per family, validated on load.

A recipe names the student (registered variant + config overrides), the teacher and its
fine-tuning, stage 1 (general distillation on unlabelled text), the task stage's consecutive
steps, the energy sample count, and whether to also train the directly trained twin. The packaged
recipes (``spikebert``, ``spikingbert``, ``snnbert``) hold the quickstart's numbers; users copy
one and pass the copy to ``spikeformers run --recipe path.yaml``. :mod:`.runner` runs a recipe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from spikeformers.distill.distiller import DistillConfig
from spikeformers.trainer import TrainConfig

PACKAGED = ("spikebert", "spikingbert", "snnbert")
"""Names of the recipes shipped with the package (``<name>.yaml`` here)."""


class RecipeError(ValueError):
    """A recipe file that cannot be read or does not follow the schema (names file and key)."""


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``*_train`` dicts are :class:`TrainConfig` fields without the seed."""

    family: str
    variant: str
    overrides: dict
    teacher: str
    teacher_train: dict
    general_text: str | tuple[str, ...]
    """Stage 1's text: ``train`` (the training texts, labels dropped, plus the plot synopses of
    the embedded data), a plain-text file (one text a line), or a list of these, read in order
    and trained on together (YAML ``text: [train, /path/wiki.train.tokens]``; see
    :mod:`spikeformers.data.unlabelled`)."""
    general_distill: dict
    general_train: dict
    task_steps: tuple[dict, ...]
    task_train: dict
    """``epochs`` is the total, split evenly over ``task_steps``."""
    freeze_embeddings: bool = False
    cache_teacher: bool = False
    split_long_texts: bool = False
    """Stage 1 cuts its file sources' paragraphs into pieces that fit ``max_length`` instead of
    truncating them (YAML ``general.split_long_texts``; ``train`` is never cut)."""
    energy_samples: int = 100
    direct: bool = False
    source: str = ""
    """The file it was read from."""

    @property
    def general_sources(self) -> tuple[str, ...]:
        """:attr:`general_text` as a tuple of sources."""
        text = self.general_text
        return (text,) if isinstance(text, str) else tuple(text)

    def train_config(self, stage: str, seed: int) -> TrainConfig:
        """The :class:`TrainConfig` of ``stage`` (``teacher``, ``general``, ``task`` (one step),
        ``direct`` (the task stage's settings over all its epochs))."""
        if stage == "teacher":
            return TrainConfig(**self.teacher_train, seed=seed)
        if stage == "general":
            return TrainConfig(**self.general_train, seed=seed)
        if stage == "task":
            epochs = self.task_train.get("epochs", TrainConfig.epochs) / len(self.task_steps)
            return TrainConfig(**{**self.task_train, "epochs": epochs}, seed=seed)
        if stage == "direct":
            return TrainConfig(**self.task_train, seed=seed)
        raise ValueError(f"unknown stage {stage!r}")

    def to_dict(self) -> dict:
        """The recipe as written in YAML (what a summary records)."""
        return {
            "family": self.family,
            "student": {"variant": self.variant, "overrides": dict(self.overrides)},
            "teacher": {"model": self.teacher, "train": dict(self.teacher_train)},
            "general": {
                "text": self.general_text
                if isinstance(self.general_text, str)
                else list(self.general_text),
                "distill": dict(self.general_distill),
                "train": dict(self.general_train),
                "split_long_texts": self.split_long_texts,
            },
            "task": {
                "steps": [dict(s) for s in self.task_steps],
                "train": dict(self.task_train),
                "freeze_embeddings": self.freeze_embeddings,
                "cache_teacher": self.cache_teacher,
            },
            "energy": {"samples": self.energy_samples},
            "direct": self.direct,
            "source": self.source,
        }


# -- schema ----------------------------------------------------------------------------------------

_TRAIN_KEYS = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name != "seed"}
_DISTILL_KEYS = {f.name: f for f in dataclasses.fields(DistillConfig) if f.name != "stage"}
_SECTIONS: dict[str, dict[str, Any]] = {
    "": {
        "family": str,
        "student": dict,
        "teacher": dict,
        "general": dict,
        "task": dict,
        "energy": dict,
        "direct": bool,
    },
    "student": {"variant": str, "overrides": dict},
    "teacher": {"model": str, "train": dict},
    "general": {"text": (str, list), "distill": dict, "train": dict, "split_long_texts": bool},
    "task": {"steps": list, "train": dict, "freeze_embeddings": bool, "cache_teacher": bool},
    "energy": {"samples": int},
}
_REQUIRED = {"": ("family", "student", "task"), "student": ("variant",), "task": ("steps",)}


def _type_ok(value: Any, default: Any, annotation: Any) -> bool:
    """``value`` fits a dataclass field with this default (numbers: int for float is fine)."""
    if value is None and "None" in str(annotation):
        return True
    if default is None or default is dataclasses.MISSING:
        return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _check_fields(d: dict, fields: dict, where: str, path: str) -> dict:
    for key, value in d.items():
        if key not in fields:
            raise RecipeError(
                f"{path}: unknown key {where}.{key} (known: {', '.join(sorted(fields))})"
            )
        f = fields[key]
        if not _type_ok(value, f.default, f.type):
            raise RecipeError(f"{path}: {where}.{key} = {value!r} has the wrong type")
    return dict(d)


def _section(raw: Any, name: str, path: str) -> dict:
    where = name or "the top level"
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: {where} must be a mapping, got {type(raw).__name__}")
    schema = _SECTIONS[name]
    for key, value in raw.items():
        full = f"{name}.{key}" if name else str(key)
        if key not in schema:
            raise RecipeError(
                f"{path}: unknown key {full!r} (known in {where}: {', '.join(schema)})"
            )
        if not isinstance(value, schema[key]) or (schema[key] is int and isinstance(value, bool)):
            types = schema[key] if isinstance(schema[key], tuple) else (schema[key],)
            kind = " or ".join(t.__name__ for t in types)
            raise RecipeError(f"{path}: {full} must be a {kind}, got {value!r}")
    for key in _REQUIRED.get(name, ()):
        if key not in raw:
            raise RecipeError(f"{path}: missing key {f'{name}.{key}' if name else key!r}")
    return raw


def _general_text(text: str | list, path: str) -> str | tuple[str, ...]:
    """``general.text``: a non-empty string, or a non-empty list of distinct ones."""
    items = [text] if isinstance(text, str) else text
    if not items or not all(isinstance(t, str) and t for t in items):
        raise RecipeError(
            f"{path}: general.text must be `train`, a file or a list of them, got {text!r}"
        )
    if len(set(items)) != len(items):
        raise RecipeError(f"{path}: general.text lists a source twice: {text!r}")
    return text if isinstance(text, str) else tuple(text)


def parse_recipe(raw: Any, path: str) -> Recipe:
    """Validate a recipe read from YAML (``path`` names it in errors)."""
    top = _section(raw, "", path)
    student = _section(top["student"], "student", path)
    teacher = _section(top.get("teacher", {}), "teacher", path)
    general = _section(top.get("general", {}), "general", path)
    task = _section(top["task"], "task", path)
    energy = _section(top.get("energy", {}), "energy", path)
    steps = task["steps"]
    if not steps:
        raise RecipeError(f"{path}: task.steps is empty (one step at least)")
    checked_steps = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            raise RecipeError(f"{path}: task.steps[{i}] must be a mapping, got {step!r}")
        checked_steps.append(_check_fields(step, _DISTILL_KEYS, f"task.steps[{i}]", path))
    from spikeformers import list_models

    variant = student["variant"]
    if variant not in list_models():
        raise RecipeError(f"{path}: student.variant {variant!r} is not a registered variant")
    samples = energy.get("samples", 100)
    if samples < 1:
        raise RecipeError(f"{path}: energy.samples must be >= 1, got {samples}")
    return Recipe(
        family=top["family"],
        variant=variant,
        overrides=dict(student.get("overrides", {})),
        teacher=teacher.get("model", "minilm"),
        teacher_train=_check_fields(teacher.get("train", {}), _TRAIN_KEYS, "teacher.train", path),
        general_text=_general_text(general.get("text", "train"), path),
        general_distill=_check_fields(
            general.get("distill", {}), _DISTILL_KEYS, "general.distill", path
        ),
        general_train=_check_fields(general.get("train", {}), _TRAIN_KEYS, "general.train", path),
        split_long_texts=general.get("split_long_texts", False),
        task_steps=tuple(checked_steps),
        task_train=_check_fields(task.get("train", {}), _TRAIN_KEYS, "task.train", path),
        freeze_embeddings=task.get("freeze_embeddings", False),
        cache_teacher=task.get("cache_teacher", False),
        energy_samples=samples,
        direct=top.get("direct", False),
        source=path,
    )


def recipe_path(name_or_path: str | Path) -> Path:
    """A packaged recipe's file (``spikebert``...) or the given YAML file."""
    if str(name_or_path) in PACKAGED:
        return Path(str(resources.files(__name__) / f"{name_or_path}.yaml"))
    path = Path(name_or_path)
    if not path.is_file():
        raise RecipeError(
            f"--recipe {name_or_path}: neither a packaged recipe ({', '.join(PACKAGED)}) nor a file"
        )
    return path


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Read and validate a packaged recipe (by family name) or a YAML file.

    Raises:
        RecipeError: Missing file, invalid YAML, or a key/value outside the schema (the message
            names the file and the key).
    """
    import yaml

    path = recipe_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read ({e})") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from None
    return parse_recipe(raw, str(path))
