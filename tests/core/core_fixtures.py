"""Tiny fixtures and helpers for the model-core tests: a small config with the real structure, a
ChatML BPE tokenizer laid out like SmolLM2's (<|endoftext|>=0, <|im_start|>=1, <|im_end|>=2)
and a seeded tiny model. Nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
import torch

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
    # 32 px images, 8 px patches -> 4x4 patches -> 2x2 = 4 image tokens -> 16x16 mask grid
    values = dict(
        vit_hidden_dim=32, vit_inter_dim=64, vit_patch_size=8, vit_img_size=32,
        vit_n_heads=4, vit_n_blocks=2,
        lm_hidden_dim=32, lm_inter_dim=64, lm_n_heads=4, lm_n_kv_heads=2, lm_n_blocks=2,
        lm_base_vocab_size=TINY_VOCAB, lm_max_position_embeddings=512,
        mp_pixel_shuffle_factor=2, mp_image_token_length=4,
    )
    values.update(overrides)
    return SmolRGPTConfig(**values)


@pytest.fixture
def tiny_config() -> SmolRGPTConfig:
    return make_tiny_config()


@pytest.fixture
def tiny_model(tiny_config: SmolRGPTConfig) -> SmolRGPT:
    torch.manual_seed(0)
    model = SmolRGPT(tiny_config).eval()
    # wider random weights than N(0, 0.02) so greedy decoding is not stuck on one token
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('weight') and p.dim() >= 2:
                p.normal_(0.0, 0.3)
    return model


@pytest.fixture(scope='session')
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB, special_tokens=['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    assert tok.get_vocab_size(with_added_tokens=True) == TINY_VOCAB
    path = tmp_path_factory.mktemp('tokenizer')
    tok.save(str(path / 'tokenizer.json'))
    (path / 'tokenizer_config.json').write_text(json.dumps({'eos_token': '<|im_end|>'}))
    return path


def random_frame(cfg: SmolRGPTConfig, n_masks: int, seed: int = 0,
                 hw: tuple[int, int] = (24, 40)) -> tuple[torch.Tensor, ...]:
    """image, depth [3, S, S] and masks [M, Hi, Wi] (non-empty boxes)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, cfg.vit_img_size, cfg.vit_img_size, generator=g) * 2 - 1
    depth = torch.rand(3, cfg.vit_img_size, cfg.vit_img_size, generator=g)
    masks = torch.zeros(n_masks, *hw)
    for m in range(n_masks):
        y0, x0 = (int(v) for v in torch.randint(0, hw[0] // 2, (2,), generator=g))
        masks[m, y0:y0 + hw[0] // 2, x0:x0 + hw[1] // 2] = 1.0
    return image, depth, masks
