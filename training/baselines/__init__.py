"""Baselines the networks are measured against (run in the same process, on the same data)."""
