"""The workflows' public API under its historical name (see :mod:`spikeformers.workflows`).

``from spikeformers.pipeline import DataArgs, distill, evaluate_model`` keeps working; the code
lives in :mod:`spikeformers.workflows` (one module a workflow) and :mod:`spikeformers.data.config`.
"""

from spikeformers.workflows import *  # noqa: F403
from spikeformers.workflows import __all__  # noqa: F401
