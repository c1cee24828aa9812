"""Frames -> model tensors: RGB, depth (8-bit image or metric), region masks.

* RGB (exact reference pipeline): to 3-channel, squash to 256x256 with PIL bilinear (which
  antialiases when shrinking, as torchvision's ``Resize`` on a PIL image does), scale to
  [0, 1], normalise with mean = std = 0.5 -> [-1, 1].
* Depth (reference *training* pipeline): an 8-bit depth image to 3 identical channels,
  nearest resize to 256x256, [0, 1], no normalisation. ``depth_pipeline='rgb'`` reproduces
  the reference's test-time quirk (depth through the RGB pipeline) for matching its numbers.
* Metric depth (``depth_input='metric'``): uint16 millimetres (0 = invalid) or float metres
  (NaN/inf or negative = invalid) is first mapped to that 8-bit representation: clipped to
  [depth_min_m, depth_max_m], scaled to 0..255, near = dark unless ``depth_near_is_dark`` is
  false, invalid pixels set to ``depth_invalid_value``.
* Masks: COCO RLE dicts or bool arrays -> float [M, H, W] at image resolution (the model
  resizes them to its 64x64 grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.masks import rles_decode

ImageLike = np.ndarray | Image.Image


def _to_pil_rgb(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == 'RGB' else image.convert('RGB')
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f'RGB images must be uint8, got {array.dtype}')
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
        return Image.fromarray(
            array.squeeze(-1) if array.ndim == 3 and array.shape[2] == 1 else array
        ).convert('RGB')
    raise ValueError(f'expected an image [H, W] or [H, W, 1|3|4], got {array.shape}')


def _pil_to_unit_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)  # [Hi, Wi, 3]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255)  # -> [3, Hi, Wi]


def preprocess_rgb(image: ImageLike, size: int = 256) -> torch.Tensor:
    """uint8 [H, W, 3] (or PIL) -> float32 [3, size, size] in [-1, 1]."""
    resized = _to_pil_rgb(image).resize((size, size), Image.Resampling.BILINEAR)
    return _pil_to_unit_tensor(resized).sub(0.5).div(0.5)


def metric_to_depth8(
    depth: np.ndarray,
    *,
    min_m: float,
    max_m: float,
    near_is_dark: bool = True,
    invalid_value: int = 0,
) -> np.ndarray:
    """uint16 millimetres or float metres [H, W] -> uint8 [H, W] depth image."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f'metric depth must be [H, W], got {depth.shape}')
    if depth.dtype == np.uint16:
        metres = depth.astype(np.float64) / 1000.0
        invalid = depth == 0
    elif np.issubdtype(depth.dtype, np.floating):
        metres = depth.astype(np.float64)
        invalid = ~np.isfinite(metres) | (metres < 0)
    else:
        raise ValueError(f'metric depth must be uint16 (mm) or float (m), got {depth.dtype}')
    scaled = np.clip((np.where(invalid, min_m, metres) - min_m) / (max_m - min_m), 0.0, 1.0)
    if not near_is_dark:
        scaled = 1.0 - scaled
    out = np.rint(scaled * 255.0).astype(np.uint8)
    out[invalid] = invalid_value
    return out


def preprocess_depth(depth: ImageLike, cfg: SmolRGPTConfig) -> torch.Tensor:
    """Depth frame -> float32 [3, S, S] as configured (see the module docstring)."""
    if cfg.depth_input == 'metric':
        if isinstance(depth, Image.Image):
            depth = np.asarray(depth)
        depth = metric_to_depth8(
            depth,
            min_m=cfg.depth_min_m,
            max_m=cfg.depth_max_m,
            near_is_dark=cfg.depth_near_is_dark,
            invalid_value=cfg.depth_invalid_value,
        )
    elif not isinstance(depth, Image.Image) and np.asarray(depth).dtype != np.uint8:
        raise ValueError(
            f'depth_input="image" expects an 8-bit depth image, got '
            f'{np.asarray(depth).dtype}; set depth_input="metric" for uint16 mm '
            f'or float metres'
        )
    image = _to_pil_rgb(depth)  # a grayscale depth map becomes 3 identical channels
    if cfg.depth_pipeline == 'rgb':
        return preprocess_rgb(image, cfg.vit_img_size)
    resized = image.resize((cfg.vit_img_size, cfg.vit_img_size), Image.Resampling.NEAREST)
    return _pil_to_unit_tensor(resized)


def masks_to_tensor(masks: Sequence[dict[str, Any]] | np.ndarray) -> torch.Tensor:
    """COCO RLE dicts or a bool array [M, H, W] -> float32 [M, H, W] (0/1)."""
    if isinstance(masks, np.ndarray):
        array = masks
    elif len(masks) == 0:
        raise ValueError('an empty RLE list has no size; pass an array [0, H, W] instead')
    else:
        array = rles_decode(list(masks))
    if array.ndim != 3:
        raise ValueError(f'masks must be [M, H, W], got {array.shape}')
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
