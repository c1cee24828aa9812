"""The one record type for a dataset item: what every reader yields and training consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

Answer = str | int | float


class Turn(NamedTuple):
    user: str
    assistant: str | None  # None for unanswered (test) questions


@dataclass(kw_only=True)
class Sample:
    """Chat turns about one image (and its regions).

    The user turns keep the source's own placeholders (``<mask>`` for NVIDIA and bench JSON,
    ``<mask_rgb><mask_depth>`` for SmolRGPT parquet); the k-th placeholder is ``rle[k]`` and
    ``[Region k]`` in answers.
    """

    id: str
    turns: tuple[Turn, ...]
    rgb_path: Path
    source: str  # 'warehouse-json' | 'smolrgpt-parquet' | 'spatialrgpt-bench' | 'synth-scenes'
    depth_path: Path | None = None
    rle: list[dict[str, Any]] | None = None
    category: str | None = None
    normalized_answer: Answer | None = None  # typed: str / int / float
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError(f'sample {self.id} has no question')

    @property
    def question(self) -> str:
        return self.turns[0].user

    @property
    def answer(self) -> str | None:
        """The free-form ground truth: the last assistant turn."""
        return self.turns[-1].assistant

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

        with Image.open(self.rgb_path) as image:
            return np.asarray(image.convert('RGB'))

    def load_depth(self) -> np.ndarray:
        """The depth image as stored (uint8 [H, W] for the warehouse data)."""
        from PIL import Image

        if self.depth_path is None:
            raise ValueError(f'sample {self.id} has no depth image')
        with Image.open(self.depth_path) as image:
            return np.asarray(image)
