"""Fixtures for the training tests: a few synthetic scenes and the tiny checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope='session')
def make_synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Writes a small `smolrgpt synth` set (train/val/test, NVIDIA layout, scene files)."""
    from training.synth.generate import generate

    def make(
        scenes: int, seed: int, width: int = 128, height: int = 72, per_category: int = 1
    ) -> Path:
        out = tmp_path_factory.mktemp('synth') / 'warehouse'
        generate(
            out,
            scenes,
            seed=seed,
            width=width,
            height=height,
            formats={'nvidia'},
            per_category=per_category,
            progress=False,
        )
        return out

    return make


@pytest.fixture(scope='session')
def synth_root(make_synth: Callable[..., Path]) -> Path:
    """8 small synthetic scenes."""
    return make_synth(8, seed=3)


@pytest.fixture(scope='session')
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from smolrgpt_core.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp('tiny_training_ckpt'))
