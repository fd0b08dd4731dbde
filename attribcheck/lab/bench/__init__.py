"""Benchmarks and experiment reports: `python -m attribcheck.bench {instance} ...`."""
