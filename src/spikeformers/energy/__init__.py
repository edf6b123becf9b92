"""spikeformers.energy."""
