"""Frames -> model tensors: RGB, depth (8-bit image or metric), region masks.

* RGB (exact reference pipeline): to 3-channel, squash to 256x256 with PIL bilinear (which
  antialiases when shrinking, as torchvision's ``Resize`` on a PIL image does), scale to
  [0, 1], normalise with mean = std = 0.5 -> [-1, 1].
* Depth (reference *training* pipeline): an 8-bit depth image to 3 identical channels,
  nearest resize to 256x256, [0, 1], no normalisation. ``depth_pipeline='rgb'`` reproduces
  the reference's test-time quirk (depth through the RGB pipeline) for matching its numbers.
* Metric depth (``depth_input='metric'``): uint16 millimetres or float metres is first mapped
  to that 8-bit representation by ``smolrgpt_core.depth`` (the one owner of what a depth pixel
  means and which pixels are valid): clipped to [depth_min_m, depth_max_m], scaled to 0..255,
  near = dark unless ``depth_near_is_dark`` is false, invalid pixels set to
  ``depth_invalid_value``.
* Masks: COCO RLE dicts or bool arrays -> float [M, H, W] at image resolution (the model
  resizes them to its 64x64 grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
import torch

from smolrgpt_core import depth as depth_codec
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


def preprocess_depth8(depth8: ImageLike, size: int, pipeline: str = 'train') -> torch.Tensor:
    """The model's 8-bit depth image -> float32 [3, size, size]: nearest resize to [0, 1]
    (``pipeline`` 'train'), or through the RGB pipeline ('rgb', the reference's test-time quirk).
    """
    if not isinstance(depth8, Image.Image) and np.asarray(depth8).dtype != np.uint8:
        raise ValueError(
            f'depth_input="image" expects an 8-bit depth image, got {np.asarray(depth8).dtype}; '
            'set depth_input="metric" for uint16 mm or float metres'
        )
    image = _to_pil_rgb(depth8)  # a grayscale depth map becomes 3 identical channels
    if pipeline == 'rgb':
        return preprocess_rgb(image, size)
    resized = image.resize((size, size), Image.Resampling.NEAREST)
    return _pil_to_unit_tensor(resized)


def preprocess_depth(depth: ImageLike, cfg: SmolRGPTConfig) -> torch.Tensor:
    """Depth frame -> float32 [3, S, S] as the checkpoint's own depth fields say (training):
    ``depth_input`` 'metric' maps uint16 mm / float metres with its fixed range first."""
    if cfg.depth_input == 'metric':
        values = np.asarray(depth)
        try:
            name = depth_codec.encoding_for_dtype(values.dtype)
        except ValueError as exc:
            raise ValueError(f'metric depth: {exc}') from None
        if name == 'mono8':
            raise ValueError('depth_input="metric" expects uint16 mm or float metres, got uint8')
        values = values.astype(np.float32) if values.dtype == np.float64 else values
        depth = depth_codec.to_depth8(values, name, (cfg.depth_min_m, cfg.depth_max_m), cfg)
    return preprocess_depth8(depth, cfg.vit_img_size, cfg.depth_pipeline)


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
