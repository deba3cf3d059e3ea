"""Fan-out benchmark (issue 3): ``python -m bench.run`` / ``make bench``. See docs/benchmarks.md."""
