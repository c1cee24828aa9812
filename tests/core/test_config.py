from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
import re

import pytest
import torch

from smolrgpt_core.config import SmolRGPTConfig

OFFICIAL_KEYS = [
    'vit_hidden_dim',
    'vit_inter_dim',
    'vit_patch_size',
    'vit_img_size',
    'vit_n_heads',
    'vit_dropout',
    'vit_n_blocks',
    'vit_ln_eps',
    'vit_cls_flag',
    'vit_model_type',
    'lm_hidden_dim',
    'lm_inter_dim',
    'lm_rms_eps',
    'lm_re_base',
    'lm_max_position_embeddings',
    'lm_base_vocab_size',
    'extra_token_amount',
    'lm_vocab_size',
    'lm_n_heads',
    'lm_n_kv_heads',
    'lm_dropout',
    'lm_n_blocks',
    'lm_attn_scaling',
    'lm_max_length',
    'lm_use_tokens',
    'lm_tie_weights',
    'lm_model_type',
    'lm_tokenizer',
    'lm_chat_template',
    'lm_eos_token_id',
    'mp_pixel_shuffle_factor',
    'mp_image_token_length',
    'vlm_extra_tokens',
    'vlm_load_backbone_weights',
    'vlm_restore_previous_state',
    'vlm_checkpoint_path',
    'hf_repo_name',
    'stage',
]


def test_defaults_are_the_full_size_checkpoint() -> None:
    cfg = SmolRGPTConfig()
    assert (cfg.vit_hidden_dim, cfg.vit_n_blocks, cfg.vit_img_size) == (768, 12, 256)
    assert (cfg.lm_hidden_dim, cfg.lm_inter_dim, cfg.lm_n_blocks) == (960, 2560, 32)
    assert (cfg.lm_n_heads, cfg.lm_n_kv_heads, cfg.lm_head_dim) == (15, 5, 64)
    assert cfg.lm_re_base == 100000 and cfg.lm_rms_eps == 1e-5 and cfg.vit_ln_eps == 1e-6
    assert cfg.lm_vocab_size == 49155
    assert (cfg.image_token_id, cfg.mask_rgb_token_id, cfg.mask_depth_token_id) == (
        49152,
        49153,
        49154,
    )
    assert (cfg.image_grid, cfg.mask_grid, cfg.region_width) == (8, 64, 960)


def test_derived_values_follow_their_sources() -> None:
    cfg = SmolRGPTConfig(
        lm_base_vocab_size=1000, lm_hidden_dim=640, lm_n_heads=10, lm_n_kv_heads=5
    )
    assert cfg.lm_vocab_size == 1003
    assert cfg.region_width == 640
    assert cfg.lm_head_dim == 64


def test_default_file_has_exactly_the_official_keys(tmp_path: Path) -> None:
    SmolRGPTConfig().to_json(tmp_path / 'config.json')
    data = json.loads((tmp_path / 'config.json').read_text())
    assert list(data) == OFFICIAL_KEYS
    assert data['lm_vocab_size'] == 49155
    assert data['vlm_extra_tokens'] == {
        'image_token': '<|image|>',
        'mask_rgb_token': '<mask_rgb>',
        'mask_depth_token': '<mask_depth>',
    }


def test_round_trip_keeps_product_fields(tmp_path: Path) -> None:
    cfg = SmolRGPTConfig(
        depth_input='metric',
        depth_max_m=12.5,
        depth_near_is_dark=False,
        stage='sft',
        prompt_region_labels=True,
    )
    cfg.to_json(tmp_path / 'c.json')
    assert json.loads((tmp_path / 'c.json').read_text())['prompt_region_labels'] is True
    assert SmolRGPTConfig.from_json(tmp_path / 'c.json') == cfg


def test_official_file_quirks_are_tolerated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = SmolRGPTConfig().to_dict()
    data['stage'] = ['connector_alignment']  # the reference's accidental 1-tuple, via JSON
    data['some_future_key'] = 1
    del data['lm_max_length']
    (tmp_path / 'config.json').write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        cfg = SmolRGPTConfig.from_json(tmp_path / 'config.json')
    assert cfg.stage == 'connector_alignment'
    assert cfg.to_dict()['stage'] == ['connector_alignment']  # written back as read
    cfg.stage = 'sft'
    assert cfg.to_dict()['stage'] == 'sft'
    assert cfg.lm_max_length == 512
    assert 'some_future_key' in caplog.text
    # old files lack our depth settings: defaults reproduce the training pipeline
    assert (cfg.depth_input, cfg.depth_pipeline) == ('image', 'train')


def test_inconsistent_vocab_size_is_an_error() -> None:
    data = SmolRGPTConfig().to_dict()
    data['lm_vocab_size'] = 49152
    with pytest.raises(ValueError, match='lm_vocab_size'):
        SmolRGPTConfig.from_dict(data)


@pytest.mark.parametrize(
    'change',
    [
        {'lm_n_kv_heads': 4},
        {'stage': 'pretrain'},
        {'depth_input': 'raw'},
        {'depth_min_m': 5.0, 'depth_max_m': 1.0},
        {'mp_image_token_length': 63},
    ],
)
def test_invalid_values_are_rejected(change: dict) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(SmolRGPTConfig(), **change)


@pytest.mark.parametrize(
    'change, message',
    [
        ({'lm_n_heads': 0}, 'lm_n_heads must be >= 1, got 0'),
        ({'vit_patch_size': 0}, 'vit_patch_size must be >= 1, got 0'),
        ({'mp_pixel_shuffle_factor': 0}, 'mp_pixel_shuffle_factor must be >= 1, got 0'),
        ({'lm_hidden_dim': 10**9}, 'lm_hidden_dim must be <= 65536'),
        ({'lm_n_blocks': '32'}, 'lm_n_blocks must be an integer, got "32"'),
        ({'lm_n_blocks': True}, 'lm_n_blocks must be an integer, got true'),
        ({'lm_rms_eps': math.nan}, 'lm_rms_eps must be a finite number, got NaN'),
        ({'vit_img_size': 4096, 'vit_patch_size': 1}, 'a 4096x4096 patch grid'),
        ({'region_refiner_depth': 8}, 'the refined mask grid is 2048x2048'),
        (
            {'lm_n_blocks': 1024, 'lm_hidden_dim': 9600, 'lm_inter_dim': 65536},
            'billion parameters',
        ),
    ],
)
def test_sizes_are_checked_before_any_arithmetic(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(SmolRGPTConfig(), **change)


def test_any_odd_value_is_a_value_error() -> None:
    """Never a ZeroDivisionError or TypeError, whatever a field holds."""
    odd = [0, -1, 2**40, 0.5, math.nan, -math.inf, '8', None, True, [], {}]
    for f in dataclasses.fields(SmolRGPTConfig):
        for value in odd:
            try:
                SmolRGPTConfig(**{f.name: value})
            except ValueError as exc:
                assert f.name in str(exc) or f.name == 'extra_token_amount', exc


def test_parameter_count_matches_the_model() -> None:
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT
    from smolrgpt_core.testing import tiny_config

    for cfg in (
        SmolRGPTConfig(),
        tiny_config(),
        tiny_config(region_refiner_depth=1, lm_n_kv_heads=4),
        tiny_config(mp_pixel_shuffle_factor=4, mp_image_token_length=1),
    ):
        with torch.device('meta'):
            model = SmolRGPT(cfg)
        assert cfg.parameter_count() == model.num_parameters()


def test_embedded_config_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    source = Path(__file__).parents[2] / 'models' / 'smolrgpt-tiny-synthetic' / 'config.json'
    SmolRGPTConfig.from_json(source).to_json(tmp_path / 'config.json')
    assert (tmp_path / 'config.json').read_bytes() == source.read_bytes()


def test_a_file_error_names_the_file(tmp_path: Path) -> None:
    from smolrgpt_core.checkpoint import CheckpointError

    (tmp_path / 'config.json').write_text('{"lm_n_heads": 0}')
    with pytest.raises(CheckpointError, match=re.escape(f'{tmp_path / "config.json"}: lm_n_')):
        SmolRGPTConfig.from_json(tmp_path / 'config.json')
