"""Plain data records shared by every loader: examples, task descriptions, splits and errors.

Nothing here reads files or needs torch; :mod:`spikeformers.data.readers` and
:mod:`spikeformers.data.tasks` build these objects, and
:mod:`spikeformers.data.text_classification` turns them into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from spikeformers.errors import DataError, MissingDependencyError  # noqa: F401  (re-exported here)

Metric = Literal["accuracy", "f1", "mcc", "pearson", "spearman", "pearson_spearman"]
METRICS: tuple[str, ...] = ("accuracy", "f1", "mcc", "pearson", "spearman", "pearson_spearman")
REGRESSION_METRICS: tuple[str, ...] = ("pearson", "spearman", "pearson_spearman")


@dataclass(frozen=True)
class Example:
    """One text-classification example.

    Attributes:
        text: The (first) sentence.
        text_pair: The second sentence for sentence-pair tasks, else ``None``.
        label: Class id (``int``), target value (``float``) for regression, or ``None`` when
            unlabelled.
        soft_labels: Teacher logits stored with augmented data, or ``None``.
        source: Where the example came from (``"path:line"``), for messages.
    """

    text: str
    text_pair: str | None = None
    label: int | float | None = None
    soft_labels: tuple[float, ...] | None = None
    source: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """What a text-classification task looks like to a model and to evaluation.

    Attributes:
        name: Short task name (``"sst2"``, ``"custom"``...).
        num_labels: Number of classes; 1 for regression.
        label_names: One name per class id (for regression, the name of the target).
        metric: The metric used for model selection (a key of
            :func:`spikeformers.data.metrics.compute_metrics`' result).
        language: ISO 639-1 code of the text, e.g. ``"en"`` or ``"zh"``.
    """

    name: str
    num_labels: int
    label_names: tuple[str, ...]
    metric: Metric = "accuracy"
    language: str = "en"

    def __post_init__(self) -> None:
        if self.num_labels < 1:
            raise ValueError(
                f"TaskSpec {self.name!r}: num_labels must be >= 1, got {self.num_labels}"
            )
        if len(self.label_names) != self.num_labels:
            raise ValueError(
                f"TaskSpec {self.name!r}: {len(self.label_names)} label_names for "
                f"num_labels={self.num_labels}"
            )
        if self.metric not in METRICS:
            raise ValueError(f"TaskSpec {self.name!r}: metric must be one of {METRICS}")
        if (self.num_labels == 1) != (self.metric in REGRESSION_METRICS):
            raise ValueError(
                f"TaskSpec {self.name!r}: a regression task (num_labels=1) needs one of the "
                f"metrics {REGRESSION_METRICS}, a classification task one of the others "
                f"(got num_labels={self.num_labels}, metric={self.metric!r})"
            )

    @property
    def is_regression(self) -> bool:
        """Whether the task predicts one real value instead of a class."""
        return self.num_labels == 1


@dataclass
class DatasetSplits:
    """A task with its train / validation / test examples.

    Attributes:
        task: The task description.
        train: Training examples.
        validation: Validation examples (model selection).
        test: Test examples; may be empty.
        info: Provenance: files read, encoding, split seed and fractions, sizes, skipped lines.
    """

    task: TaskSpec
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    info: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Return the number of examples in each split."""
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }
