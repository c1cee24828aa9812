from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
import pytest
import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.depth import ENCODINGS
from smolrgpt_core.masks import rle_encode
from smolrgpt_core.preprocess import (
    masks_to_tensor,
    preprocess_depth,
    preprocess_rgb,
)


def test_rgb_scaling_is_exact_without_resize() -> None:
    image = np.zeros((256, 256, 3), dtype=np.uint8)
    image[0, 0] = (0, 51, 255)
    image[5, 7] = (102, 204, 153)
    out = preprocess_rgb(image)
    assert out.shape == (3, 256, 256) and out.dtype == torch.float32
    assert out[:, 0, 0].tolist() == pytest.approx([-1.0, 51 / 255 * 2 - 1, 1.0])
    assert out[:, 5, 7].tolist() == pytest.approx(
        [102 / 255 * 2 - 1, 204 / 255 * 2 - 1, 153 / 255 * 2 - 1]
    )


def test_rgb_squashes_with_antialiased_bilinear() -> None:
    # 1024 wide, columns [255, 0, 0, 0] repeating, 512 tall: squashed 4x horizontally.
    # Plain bilinear would sample between two zero columns (0); the antialiased filter
    # averages the period (255 / 4 ~ 64).
    row = np.tile(np.array([255, 0, 0, 0], dtype=np.uint8), 256)
    image = np.repeat(np.repeat(row[None, :, None], 512, 0), 3, 2)
    out = preprocess_rgb(image)
    centre = (out[0, 128, 100:150] + 1) / 2 * 255
    assert centre.mean().item() == pytest.approx(63.75, abs=1.0)
    assert out[0].std().item() < 0.05


def test_rgb_grayscale_becomes_three_channels() -> None:
    out = preprocess_rgb(np.full((10, 20), 255, dtype=np.uint8), size=32)
    assert out.shape == (3, 32, 32) and torch.all(out == 1.0)


def test_depth_training_pipeline_nearest_unit_range() -> None:
    depth = np.array([[10, 20], [30, 40]], dtype=np.uint8)
    out = preprocess_depth(depth, SmolRGPTConfig())
    assert out.shape == (3, 256, 256)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert out[0, :128, :128].unique().tolist() == pytest.approx([10 / 255])
    assert out[0, :128, 128:].unique().tolist() == pytest.approx([20 / 255])
    assert out[0, 128:, :128].unique().tolist() == pytest.approx([30 / 255])
    assert out[0, 128:, 128:].unique().tolist() == pytest.approx([40 / 255])


def test_depth_rgb_quirk_is_opt_in() -> None:
    depth = np.full((64, 64), 51, dtype=np.uint8)
    cfg = dataclasses.replace(SmolRGPTConfig(), depth_pipeline='rgb')
    assert torch.allclose(preprocess_depth(depth, cfg), torch.tensor(51 / 255 * 2 - 1))
    assert torch.allclose(preprocess_depth(depth, SmolRGPTConfig()), torch.tensor(51 / 255))


def test_metric_millimetres_to_8bit() -> None:
    mm = np.array([[0, 1000, 5000, 30000]], dtype=np.uint16)
    out = ENCODINGS['16UC1'].to_depth8(mm, 0.0, 10.0, near_is_dark=True, invalid_value=0)
    assert out.tolist() == [[0, 26, 128, 255]]  # 25.5 and 127.5 round half to even
    far_dark = ENCODINGS['16UC1'].to_depth8(mm, 0.0, 10.0, near_is_dark=False, invalid_value=7)
    assert far_dark.tolist() == [[7, 230, 128, 0]]


def test_metric_metres_invalid_values() -> None:
    metres = np.array([[np.nan, np.inf, -1.0, 2.0, 1.0]], dtype=np.float32)
    out = ENCODINGS['32FC1'].to_depth8(metres, 1.0, 3.0, invalid_value=255)
    assert out.tolist() == [[255, 255, 255, 128, 0]]


def test_metric_mode_through_config_and_image_mode_guard() -> None:
    cfg = dataclasses.replace(
        SmolRGPTConfig(vit_img_size=32, vit_patch_size=8, mp_image_token_length=4),
        depth_input='metric',
        depth_max_m=10.0,
    )
    mm = np.full((8, 8), 5000, dtype=np.uint16)
    assert torch.allclose(preprocess_depth(mm, cfg), torch.tensor(128 / 255))
    with pytest.raises(ValueError, match='depth_input="metric"'):
        preprocess_depth(mm, SmolRGPTConfig())


def test_masks_from_rle_and_arrays() -> None:
    a = np.zeros((5, 7), dtype=bool)
    a[1:3, 2:6] = True
    b = np.zeros((5, 7), dtype=bool)
    b[4, 0] = True
    from_rle = masks_to_tensor([rle_encode(a), rle_encode(b)])
    assert from_rle.shape == (2, 5, 7) and from_rle.dtype == torch.float32
    assert torch.equal(from_rle, torch.from_numpy(np.stack([a, b])).float())
    assert torch.equal(masks_to_tensor(np.stack([a, b])), from_rle)


def test_pil_input_matches_array_input() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    assert torch.equal(preprocess_rgb(image), preprocess_rgb(Image.fromarray(image)))
