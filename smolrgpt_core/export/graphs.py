"""Export-friendly views of SmolRGPT: the vision side and one decoder step.

Both wrappers reuse the model's own submodules (weights are shared, nothing is copied) and
only restate the control flow in a form the exporters trace into one static graph:

* ``VisionGraph``: image + depth [1, 3, S, S] and region masks already resized to the refined
  grid [M, G, G] -> image embeddings [n, D], pooled RGB and depth region vectors [M, D].
  The region count M is a dynamic dimension (each row pools independently, so no validity
  vector is needed; TensorRT gets an optimisation profile over M). Resizing the camera-size
  masks to G x G stays on the host (``resize_masks``, the same code as the torch backend):
  camera resolutions vary, and one bilinear implementation everywhere keeps the pooled
  vectors identical across backends.
* ``DecoderGraph``: input embeddings [B, T, D] + position ids [B, T] + additive attention
  bias [B, 1, T, P + T] + past keys/values [L, B, Hkv, P, Dh] -> last-position logits [B, V]
  (float32) + present keys/values [L, B, Hkv, P + T, Dh] (past and new, concatenated). One
  graph serves the prefill (P = 0 or the shared prefix) and every decode step (T = 1).

The attention is written out (GQA head expansion, matmuls, float32 softmax) instead of
``scaled_dot_product_attention``: the exported op set stays within what ONNX Runtime and
TensorRT both parse, and the softmax statistics stay in float32 in an fp16 graph.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from smolrgpt_core.modeling.decoder import Attention, Decoder, DecoderBlock, apply_rotary
from smolrgpt_core.modeling.region import POOL_EPS
from smolrgpt_core.modeling.smolrgpt import SmolRGPT

VISION_INPUTS = ('image', 'depth', 'masks')
VISION_OUTPUTS = ('image_embeds', 'rgb_regions', 'depth_regions')
DECODER_INPUTS = ('inputs_embeds', 'position_ids', 'attention_bias', 'past_key', 'past_value')
DECODER_OUTPUTS = ('logits', 'present_key', 'present_value')


def pool_regions_exportable(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``region.pool_regions`` for export: [G*G, D] and [M, G*G] -> [M, D].

    The exporter's graph optimizer (onnxscript 0.7.2 with torch 2.13) deletes ``x + 1e-8`` as
    if it added nothing, so a mask that vanishes on the G x G grid pooled to 0 / 0 = NaN in
    the graph (0 in torch). A float32 ``max(sum, eps)`` survives, also in an fp16 graph (where
    1e-8 would underflow to 0), and equals ``sum + eps`` in float32 for any sum above ~0.2.
    """
    w = weights.float()
    denom = w.sum(-1, keepdim=True).clamp_min(POOL_EPS)  # [M, 1]
    return (w / denom).to(features.dtype) @ features  # [M, G*G] @ [G*G, D] -> [M, D]


class VisionGraph(nn.Module):
    """One frame's vision side (ViT x2, projectors, refiners, mask pooling)."""

    def __init__(self, model: SmolRGPT) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, image: torch.Tensor, depth: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image_tokens, depth_tokens = self.model.encode_images(image, depth)  # [1, n, D] each
        weights = masks.flatten(1)  # [M, G, G] -> [M, G*G]
        rgb_map = self.model.rgb_refiner(image_tokens)[0]  # [G*G, D]
        depth_map = self.model.depth_refiner(depth_tokens)[0]  # [G*G, D]
        return (
            image_tokens[0],
            pool_regions_exportable(rgb_map, weights),
            pool_regions_exportable(depth_map, weights),
        )


def _attention(
    attn: Attention,
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    bias: torch.Tensor,
    past_k: torch.Tensor,
    past_v: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer's attention over past + new keys; returns output, present k, present v."""
    B, T, D = x.shape
    H, Hkv, Dh = attn.n_heads, attn.n_kv_heads, attn.head_dim
    q = F.linear(x, attn.q_proj.weight).view(B, T, H, Dh).transpose(1, 2)  # [B, H, T, Dh]
    k = F.linear(x, attn.k_proj.weight).view(B, T, Hkv, Dh).transpose(1, 2)  # [B, Hkv, T, Dh]
    v = F.linear(x, attn.v_proj.weight).view(B, T, Hkv, Dh).transpose(1, 2)  # [B, Hkv, T, Dh]
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    k = torch.cat((past_k, k), dim=2)  # [B, Hkv, S, Dh], S = P + T
    v = torch.cat((past_v, v), dim=2)  # [B, Hkv, S, Dh]
    # GQA: query head i reads kv head i // (H / Hkv), as repeat_interleave gives
    group = H // Hkv
    k_all = k[:, :, None].expand(B, Hkv, group, k.shape[2], Dh).reshape(B, H, -1, Dh)
    v_all = v[:, :, None].expand(B, Hkv, group, v.shape[2], Dh).reshape(B, H, -1, Dh)
    scores = (q @ k_all.transpose(-1, -2)).float() * (1.0 / math.sqrt(Dh))  # [B, H, T, S]
    probs = (scores + bias.float()).softmax(-1).to(x.dtype)  # [B, H, T, S]
    y = (probs @ v_all).transpose(1, 2).reshape(B, T, D)  # [B, H, T, Dh] -> [B, T, D]
    return F.linear(y, attn.out_proj.weight), k, v


def _block(
    block: DecoderBlock,
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    bias: torch.Tensor,
    past_k: torch.Tensor,
    past_v: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    h, k, v = _attention(block.attn, block.norm1(x), cos, sin, bias, past_k, past_v)
    x = x + h
    mlp = block.mlp
    z = block.norm2(x)
    gated = F.silu(F.linear(z, mlp.gate_proj.weight)) * F.linear(z, mlp.up_proj.weight)
    return x + F.linear(gated, mlp.down_proj.weight), k, v


class DecoderGraph(nn.Module):
    """One decoder call with explicit past/present keys and values (post-RoPE)."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        attention_bias: torch.Tensor,
        past_key: torch.Tensor,
        past_value: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cos, sin = self.decoder.rotary_embd(position_ids)  # [B, T, Dh] each
        x = inputs_embeds
        keys, values = [], []
        for i, block in enumerate(self.decoder.blocks):
            x, k, v = _block(block, x, cos, sin, attention_bias, past_key[i], past_value[i])
            keys.append(k)
            values.append(v)
        hidden = self.decoder.norm(x[:, -1])  # [B, D], the last position only
        logits = F.linear(hidden, self.decoder.head.weight).float()  # [B, V]
        return logits, torch.stack(keys), torch.stack(values)  # [L, B, Hkv, S, Dh]
