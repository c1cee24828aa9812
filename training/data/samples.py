"""The typed sample every dataset reader yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Answer = str | int | float


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str | None  # None for unanswered (test) questions


@dataclass
class Sample:
    """One question about one image, with its regions.

    ``question`` keeps the source's own placeholders (``<mask>`` for NVIDIA and bench JSON,
    ``<mask_rgb><mask_depth>`` for SmolRGPT parquet); the k-th placeholder is ``rle[k]`` and
    ``[Region k]`` in answers.
    """

    id: str
    question: str
    source: str  # 'warehouse-json' | 'smolrgpt-parquet' | 'spatialrgpt-bench'
    rgb_path: Path | None = None
    depth_path: Path | None = None
    rle: list[dict[str, Any]] | None = None
    answer: str | None = None  # free-form ground truth
    category: str | None = None
    normalized_answer: Answer | None = None  # typed: str / int / float
    turns: tuple[Turn, ...] = ()
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_regions(self) -> int:
        return len(self.rle or [])

    def masks(self) -> np.ndarray:
        """bool [M, H, W] region masks, in placeholder order."""
        from smolrgpt_core.masks import rles_decode

        if not self.rle:
            raise ValueError(f'sample {self.id} has no region masks')
        return rles_decode(self.rle)

    def load_rgb(self) -> np.ndarray:
        """uint8 [H, W, 3]."""
        from PIL import Image

        if self.rgb_path is None:
            raise ValueError(f'sample {self.id} has no RGB image')
        with Image.open(self.rgb_path) as image:
            return np.asarray(image.convert('RGB'))

    def load_depth(self) -> np.ndarray:
        """The depth image as stored (uint8 [H, W] for the warehouse data)."""
        from PIL import Image

        if self.depth_path is None:
            raise ValueError(f'sample {self.id} has no depth image')
        with Image.open(self.depth_path) as image:
            return np.asarray(image)
