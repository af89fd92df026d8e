"""Datasets: the benchmark registry, hash-checked downloads, one reader per file format, the
prepared splits and their input texts."""
