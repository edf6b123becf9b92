"""``python -m spikeformers`` runs the CLI."""

from spikeformers.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
