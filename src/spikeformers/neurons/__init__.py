"""spikeformers.neurons."""
