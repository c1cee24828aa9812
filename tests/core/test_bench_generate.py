from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / 'benchmarks' / 'bench_generate.py'


def test_benchmark_tiny_smoke_run(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location('bench_generate', BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(['--tiny', '--warmup', '0', '--repeats', '1', '--new-tokens', '4']) == 0
    out = capsys.readouterr().out
    assert 'ratio 5 questions / 1 question' in out
    assert 'decode, per token' in out
