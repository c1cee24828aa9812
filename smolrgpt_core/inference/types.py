"""Data passed between the vision side (``encode_frame``) and the language side (``answer``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EncodedFrame:
    """Everything the language side needs from one RGB-D frame, computed once.

    ``rgb_regions[m]`` / ``depth_regions[m]`` are the pooled vectors of the frame's m-th mask;
    a prompt selects them by index, so questions may use any subset and order of regions.
    """

    image_embeds: torch.Tensor  # [n, D] projected RGB tokens for the <|image|> slots
    rgb_regions: torch.Tensor  # [M, D]
    depth_regions: torch.Tensor  # [M, D]

    @property
    def n_regions(self) -> int:
        return self.rgb_regions.shape[0]


@dataclass(frozen=True)
class Prompt:
    """Token ids of one rendered question plus, for its k-th region reference (the k-th
    ``<mask_rgb><mask_depth>`` pair), the index of the frame mask it refers to."""

    ids: tuple[int, ...]
    regions: tuple[int, ...] = ()
