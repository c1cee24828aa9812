"""Warehouse dataset split (NVIDIA layout) -> frames for a rosbag2.

Questions are grouped by image. Every distinct mask of an image (the same RLE string may be
referenced by several questions) becomes one region with a stable id, so the bag carries one
RegionMaskArray per frame and each question names its regions by id, in ``<mask>`` order.
Depth is written as 16UC1 millimetres when the dataset has metric depth (the synthetic
generator's ``depth_mm/``), else as the dataset's 8-bit image (mono8).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from smolrgpt_ros.bags import BagFrame, Question

BASE_STAMP_NS = 1_700_000_000 * 1_000_000_000


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def frames_from_dataset(
    data_root: str | Path, split: str = 'val', rate_hz: float = 2.0, limit: int = 0
) -> Iterator[BagFrame]:
    """One BagFrame per image of the split (at most ``limit`` images when > 0)."""
    from training.data.image_groups import group_by_image
    from training.data.warehouse_json import WarehouseJsonReader

    if rate_hz <= 0:
        raise ValueError(f'rate must be > 0 Hz, got {rate_hz}')
    groups = [g for g in group_by_image(WarehouseJsonReader(data_root, split)) if g.rles]
    period_ns = round(1e9 / rate_hz)
    for index, group in enumerate(groups[:limit] if limit else groups):
        questions = [
            Question(
                id=sample.id,
                question=sample.question.replace('<image>', '').strip(),
                region_ids=ids,
                category=sample.category or '',
                answer=sample.answer or '',
                normalized_answer=''
                if sample.normalized_answer is None
                else str(sample.normalized_answer),
            )
            for sample, ids in zip(group.samples, group.region_ids)
            if ids
        ]
        rgb = _load(group.rgb_path)[..., :3]
        mm_path = group.rgb_path.parent.parent / 'depth_mm' / group.rgb_path.name
        depth = _load(mm_path).astype(np.uint16) if mm_path.is_file() else _load(group.depth_path)
        if depth.ndim == 3:
            depth = depth[..., 0]
        masks = group.masks()
        yield BagFrame(
            stamp_ns=BASE_STAMP_NS + index * period_ns,
            rgb=np.ascontiguousarray(rgb),
            depth=np.ascontiguousarray(depth),
            masks=masks,
            region_ids=list(range(len(masks))),
            labels=['region'] * len(masks),
            questions=questions,
        )
