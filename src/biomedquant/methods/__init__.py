"""Quantization method kinds as data: what every stage needs to know about a kind (bits, memory
model, artifact or load-time, engines, vLLM name), and GGUF's quantization types as facts."""
