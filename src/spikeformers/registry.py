"""Model registry: named variants (factories) and model classes by ``model_type``.

A family registers its class and its named variants in one call::

    register_family(SpikeBertForSequenceClassification, variants={
        "spikebert-tiny": ("SpikeBERT 2x64 ...", {"num_layers": 2, "hidden_size": 64}),
    })

(``@register_model(name, family=...)`` registers a variant built by any factory function.)

``create_model(name, **overrides)``, ``list_models(pattern)`` and ``load_model(name_or_dir)``
are the entry points users need. A duplicate name raises (no silent overwrite).

This module imports nothing of the package above ``utils``: the built-in families register
themselves when :mod:`spikeformers.models` is imported, which ``import spikeformers`` does. A new
family is one module plus one import line in ``spikeformers/models/__init__.py`` (or, outside the
package, importing the module that registers it).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spikeformers.utils.model_files import CONFIG_NAME, read_config

if TYPE_CHECKING:  # models import this module to register themselves: no runtime import here
    from spikeformers.models.base import SpikingModel


@dataclass(frozen=True)
class ModelEntry:
    """A registered variant: its factory and a one-line description."""

    name: str
    family: str
    factory: Callable[..., SpikingModel]
    description: str


_MODELS: dict[str, ModelEntry] = {}
_FAMILIES: dict[str, type[SpikingModel]] = {}


def register_family(
    cls: type[SpikingModel], variants: dict[str, tuple[str, dict[str, Any]]] | None = None
) -> type[SpikingModel]:
    """Make ``cls`` loadable by its config's ``model_type``, with optional named variants.

    Usable as a class decorator, or as the family's one registration line::

        register_family(ToyModel, variants={"toy-tiny": ("a tiny toy", {"hidden_size": 8})})

    Args:
        cls: The family's :class:`~spikeformers.models.base.SpikingModel` subclass.
        variants: ``name -> (description, config defaults)``; ``create_model(name, **kw)``
            builds ``cls(config_class.from_dict({**defaults, **kw}))``.
    """
    model_type = cls.config_class.model_type
    if not model_type:
        raise ValueError(f"{cls.__name__}.config_class has no model_type")
    if model_type in _FAMILIES and _FAMILIES[model_type] is not cls:
        raise ValueError(f"model_type {model_type!r} is already registered")
    _FAMILIES[model_type] = cls
    for name, (description, defaults) in (variants or {}).items():
        register_model(name, description, family=model_type)(_variant_factory(cls, defaults))
    return cls


def _variant_factory(
    cls: type[SpikingModel], defaults: dict[str, Any]
) -> Callable[..., SpikingModel]:
    """``f(**overrides)`` building ``cls`` from its config with ``defaults`` under ``overrides``."""

    def factory(**overrides: Any) -> SpikingModel:
        return cls(cls.config_class.from_dict({**defaults, **overrides}))

    return factory


def register_model(name: str, description: str = "", *, family: str) -> Callable:
    """Function decorator: register a factory ``f(**overrides) -> SpikingModel`` under ``name``.

    Args:
        name: The variant's name (``create_model(name)``).
        description: One line for ``list-models``; default the factory's docstring's first line.
        family: The ``model_type`` of the family the factory builds (registered with
            :func:`register_family`, before or after this call).
    """

    def deco(factory: Callable[..., SpikingModel]) -> Callable[..., SpikingModel]:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is already registered")
        if not family:
            raise ValueError(f"model {name!r}: family (a model_type) must be given")
        doc = description or (factory.__doc__ or "").strip().splitlines()[0]
        _MODELS[name] = ModelEntry(name=name, family=family, factory=factory, description=doc)
        return factory

    return deco


def list_models(pattern: str = "*") -> list[str]:
    """Registered variant names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_entries() -> list[ModelEntry]:
    """All registered variants, sorted by name."""
    return [_MODELS[n] for n in sorted(_MODELS)]


def create_model(name: str, **overrides: Any) -> SpikingModel:
    """Build a fresh (randomly initialised) registered variant, with config overrides."""
    if name not in _MODELS:
        hint = difflib.get_close_matches(name, list(_MODELS), n=3)
        extra = f"; did you mean {', '.join(hint)}?" if hint else ""
        raise ValueError(
            f"unknown model {name!r}{extra} (`spikeformers list-models` lists all {len(_MODELS)})"
        )
    return _MODELS[name].factory(**overrides)


def model_class(model_type: str) -> type[SpikingModel]:
    """The model class registered for ``model_type``."""
    if model_type not in _FAMILIES:
        raise ValueError(f"unknown model_type {model_type!r}; known: {sorted(_FAMILIES)}")
    return _FAMILIES[model_type]


def variant_class(name: str) -> type[SpikingModel]:
    """The model class of registered variant ``name`` (its family's class)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}")
    return model_class(_MODELS[name].family)


def variant_config_class(name: str) -> type:
    """The config class of registered variant ``name`` (its family's ``config_class``)."""
    return variant_class(name).config_class


def is_saved_model(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a saved spikeformers model."""
    p = Path(path)
    if not (p / CONFIG_NAME).is_file():
        return False
    try:
        return read_config(p).get("model_type") in _FAMILIES
    except ValueError:
        return False


def from_pretrained(directory: str | Path, **overrides: Any) -> SpikingModel:
    """Load any saved spikeformers model, dispatching on ``model_type`` in its ``config.json``."""
    cfg = read_config(directory)
    return model_class(cfg.get("model_type", "")).from_pretrained(directory, **overrides)


def load_model(name_or_dir: str | Path, **overrides: Any) -> SpikingModel:
    """A saved model directory if ``name_or_dir`` is one, else a fresh registered variant."""
    if Path(name_or_dir).is_dir():
        return from_pretrained(name_or_dir, **overrides)
    return create_model(str(name_or_dir), **overrides)
