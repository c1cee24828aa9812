"""Region features: the feature refiner (8x upsampling of the projected tokens) and mask pooling.

Each region is one binary mask at image resolution. The projected 8x8 token map (LM width) is
upsampled to 64x64 by three stride-2 transposed convolutions; the mask, resized to 64x64, is
the weight of a weighted mean over that map. One vector per region and per modality comes
out; it replaces a ``<mask_rgb>`` (RGB) or ``<mask_depth>`` (depth) token.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from smolrgpt_core.config import SmolRGPTConfig

# Keeps the mean finite for a mask that vanishes at 64x64 (it then pools to a zero vector).
POOL_EPS = 1e-8


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dim of a [B, C, h, w] map, with per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)  # [B, 1, h, w]
        var = (x - mean).pow(2).mean(1, keepdim=True)  # biased variance, [B, 1, h, w]
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class FeatureRefiner(nn.Module):
    """[B, n, D] token map -> [B, G*G, D] upsampled map (G = image grid * 2^depth).

    ``refiner`` indices match the official keys: (ConvT, LayerNorm2d, GELU) per stage and a
    final (ConvT, GELU), i.e. 0, 1, 2, 3, 4, 5, 6, 7 for depth 3. The GELUs are exact (erf).
    """

    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        width = cfg.region_width
        layers: list[nn.Module] = []
        for i in range(cfg.region_refiner_depth):
            layers.append(nn.ConvTranspose2d(width, width, kernel_size=2, stride=2))
            if i < cfg.region_refiner_depth - 1:
                layers.append(LayerNorm2d(width))
            layers.append(nn.GELU())
        self.refiner = nn.Sequential(*layers)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, n, D = tokens.shape
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f'the refiner needs a square token grid, got n={n}')
        x = tokens.transpose(1, 2).reshape(B, D, side, side)  # [B, n, D] -> [B, D, h, w]
        x = self.refiner(x)  # [B, D, G, G]
        return x.flatten(2).transpose(1, 2)  # [B, D, G, G] -> [B, G*G, D], row-major


_FLOAT_CHUNK_BYTES = 64 << 20  # float copies of masks made at once, at most


def resize_masks(masks: torch.Tensor, grid: int) -> torch.Tensor:
    """Binary masks [M, Hi, Wi] (bool, uint8 or float) -> pooling weights [M, G*G] on the
    refined grid.

    Bilinear, ``align_corners=False`` and no antialiasing, as the reference does it: a thin
    region can fall between the sample points and vanish. Masks become float a few at a time,
    so a camera-size mask stack is never copied to float whole (each channel is interpolated on
    its own, so chunks give the same numbers as one call).
    """
    if masks.dim() != 3:
        raise ValueError(f'masks must be [M, H, W], got {list(masks.shape)}')
    if masks.shape[0] == 0:
        return masks.new_zeros(0, grid * grid, dtype=torch.float32)
    per_chunk = max(1, _FLOAT_CHUNK_BYTES // (4 * masks.shape[1] * masks.shape[2]))
    out = []
    for start in range(0, masks.shape[0], per_chunk):
        chunk = masks[start : start + per_chunk]
        resized = F.interpolate(
            chunk[None].float(),
            size=(grid, grid),
            mode='bilinear',
            align_corners=False,
            antialias=False,
        )  # [1, m, G, G]
        out.append(resized[0].flatten(1))  # [m, G, G] -> [m, G*G]
    return torch.cat(out)  # [M, G*G]


def pool_regions(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mask-weighted mean of a refined map: [G*G, D] and [M, G*G] -> [M, D]."""
    # normalise in float32 (1e-8 underflows to 0 in fp16, and a mask that vanished on the grid
    # would pool to NaN), before the product, in the reference's order: bit-identical region
    # vectors on CPU in fp32 (dividing afterwards differs by ~5e-7)
    weights = weights.float()
    denom = weights.sum(-1, keepdim=True) + POOL_EPS  # [M, 1]
    return (weights / denom).to(features.dtype) @ features  # [M, G*G] @ [G*G, D] -> [M, D]


class MaskPooling(nn.Module):
    """Refined maps [U, G*G, D] + per-sample masks [M_b, Hi, Wi] -> per-sample [M_b, D].

    Sample b pools map ``image_index[b]`` (map b without an index). The masks of all samples on
    one image are pooled by one product with that image's map, so a batch with several
    questions per image neither copies the map per sample nor scatters its gradient back.
    """

    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.grid = cfg.mask_grid

    def forward(
        self,
        features: torch.Tensor,
        masks: list[torch.Tensor],
        image_index: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        return self.pool(features, self.resize(masks), image_index)

    def resize(self, masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-sample masks [M_b, Hi, Wi] -> pooling weights [M_b, G*G] (shared by RGB and
        depth, so a batch resizes its masks once)."""
        return [resize_masks(m, self.grid) for m in masks]

    def pool(
        self,
        features: torch.Tensor,
        weights: list[torch.Tensor],
        image_index: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """[U, G*G, D] maps and B x [M_b, G*G] weights -> B x [M_b, D]."""
        index = list(range(features.shape[0])) if image_index is None else image_index.tolist()
        if len(weights) != len(index):
            raise ValueError(f'got {len(weights)} mask tensors for a batch of {len(index)}')
        samples_of: dict[int, list[int]] = {}
        for b, u in enumerate(index):
            samples_of.setdefault(u, []).append(b)
        maps = features.unbind(0)  # one gradient buffer for the batch, not one per select
        pooled: list[torch.Tensor] = [features.new_empty(0)] * len(index)
        for u, samples in samples_of.items():
            # a sample alone on its image is one product, as the reference pools
            rows = pool_regions(maps[u], torch.cat([weights[b] for b in samples]))
            for b, part in zip(samples, rows.split([weights[b].shape[0] for b in samples])):
                pooled[b] = part  # [M_b, D]
        return pooled
