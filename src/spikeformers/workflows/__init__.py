"""High-level workflows: the Python API behind every CLI subcommand.

Each function takes typed arguments, writes a self-describing run directory and returns its
metrics. A run directory holds:

- ``config.json`` + ``model.safetensors``: the model (a spikeformers student, or a ``transformers``
  teacher for ``finetune_teacher``), plus the tokenizer files;
- ``run_config.json``: every resolved setting of the run;
- ``train_log.jsonl``: training and validation records;
- ``metrics.json``: the final validation/test metrics, timings and sizes;
- ``checkpoints/step-N/``: periodic training checkpoints (``--save-every``; see
  :mod:`spikeformers.checkpoint` and ``docs/SCALING.md``).

Under ``torchrun`` every workflow trains data-parallel (:mod:`spikeformers.distributed`); rank 0
writes the files. Modules: :mod:`.rundir` (run folders and logs), :mod:`.loaders`,
:mod:`.students` (``--model`` resolution), :mod:`.context` (the run context all training
workflows share), :mod:`.teacher`, :mod:`.distill`, :mod:`.direct`, :mod:`.inference`,
:mod:`.energy`.
"""

from spikeformers.data.config import (
    MAX_TEXT_CHARS,
    DataArgs,
    check_label_set,
    check_scorable,
    check_text_sizes,
    load_data,
    model_label_set,
)
from spikeformers.workflows.direct import train_direct
from spikeformers.workflows.distill import distill
from spikeformers.workflows.energy import energy_of_run
from spikeformers.workflows.inference import evaluate_model, load_any, predict_texts
from spikeformers.workflows.rundir import (
    CheckpointArgs,
    RunDirError,
    prepare_out_dir,
    write_run_config,
)
from spikeformers.workflows.teacher import TEACHER_TRAIN_DEFAULTS, finetune_teacher

__all__ = [
    "MAX_TEXT_CHARS",
    "TEACHER_TRAIN_DEFAULTS",
    "CheckpointArgs",
    "DataArgs",
    "RunDirError",
    "check_label_set",
    "check_scorable",
    "check_text_sizes",
    "distill",
    "energy_of_run",
    "evaluate_model",
    "finetune_teacher",
    "load_any",
    "load_data",
    "model_label_set",
    "predict_texts",
    "prepare_out_dir",
    "train_direct",
    "write_run_config",
]
