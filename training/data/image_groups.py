"""Questions grouped by image, with each image's distinct masks as regions.

The warehouse and bench files list one question per record, each with its own RLE list, and
several questions usually refer to the same image (and often to the same masks). Running the
model per image lets one vision pass serve all of them, so the grouping dedupes identical RLEs
into one region per distinct mask: region ids are 0..M-1 in first-seen order, and each question
names its regions by id, in ``<mask>`` order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.data.samples import Sample


@dataclass
class ImageGroup:
    """The questions about one image and the distinct regions they refer to."""

    rgb_path: Path
    depth_path: Path | None
    samples: list[Sample] = field(default_factory=list)
    rles: list[dict[str, Any]] = field(default_factory=list)  # region id = index
    region_ids: list[list[int]] = field(default_factory=list)  # per sample, in <mask> order

    def masks(self) -> np.ndarray:
        """bool [M, H, W], one mask per region id."""
        from smolrgpt_core.masks import rles_decode

        return rles_decode(self.rles)


def rle_key(rle: dict[str, Any]) -> str:
    """Identity of a mask: its size and counts (uncompressed counts lists are stringified)."""
    counts = rle['counts']
    return f'{rle.get("size")}|{counts if isinstance(counts, str) else list(counts)}'


def group_by_image(samples: Iterable[Sample]) -> list[ImageGroup]:
    """Samples -> one group per image, in first-seen order; samples without regions are kept
    (with no region ids) so that every question gets an answer."""
    groups: OrderedDict[Path, ImageGroup] = OrderedDict()
    keys: dict[Path, dict[str, int]] = {}
    for sample in samples:
        group = groups.get(sample.rgb_path)
        if group is None:
            group = groups[sample.rgb_path] = ImageGroup(sample.rgb_path, sample.depth_path)
            keys[sample.rgb_path] = {}
        index = keys[sample.rgb_path]
        ids = []
        for rle in sample.rle or []:
            key = rle_key(rle)
            if key not in index:
                index[key] = len(group.rles)
                group.rles.append(rle)
            ids.append(index[key])
        group.samples.append(sample)
        group.region_ids.append(ids)
    return list(groups.values())
