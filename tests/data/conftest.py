"""Fixtures for the data tests: a tiny synthetic dataset, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.synth.generate import generate

TINY_SIZE = (192, 108)


@pytest.fixture(scope='session')
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 scenes (2 train, 1 val, 1 test) in both layouts."""
    out = tmp_path_factory.mktemp('synth') / 'warehouse-rgbd-smolRGPT'
    generate(
        out,
        4,
        seed=3,
        width=TINY_SIZE[0],
        height=TINY_SIZE[1],
        formats={'nvidia', 'parquet'},
        progress=False,
    )
    return out
