"""Old name of :mod:`spikeformers.neurons.lif_functional` (it only ever held the LIF): a shim."""

from spikeformers.neurons.lif_functional import (
    check_lif_args,
    lif_multistep,
    lif_multistep_fusable,
    lif_multistep_reference,
)

__all__ = ["check_lif_args", "lif_multistep", "lif_multistep_fusable", "lif_multistep_reference"]
