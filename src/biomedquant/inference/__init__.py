"""Inference: the job, its decoding and prompting, the generation cache, the engines."""
