"""spikeformers.data."""
