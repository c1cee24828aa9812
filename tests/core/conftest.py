"""Fixtures for the model-core tests (definitions live in core_fixtures.py)."""

from __future__ import annotations

from core_fixtures import tiny_config, tiny_model, tokenizer_dir

__all__ = ['tiny_config', 'tiny_model', 'tokenizer_dir']
