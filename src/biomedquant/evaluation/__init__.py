"""Evaluation: raw outputs parsed, scored with the benchmarks' metrics, compared."""
