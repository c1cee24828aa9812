from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / 'benchmarks' / 'bench_backends.py'


def test_backend_benchmark_tiny_smoke_run(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location('bench_backends', BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (
        module.main(
            [
                '--tiny',
                '--in-process',
                '--warmup',
                '0',
                '--repeats',
                '1',
                '--new-tokens',
                '4',
                '--specs',
                'torch:cpu:float32',
                'torch:cpu:int8',
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert 'load average' in out and '| torch:cpu:int8 |' in out
    assert '4-tok answer ms' in out and 'x 5q' in out
