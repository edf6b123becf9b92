"""spikeformers.layers."""
