"""Small shared utilities: logging, seeding, devices, atomic file writes."""
