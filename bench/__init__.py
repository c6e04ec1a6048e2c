"""Benchmarks that print figures (python bench/run.py); never part of the test run."""
