"""spikeformers.models."""
