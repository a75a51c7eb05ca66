"""skiplock benchmarks: `make bench` (or `python -m bench`)."""
