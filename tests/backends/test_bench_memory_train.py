"""Smoke runs of the speed benchmarks on the tiny config (the full-size numbers are in
benchmarks/README.md): every row is printed, the baseline decodes the same greedy ids."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import sys
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / 'benchmarks'


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f'{name}.py')
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_memory_benchmark_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load('bench_memory')
    argv = ['--tiny', '--baseline', '--reps', '2', '--new-tokens', '4', '--buffer-mb', '64']
    assert bench.main([*argv, '--threads', '1', '--backends', 'torch:float32', 'torch:int8']) == 0
    out = capsys.readouterr().out
    assert 'measured read bandwidth' in out and 'load average' in out
    for row in ('| torch:float32 |', '| torch:int8 |', '| torch:float32:baseline |'):
        assert row in out
    assert 'greedy ids identical' in out  # the new path decodes what the old one did


def test_train_benchmark_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load('bench_train')
    argv = ['--sizes', 'tiny', '--stages', 'sft', '--steps', '1', '--threads', '1']
    assert bench.main([*argv, '--in-process']) == 0
    out = capsys.readouterr().out
    for layout in ('shared+fit', 'own+fit', 'shared+pad512'):
        assert f'| {layout} |' in out
    assert '4 x 512' in out  # the padded layout really is padded
    assert 'samples/s' in out and 'load average' in out
    assert 'bf16 autocast' in out
