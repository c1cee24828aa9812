"""SigLIP-style vision transformer (the frozen SigLIP2-B/16 encoder of SmolRGPT).

Pre-norm blocks with a fused qkv projection, GELU-tanh MLP and SigLIP's final
``post_layernorm``; no CLS token and no attention-pooling head. The same instance encodes the
RGB and the depth image. Parameter names follow the official SmolRGPT state dict; the
mapping from Hugging Face SigLIP keys lives in ``weights.py``.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from smolrgpt_core.config import SmolRGPTConfig


class PatchEmbedding(nn.Module):
    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.img_size = cfg.vit_img_size
        self.conv = nn.Conv2d(3, cfg.vit_hidden_dim, cfg.vit_patch_size, cfg.vit_patch_size)
        # learned absolute positions, one per patch, added (not concatenated)
        self.position_embedding = nn.Parameter(
            torch.zeros(1, cfg.vit_n_patches, cfg.vit_hidden_dim)
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(
                f'expected images [B, 3, {self.img_size}, {self.img_size}], '
                f'got {list(pixels.shape)}'
            )
        x = self.conv(pixels)  # [B, 3, Hi, Wi] -> [B, D, h, w]
        x = x.flatten(2).transpose(1, 2)  # [B, D, h, w] -> [B, N, D], row-major patches
        return x + self.position_embedding


class ViTAttention(nn.Module):
    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.vit_n_heads
        self.head_dim = cfg.vit_head_dim
        self.dropout = cfg.vit_dropout
        # q, k, v stacked along the output dim in that order (rows 0..D-1 are q)
        self.qkv_proj = nn.Linear(cfg.vit_hidden_dim, 3 * cfg.vit_hidden_dim)
        self.out_proj = nn.Linear(cfg.vit_hidden_dim, cfg.vit_hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv_proj(x).view(B, N, 3, self.n_heads, self.head_dim)  # [B, N, 3, H, Dh]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, H, N, Dh]
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # [B, H, N, Dh]
        y = y.transpose(1, 2).reshape(B, N, D)  # [B, H, N, Dh] -> [B, N, D]
        return self.out_proj(y)


class ViTMLP(nn.Module):
    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.vit_hidden_dim, cfg.vit_inter_dim)
        self.fc2 = nn.Linear(cfg.vit_inter_dim, cfg.vit_hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # SigLIP uses the tanh approximation (gelu_pytorch_tanh), unlike the refiners
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


class ViTBlock(nn.Module):
    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.vit_hidden_dim, eps=cfg.vit_ln_eps)
        self.attn = ViTAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.vit_hidden_dim, eps=cfg.vit_ln_eps)
        self.mlp = ViTMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class VisionEncoder(nn.Module):
    """[B, 3, Hi, Wi] in [-1, 1] -> [B, N, D] patch features (post-layernorm applied)."""

    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.patch_embedding = PatchEmbedding(cfg)
        self.dropout = nn.Dropout(cfg.vit_dropout)
        self.blocks = nn.ModuleList(ViTBlock(cfg) for _ in range(cfg.vit_n_blocks))
        self.layer_norm = nn.LayerNorm(cfg.vit_hidden_dim, eps=cfg.vit_ln_eps)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.patch_embedding(pixels))  # [B, N, D]
        for block in self.blocks:
            x = block(x)
        return self.layer_norm(x)
