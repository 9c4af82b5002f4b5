"""Benchmarks, run on demand (never as unit tests)."""
