"""SmolRGPT: ViT + projectors + region refiners + Llama decoder, wired as in the reference.

Data flow (fp32, numerically equal to the reference):

* RGB and depth [B, 3, 256, 256] go through the shared ViT in one batched call, then through
  their own projector (``MP`` / ``MP_depth``) -> [B, 64, D_lm] each.
* The RGB tokens replace the 64 ``<|image|>`` placeholders of each sample.
* For regions, both token maps are refined to 64x64 and mask-pooled; the k-th
  ``<mask_rgb>`` / ``<mask_depth>`` of a sample receives its k-th region vector.
* The decoder runs on the spliced embeddings; the tied head gives the logits.

Inference is split in two: ``encode_frame`` (vision side, once per frame) and ``answer``
(language side, any number of batched questions that select the frame's regions by index).

Attribute names (``MP``, ``MP_depth``, ...) are those of the official state dict, so official
``model.safetensors`` files load by plain name match.
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.generation import generate
from smolrgpt_core.inference.types import EncodedFrame, Prompt
from smolrgpt_core.modeling.decoder import Decoder, attention_bias
from smolrgpt_core.modeling.projector import ModalityProjector
from smolrgpt_core.modeling.region import FeatureRefiner, MaskPooling, pool_regions, resize_masks
from smolrgpt_core.modeling.splice import prompt_embeddings, splice
from smolrgpt_core.modeling.vision import VisionEncoder
from smolrgpt_core.sampling import SamplingParams

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
# rows a training batch decodes together when grouped by length (``SmolRGPT._decode_by_length``)
DECODE_GROUP_ROWS = 8


class SmolRGPT(nn.Module):
    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision_encoder = VisionEncoder(cfg)
        self.decoder = Decoder(cfg)
        self.MP = ModalityProjector(cfg)
        self.MP_depth = ModalityProjector(cfg)
        self.rgb_refiner = FeatureRefiner(cfg)
        self.depth_refiner = FeatureRefiner(cfg)
        self.mask_pooling = MaskPooling(cfg)
        self.apply(self._init_weights)
        self.decoder.tie_weights()

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # N(0, 0.02) linears/embeddings, zero biases, like the reference before backbone
        # loading; the refiners keep PyTorch's default ConvTranspose2d init
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, 'bias', None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # loading / saving (implemented in weights.py) ----------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = 'cpu',
    ) -> SmolRGPT:
        from smolrgpt_core.weights import load_pretrained

        return load_pretrained(cls, path, dtype=dtype, device=device)

    def save_pretrained(self, path: str | Path) -> None:
        from smolrgpt_core.weights import save_pretrained

        save_pretrained(self, path)

    @classmethod
    def from_backbones(
        cls, vision_dir: str | Path, lm_dir: str | Path, cfg: SmolRGPTConfig | None = None
    ) -> SmolRGPT:
        from smolrgpt_core.weights import load_backbones

        return load_backbones(cls, vision_dir, lm_dir, cfg)

    # vision side --------------------------------------------------------------------------
    def encode_images(
        self, images: torch.Tensor, depths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B, 3, S, S] RGB (and depth) -> projected tokens [B, n, D] each."""
        dtype = self.MP.proj.weight.dtype
        if depths is None:
            return self.MP(self.vision_encoder(images.to(dtype))), None
        if depths.shape != images.shape:
            raise ValueError(f'depths {list(depths.shape)} must match images {list(images.shape)}')
        B = images.shape[0]
        # one ViT call for both modalities (the reference makes two)
        feats = self.vision_encoder(torch.cat((images, depths)).to(dtype))  # [2B, N, D_vit]
        return self.MP(feats[:B]), self.MP_depth(feats[B:])

    def region_features(
        self,
        image_tokens: torch.Tensor,
        depth_tokens: torch.Tensor,
        masks: Sequence[torch.Tensor],
        image_index: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-sample pooled region vectors [M_b, D] for RGB and depth. With ``image_index``
        [B], the token maps are per distinct image [U, n, D] and sample b pools the refined
        map of image ``image_index[b]``."""
        rgb_map = self.rgb_refiner(image_tokens)  # [U, G*G, D]
        depth_map = self.depth_refiner(depth_tokens)  # [U, G*G, D]
        weights = self.mask_pooling.resize(list(masks))  # B x [M_b, G*G]
        return (
            self.mask_pooling.pool(rgb_map, weights, image_index),
            self.mask_pooling.pool(depth_map, weights, image_index),
        )

    @torch.inference_mode()
    def encode_frame(
        self,
        image: torch.Tensor,
        depth: torch.Tensor,
        masks: torch.Tensor | np.ndarray | None = None,
    ) -> EncodedFrame:
        """One frame: image/depth [3, S, S] (or [1, 3, S, S]), masks [M, Hi, Wi] or None."""
        image = image if image.dim() == 4 else image[None]
        depth = depth if depth.dim() == 4 else depth[None]
        if image.shape[0] != 1 or depth.shape[0] != 1:
            raise ValueError('encode_frame takes one frame; use forward() for batches')
        image_tokens, depth_tokens = self.encode_images(image, depth)  # [1, n, D] each
        D = image_tokens.shape[-1]
        if masks is not None:
            masks = torch.as_tensor(masks)  # numpy bool arrays welcome
        if masks is None or masks.shape[0] == 0:
            empty = image_tokens.new_zeros(0, D)
            return EncodedFrame(image_tokens[0], empty, empty.clone())
        # the masks are resized once and pool both refined maps
        weights = resize_masks(masks.to(image_tokens.device), self.cfg.mask_grid)  # [M, G*G]
        rgb_map = self.rgb_refiner(image_tokens)[0]  # [G*G, D]
        depth_map = self.depth_refiner(depth_tokens)[0]  # [G*G, D]
        return EncodedFrame(
            image_tokens[0], pool_regions(rgb_map, weights), pool_regions(depth_map, weights)
        )

    # splicing (modeling/splice.py) ------------------------------------------------------
    def embed(
        self,
        input_ids: torch.Tensor,
        image_tokens: torch.Tensor,
        rgb_regions: Sequence[torch.Tensor] | None = None,
        depth_regions: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Token embeddings with image and region vectors spliced in: [B, T] -> [B, T, D]."""
        emb = self.decoder.token_embedding(input_ids)  # [B, T, D]
        return splice(emb, input_ids, self.cfg, image_tokens, rgb_regions, depth_regions)

    def prompt_embeddings(
        self, frame: EncodedFrame, prompts: Sequence[Prompt]
    ) -> list[torch.Tensor]:
        """Each prompt's embeddings [T, D] with the frame's image and region vectors spliced."""
        return prompt_embeddings(self.decoder.token_embedding.weight, self.cfg, frame, prompts)

    # training / scoring ------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        images: torch.Tensor,
        depths: torch.Tensor | None = None,
        masks: Sequence[torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        image_index: torch.Tensor | None = None,
        logits_at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """input_ids [B, T]; images/depths [B, 3, S, S]; masks: B tensors [M_b, Hi, Wi];
        attention_mask [B, T] (1 = real token, left padding); targets [B, T] already shifted
        (-100 = ignored). Returns logits [B, T, V] and the mean loss (or None).

        ``logits_at`` [B, T] (bool) keeps only those positions: logits come back [N, V], in
        row-major order, and a loss reads ``targets[logits_at]``. Training passes the target
        positions, so the head and the softmax skip the prompt and the padding.

        ``image_index`` [B] lets several samples share one image: images/depths then hold the
        U distinct images [U, 3, S, S] and sample b uses image ``image_index[b]``, so the
        vision side runs once per image. Same result as passing each sample its own copy.
        """
        if masks is not None and depths is None:
            raise ValueError('region masks need the depth image (for <mask_depth>)')
        B = input_ids.shape[0]
        if image_index is not None and (
            image_index.shape != (B,)
            or bool((image_index < 0).any() | (image_index >= images.shape[0]).any())
        ):
            raise ValueError(
                f'image_index must be [{B}] indices into {images.shape[0]} '
                f'images, got {image_index.tolist()}'
            )
        image_tokens, depth_tokens = self.encode_images(images, depths)  # [U, n, D] each
        rgb_regions = depth_regions = None
        if masks is not None:
            if len(masks) != B:
                raise ValueError(f'got {len(masks)} mask tensors for a batch of {B}')
            rgb_regions, depth_regions = self.region_features(
                image_tokens, depth_tokens, masks, image_index
            )
        if image_index is not None:
            image_tokens = image_tokens[image_index]  # [U, n, D] -> [B, n, D]
        emb = self.embed(input_ids, image_tokens, rgb_regions, depth_regions)
        if logits_at is None:
            hidden = self._decode_full(emb, attention_mask)  # [B, T, D]
        else:
            if logits_at.shape != input_ids.shape or logits_at.dtype != torch.bool:
                raise ValueError(
                    f'logits_at must be a bool mask {list(input_ids.shape)}, '
                    f'got {logits_at.dtype} {list(logits_at.shape)}'
                )
            hidden = self._decode_by_length(emb, attention_mask)[logits_at]  # [N, D]
            targets = None if targets is None else targets[logits_at]  # [N]
        logits = self.decoder.head(hidden)  # [B, T, V] (or [N, V])
        loss = None
        if targets is not None:
            # targets come shifted by the collator, so position t is scored against t
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                targets.flatten(),  # [B*T, V], [B*T] (or [N, V], [N])
                ignore_index=IGNORE_INDEX,
            )
        return logits, loss

    def _decode_full(self, emb: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = emb.shape
        if attention_mask is None:
            positions = torch.arange(T, device=emb.device).expand(B, T)  # [B, T]
            return self.decoder(emb, positions, None)
        valid = attention_mask.bool()
        # positions count real tokens only, so a left-padded row matches its unpadded self
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)  # [B, T]
        bias = None if bool(valid.all()) else attention_bias(valid, 0, T, emb.dtype)
        return self.decoder(emb, positions, bias)

    def _decode_by_length(
        self, emb: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """``_decode_full`` for a left-padded batch, its rows decoded in groups of similar
        length, each group cut to its own longest row: a training batch is about a third
        padding. The real positions get the same values (up to float rounding: fewer padded
        keys in a softmax); the cut-off pad positions come back as zeros."""
        B, T, _ = emb.shape
        if attention_mask is None or B < 2 * DECODE_GROUP_ROWS:
            return self._decode_full(emb, attention_mask)
        valid = attention_mask.bool()
        lengths = valid.sum(-1)  # [B]
        left_padded = torch.arange(T, device=emb.device) >= (T - lengths)[:, None]  # [B, T]
        if not bool((valid == left_padded).all()):
            return self._decode_full(emb, attention_mask)
        order = lengths.argsort(stable=True)  # [B], shortest rows first
        parts = []
        for rows in order.split(DECODE_GROUP_ROWS):
            L = max(1, int(lengths[rows].max()))
            part = self._decode_full(emb[rows, T - L :], attention_mask[rows, T - L :])
            parts.append(F.pad(part, (0, 0, T - L, 0)))  # [b, L, D] -> [b, T, D]
        return torch.cat(parts)[order.argsort()]  # [B, T, D], back in the batch's row order

    # generation ------------------------------------------------------------------------------
    @torch.inference_mode()
    def answer(
        self,
        frame: EncodedFrame,
        prompts: Sequence[Prompt],
        *,
        eos_token_id: int,
        max_new_tokens: int = 120,
        sampling: SamplingParams | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """Batched questions about one encoded frame -> new token ids per question (no EOS)."""
        return generate(
            self.decoder,
            self.prompt_embeddings(frame, prompts),
            eos_token_id=eos_token_id,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            generator=generator,
        )

    @torch.inference_mode()
    def generate(
        self,
        input_ids: torch.Tensor,
        images: torch.Tensor,
        depths: torch.Tensor | None = None,
        masks: Sequence[torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        eos_token_id: int,
        max_new_tokens: int = 120,
        sampling: SamplingParams | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """Reference-style batch generation (one frame per row, left-padded prompts)."""
        image_tokens, depth_tokens = self.encode_images(images, depths)
        rgb_regions = depth_regions = None
        if masks is not None:
            if depth_tokens is None:
                raise ValueError('region masks need the depth image (for <mask_depth>)')
            rgb_regions, depth_regions = self.region_features(image_tokens, depth_tokens, masks)
        emb = self.embed(input_ids, image_tokens, rgb_regions, depth_regions)  # [B, T, D]
        valid = (
            torch.ones_like(input_ids, dtype=torch.bool)
            if attention_mask is None
            else attention_mask.bool()
        )
        embeds = [e[v] for e, v in zip(emb, valid)]  # B x [T_b, D], pads dropped
        return generate(
            self.decoder,
            embeds,
            eos_token_id=eos_token_id,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            generator=generator,
        )

    def num_parameters(self) -> int:
        """Unique parameters (the tied embedding/head counted once)."""
        return sum(p.numel() for p in self.parameters())
