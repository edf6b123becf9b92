"""spikeformers.distill."""
