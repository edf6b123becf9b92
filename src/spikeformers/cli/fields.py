"""Command-line options generated from dataclass fields and their attribute docstrings.

A field ``max_length: int = 128`` followed by the docstring ``Tokens per sequence.`` becomes
``--max-length`` (``type=int``, ``default=128``, that help text): defaults and help are typed
once, in the dataclass. ``bool`` fields become ``store_true`` flags, ``Literal`` fields get
``choices``, ``X | None`` fields take an ``X``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of a dataclass: the string literal right after each field
    (whitespace collapsed); fields without one are absent."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base_type(hint: Any) -> tuple[Any, bool]:
    """``(type without None, whether None was allowed)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def flag_name(field: str) -> str:
    """``max_length`` -> ``--max-length``."""
    return "--" + field.replace("_", "-")


def add_fields(
    group: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    defaults: Any = None,
    flags: Mapping[str, str] | None = None,
    no_default: Iterable[str] = (),
    extra: Mapping[str, dict] | None = None,
) -> None:
    """Add one option per field of dataclass ``cls`` to ``group``.

    Args:
        group: Parser or argument group.
        cls: The dataclass.
        only: Fields to add (default: all), in declaration order.
        exclude: Fields left out.
        defaults: An instance of ``cls`` whose values are the defaults (default: the field
            defaults).
        flags: Field -> flag name where it is not ``--field-name``.
        no_default: Fields whose option defaults to ``None`` (the caller decides later).
        extra: Field -> more ``add_argument`` keywords (``metavar``, ``help`` ...).

    Raises:
        TypeError: A field of a type this helper cannot map (the caller must add it by hand).
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    keep = None if only is None else set(only)
    skip, unset = set(exclude), set(no_default)
    for f in dataclasses.fields(cls):
        if (keep is not None and f.name not in keep) or f.name in skip:
            continue
        default = getattr(defaults, f.name) if defaults is not None else f.default
        if f.name in unset:
            default = None
        typ, _ = _base_type(hints[f.name])
        kw: dict[str, Any] = {"dest": f.name, "help": docs.get(f.name, "")}
        if typ is bool:
            if default:
                raise TypeError(f"{cls.__name__}.{f.name}: a flag cannot default to True")
            kw["action"] = "store_true"
        else:
            if typing.get_origin(typ) is Literal:
                kw["choices"] = list(typing.get_args(typ))
            elif typ in (int, float, str):
                kw["type"] = typ
            else:
                raise TypeError(f"{cls.__name__}.{f.name}: no option for type {typ!r}")
            kw["default"] = default
            if default is not None:
                kw["help"] += f" (default: {default})"
        kw.update((extra or {}).get(f.name, {}))
        group.add_argument((flags or {}).get(f.name, flag_name(f.name)), **kw)


def field_values(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """An instance of ``cls`` from the options :func:`add_fields` added (every field present in
    ``args``) plus ``fixed`` values; fields absent from both keep their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {n: getattr(args, n) for n in names if hasattr(args, n)}
    return cls(**{**values, **fixed})
