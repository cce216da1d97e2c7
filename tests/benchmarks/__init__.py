"""`make bench`: measured figures, written as a table to docs/benchmarks.md. Not part of `make test`."""
