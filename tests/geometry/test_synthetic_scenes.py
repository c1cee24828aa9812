"""The geometry on the project's synthetic warehouse scenes, scored against their ground truth
by benchmarks/bench_geometry.py (the toolkit itself never reads the scene JSON)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import sys

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        'bench_geometry', ROOT / 'benchmarks' / 'bench_geometry.py'
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault('bench_geometry', module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def all_pairs(stats: dict[str, list]) -> list[bool]:
    return [v for key, values in stats.items() if key.startswith('pairs/') for v in values]


@pytest.mark.slow
def test_distances_and_containment_on_synthetic_scenes(tmp_path) -> None:
    from training.synth.generate import generate

    generate(tmp_path, 8, 11, 640, 360, {'nvidia'}, progress=False)
    bench = _bench()
    stats = bench.evaluate(tmp_path, priors=False, pixel_offset=0.5)
    pairs = all_pairs(stats)
    assert len(pairs) > 100
    assert np.mean(pairs) >= 0.9
    assert np.mean(stats['inside']) >= 0.97
    assert np.median(stats['err/pallet']) < 0.06
    with_priors = bench.evaluate(tmp_path, priors=True, pixel_offset=0.5)
    assert np.mean(all_pairs(with_priors)) >= np.mean(pairs) - 0.01
