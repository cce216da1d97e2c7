"""`make bench`: measured figures, written to docs/benchmarks.md. Not part of `make test`."""
