"""Package logging: modules use ``logging.getLogger(__name__)``; only the CLI configures output."""

from __future__ import annotations

import logging
import sys

PACKAGE_LOGGER = "spikeformers"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (it may be swapped, e.g. by pytest)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_cli_logging(verbose: bool = False) -> None:
    """Send package logs to stderr. Called by the CLI only, never on import."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    if any(getattr(h, "_spikeformers_cli", False) for h in logger.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler._spikeformers_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
