"""Planning: what a study needs before it runs (fit, GPUs, job requests, runtime, cost)."""
