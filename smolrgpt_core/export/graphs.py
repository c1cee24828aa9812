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
  graph serves the prefill (P = 0 or the shared prefix) and every decode step (T = 1). It is
  the model's own ``Decoder.forward`` on an ``ExportCache``, which also selects the
  written-out attention (``decoder.explicit_attention``: GQA head expansion, matmuls, float32
  softmax) instead of ``scaled_dot_product_attention``: the exported op set stays within what
  ONNX Runtime and TensorRT both parse, and the softmax statistics stay in float32 in an fp16
  graph.
"""

from __future__ import annotations

import torch
from torch import nn

from smolrgpt_core.modeling.decoder import Decoder, linear
from smolrgpt_core.modeling.kv_cache import ExportCache
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
        cache = ExportCache(past_key, past_value)
        hidden = self.decoder(
            inputs_embeds, position_ids, attention_bias, cache, last_only=True
        )  # [B, D]
        logits = linear(self.decoder.head, hidden).float()  # [B, V]
        present_key, present_value = cache.present()  # [L, B, Hkv, P + T, Dh] each
        return logits, present_key, present_value
