"""Exports: a model's results and artifacts in the formats other tools read."""
