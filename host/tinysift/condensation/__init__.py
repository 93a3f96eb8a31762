"""Condensation: synthesize (or pick) K representative samples per class."""
