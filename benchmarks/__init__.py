"""`make bench`: benchmarks that print a table, each figure a ratio to a baseline from the same run."""
