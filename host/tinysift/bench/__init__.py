"""Benchmarks: results files (JSON + markdown + plot), not timed tests."""
