"""Tiny fixtures and helpers for the model-core tests: a small config with the real structure, a
ChatML BPE tokenizer laid out like SmolLM2's (<|endoftext|>=0, <|im_start|>=1, <|im_end|>=2)
and a seeded tiny model. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smolrgpt_core import testing
from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.modeling.smolrgpt import SmolRGPT

TINY_VOCAB = 300
CORPUS = [
    'How far is the pallet from the box?',
    'What is the distance between the two regions?',
    'user assistant The pallet is 3.2 meters away.',
    'Is the left one closer than the right one? Which is wider?',
] * 5


def make_tiny_config(**overrides: object) -> SmolRGPTConfig:
    return testing.tiny_config(TINY_VOCAB, **overrides)


@pytest.fixture
def tiny_config() -> SmolRGPTConfig:
    return make_tiny_config()


@pytest.fixture
def tiny_model(tiny_config: SmolRGPTConfig) -> SmolRGPT:
    torch.manual_seed(0)
    return testing.widen_weights(SmolRGPT(tiny_config).eval())


@pytest.fixture(scope='session')
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return testing.save_tokenizer(tmp_path_factory.mktemp('tokenizer'), TINY_VOCAB, CORPUS)


def random_frame(
    cfg: SmolRGPTConfig, n_masks: int, seed: int = 0, hw: tuple[int, int] = (24, 40)
) -> tuple[torch.Tensor, ...]:
    """image, depth [3, S, S] and masks [M, Hi, Wi] (non-empty boxes)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, cfg.vit_img_size, cfg.vit_img_size, generator=g) * 2 - 1
    depth = torch.rand(3, cfg.vit_img_size, cfg.vit_img_size, generator=g)
    masks = torch.zeros(n_masks, *hw)
    for m in range(n_masks):
        y0, x0 = (int(v) for v in torch.randint(0, hw[0] // 2, (2,), generator=g))
        masks[m, y0 : y0 + hw[0] // 2, x0 : x0 + hw[1] // 2] = 1.0
    return image, depth, masks
