"""Data for text classification: loaders, splits, tokenised batches and metrics.

- :mod:`~spikeformers.data.examples`: ``Example``, ``TaskSpec``, ``DatasetSplits``, ``DataError``.
- :mod:`~spikeformers.data.readers`: decoding and parsing files (one place for encodings).
- :mod:`~spikeformers.data.tasks`: named tasks, your own files, the hub, the embedded default
  (Rotten Tomatoes) and unlabelled text.
- :mod:`~spikeformers.data.splits`: seeded, stratified splits.
- :mod:`~spikeformers.data.text_classification`: tokenisation, padding, data loaders.
- :mod:`~spikeformers.data.metrics`: accuracy, F1, MCC, Pearson/Spearman.
"""

from spikeformers.data.examples import (
    DataError,
    DatasetSplits,
    Example,
    MissingDependencyError,
    TaskSpec,
)
from spikeformers.data.metrics import compute_metrics, primary_metric
from spikeformers.data.splits import stratified_split
from spikeformers.data.tasks import (
    ROTTEN_TOMATOES,
    TASKS,
    find_rotten_tomatoes_file,
    load_files,
    load_hub_dataset,
    load_rotten_tomatoes,
    load_task,
    load_unlabelled_text,
    rotten_tomatoes_plots,
    split_words,
    task_sentences,
)
from spikeformers.data.text_classification import (
    EncodedDataset,
    LengthGroupedBatchSampler,
    PadCollator,
    encode_examples,
    make_dataloader,
)

__all__ = [
    "ROTTEN_TOMATOES",
    "TASKS",
    "DataError",
    "DatasetSplits",
    "EncodedDataset",
    "Example",
    "LengthGroupedBatchSampler",
    "MissingDependencyError",
    "PadCollator",
    "TaskSpec",
    "compute_metrics",
    "encode_examples",
    "find_rotten_tomatoes_file",
    "load_files",
    "load_hub_dataset",
    "load_rotten_tomatoes",
    "load_task",
    "load_unlabelled_text",
    "make_dataloader",
    "primary_metric",
    "rotten_tomatoes_plots",
    "split_words",
    "stratified_split",
    "task_sentences",
]
