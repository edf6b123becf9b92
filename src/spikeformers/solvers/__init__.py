"""spikeformers.solvers."""
