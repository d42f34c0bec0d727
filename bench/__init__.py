"""Benchmarks: run them as modules (python -m bench.NAME); they print their figures."""
