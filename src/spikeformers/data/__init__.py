"""Data for text classification: loaders, splits, tokenised batches and metrics.

- :mod:`~spikeformers.data.examples`: ``Example``, ``TaskSpec``, ``DatasetSplits``, ``DataError``.
- :mod:`~spikeformers.data.readers`: decoding and parsing files (one place for encodings).
- :mod:`~spikeformers.data.labels`: reading labels (inferred or a known label set).
- :mod:`~spikeformers.data.tasks`: named tasks, your own files, the hub.
- :mod:`~spikeformers.data.default`: the embedded default (Rotten Tomatoes).
- :mod:`~spikeformers.data.unlabelled`: unlabelled text for stage-1 distillation.
- :mod:`~spikeformers.data.config`: ``DataArgs`` and ``load_data`` (one source, checked).
- :mod:`~spikeformers.data.transfer`: reading ``spikeformers augment``'s transfer sets.
- :mod:`~spikeformers.data.splits`: seeded, stratified splits.
- :mod:`~spikeformers.data.text_classification`: tokenisation, padding, data loaders.
- :mod:`~spikeformers.data.metrics`: accuracy, F1, MCC, Pearson/Spearman.
"""

from spikeformers.data.default import (
    ROTTEN_TOMATOES,
    find_rotten_tomatoes_file,
    load_rotten_tomatoes,
    rotten_tomatoes_plots,
)
from spikeformers.data.examples import (
    DataError,
    DatasetSplits,
    Example,
    MissingDependencyError,
    TaskSpec,
)
from spikeformers.data.metrics import compute_metrics, primary_metric
from spikeformers.data.splits import stratified_split
from spikeformers.data.tasks import TASKS, load_files, load_hub_dataset, load_task
from spikeformers.data.text_classification import (
    EncodedDataset,
    LengthGroupedBatchSampler,
    PadCollator,
    encode_examples,
    make_dataloader,
)
from spikeformers.data.unlabelled import (
    TRAIN_TEXTS,
    load_unlabelled_text,
    source_list,
    split_words,
    task_sentences,
    training_texts,
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
    "source_list",
    "TRAIN_TEXTS",
    "training_texts",
    "make_dataloader",
    "primary_metric",
    "rotten_tomatoes_plots",
    "split_words",
    "stratified_split",
    "task_sentences",
]
