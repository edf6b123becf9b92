"""``spikeformers predict``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spikeformers.cli import options as o

HELP = "predict labels for texts"


def build(p: argparse.ArgumentParser) -> None:
    """Flags of ``predict``."""
    p.add_argument("--model", required=True, help="saved student or teacher folder")
    p.add_argument("--text", action="append", help="a text to classify (repeatable)")
    p.add_argument("--input-file", help="UTF-8 file, one text a line")
    p.add_argument("--max-length", type=int, default=128)
    o.add_run_args(p, out=False)


def run(a: argparse.Namespace) -> int:
    """Predict labels for texts given on the command line or in a file."""
    from spikeformers.workflows.inference import predict_texts

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
