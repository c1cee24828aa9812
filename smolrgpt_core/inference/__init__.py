"""Inference-side data types (encoded frames, prompts)."""
