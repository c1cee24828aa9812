"""Prompt splicing: token embeddings with the image and region vectors in their placeholder rows.

One implementation for every backend: ``SmolRGPT.embed`` (training forward, reference-style
``generate``), ``SmolRGPT.prompt_embeddings`` (the torch backends' ``answer``) and the host
side of the exported-graph backends (``graph_runtime``), which looks tokens up in the exported
table instead of the module. The k-th ``<|image|>`` of a row receives its k-th image token,
the k-th ``<mask_rgb>`` / ``<mask_depth>`` its k-th region vector; any count mismatch is an
error, so nothing ever shifts silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.inference.types import EncodedFrame, Prompt


def _placeholders(
    input_ids: torch.Tensor, token_id: int, expected: Sequence[int], what: str
) -> torch.Tensor:
    """[B, T] -> where ``token_id`` sits [B, T], after checking its count per row."""
    is_token = input_ids == token_id  # [B, T]
    found = is_token.sum(-1).tolist()
    if found != list(expected):
        raise ValueError(
            f'{what}: the prompts hold {found} placeholder tokens per sample '
            f'but {list(expected)} embeddings were given'
        )
    return is_token


def splice(
    token_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    cfg: SmolRGPTConfig,
    image_tokens: torch.Tensor,
    rgb_regions: Sequence[torch.Tensor] | None = None,
    depth_regions: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """token_embeds [B, T, D] of input_ids [B, T], image_tokens [B, n, D], per-row region
    vectors [M_b, D] -> [B, T, D] with those vectors in their placeholder rows.

    Out of place (``masked_scatter`` fills row-major, batch then sequence), so gradients reach
    the spliced vectors.
    """
    B, n, _ = image_tokens.shape
    emb = token_embeds
    is_image = _placeholders(input_ids, cfg.image_token_id, [n] * B, 'image tokens')
    emb = emb.masked_scatter(is_image[..., None], image_tokens.to(emb.device, emb.dtype))
    n_regions = [0] * B if rgb_regions is None else [r.shape[0] for r in rgb_regions]
    for token_id, regions, what in (
        (cfg.mask_rgb_token_id, rgb_regions, 'rgb region tokens'),
        (cfg.mask_depth_token_id, depth_regions, 'depth region tokens'),
    ):
        is_region = _placeholders(input_ids, token_id, n_regions, what)
        if regions is not None and sum(n_regions):
            values = torch.cat(list(regions)).to(emb.device, emb.dtype)  # [sum M_b, D]
            emb = emb.masked_scatter(is_region[..., None], values)
    return emb


def prompt_embeddings(
    table: torch.Tensor, cfg: SmolRGPTConfig, frame: EncodedFrame, prompts: Sequence[Prompt]
) -> list[torch.Tensor]:
    """Each prompt's embeddings [T, D]: tokens looked up in ``table`` [V, D], the frame's
    image embeddings and the regions the prompt selects (by index) spliced in."""
    embeds = []
    for prompt in prompts:
        bad = [r for r in prompt.regions if not 0 <= r < frame.n_regions]
        if bad:
            raise ValueError(
                f'prompt refers to regions {bad} but the frame has {frame.n_regions} masks'
            )
        index = torch.tensor(prompt.regions, dtype=torch.long, device=frame.rgb_regions.device)
        ids = torch.tensor([prompt.ids], dtype=torch.long, device=table.device)  # [1, T]
        emb = splice(
            F.embedding(ids, table),  # [1, T, D], as nn.Embedding looks it up
            ids,
            cfg,
            frame.image_embeds[None],
            [frame.rgb_regions[index]],
            [frame.depth_regions[index]],
        )  # [1, T, D]
        embeds.append(emb[0])
    return embeds
