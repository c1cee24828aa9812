"""Fixtures for the backend tests (definitions live in backend_fixtures.py)."""

from __future__ import annotations

from backend_fixtures import onnx_fp16, onnx_fp32

__all__ = ['onnx_fp16', 'onnx_fp32']
