"""Benchmarks: run by hand (`python -m bench.<name>`), print figures, never assert on time."""
