"""The package version, in a module of its own so that low layers can read it without importing
the package root (which imports the model families)."""

__version__ = "0.1.0"
