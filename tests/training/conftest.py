"""Fixtures for the training tests: a few synthetic scenes and the tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope='session')
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 small synthetic scenes (train/val/test) in the NVIDIA layout, with scene files."""
    from training.synth.generate import generate

    out = tmp_path_factory.mktemp('synth') / 'warehouse'
    generate(out, 8, seed=3, width=128, height=72, formats={'nvidia'}, per_category=1,
             progress=False)
    return out


@pytest.fixture(scope='session')
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from smolrgpt_core.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp('tiny_training_ckpt'))
