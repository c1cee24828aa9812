"""Modality projector: 2x2 pixel shuffle, then a bias-free linear into the LM width.

SmolRGPT has two instances with identical structure, ``MP`` (RGB) and ``MP_depth`` (depth);
the output tokens replace the ``<|image|>`` placeholders and feed the region refiners.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from smolrgpt_core.config import SmolRGPTConfig


def pixel_shuffle(x: torch.Tensor, s: int) -> torch.Tensor:
    """Space-to-depth on a square token grid: [B, N, D] -> [B, N / s^2, D * s^2].

    Tokens stay row-major over the smaller grid; inside each output vector the ``s * s``
    input chunks are ordered by (dy, dx), i.e. chunk ``dy * s + dx`` (token 0 of a 16x16
    grid with s=2 gathers patches 0, 1, 16, 17).
    """
    B, N, D = x.shape
    side = math.isqrt(N)
    if side * side != N or side % s:
        raise ValueError(f'pixel_shuffle needs a square grid divisible by {s}, got N={N}')
    h = side // s
    x = x.view(B, h, s, h, s, D)  # [B, N, D] -> [B, h, s(dy), w, s(dx), D]
    x = x.permute(0, 1, 3, 2, 4, 5)  # -> [B, h, w, dy, dx, D]
    return x.reshape(B, h * h, s * s * D)  # -> [B, n, s*s*D]


class ModalityProjector(nn.Module):
    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.scale = cfg.mp_pixel_shuffle_factor
        in_dim = cfg.vit_hidden_dim * self.scale**2
        self.proj = nn.Linear(in_dim, cfg.lm_hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, D_vit] -> [B, n, D_lm]."""
        return self.proj(pixel_shuffle(x, self.scale))
