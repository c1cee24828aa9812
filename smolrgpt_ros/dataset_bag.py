"""Warehouse dataset split (NVIDIA layout) -> frames for a rosbag2.

Questions are grouped by image. Every distinct mask of an image (the same RLE string may be
referenced by several questions) becomes one region with a stable id, so the bag carries one
RegionMaskArray per frame and each question names its regions by id, in ``<mask>`` order.
Depth is written as 16UC1 millimetres when the dataset has metric depth (the synthetic
generator's ``depth_mm/``), else as the dataset's 8-bit image (mono8).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from smolrgpt_core.masks import rle_decode
from smolrgpt_ros.bags import BagFrame, Question

BASE_STAMP_NS = 1_700_000_000 * 1_000_000_000


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def frames_from_dataset(data_root: str | Path, split: str = 'val', rate_hz: float = 2.0,
                        limit: int = 0) -> Iterator[BagFrame]:
    """One BagFrame per image of the split (at most ``limit`` images when > 0)."""
    from training.data.warehouse_json import WarehouseJsonReader

    if rate_hz <= 0:
        raise ValueError(f'rate must be > 0 Hz, got {rate_hz}')
    reader = WarehouseJsonReader(data_root, split)
    by_image: OrderedDict[Path, list] = OrderedDict()
    for sample in reader:
        if sample.rgb_path is None or not sample.rle:
            continue
        by_image.setdefault(sample.rgb_path, []).append(sample)
    period_ns = round(1e9 / rate_hz)
    for index, (rgb_path, samples) in enumerate(by_image.items()):
        if limit and index >= limit:
            break
        regions: OrderedDict[str, int] = OrderedDict()  # RLE counts -> region id
        rles = {}
        questions = []
        for sample in samples:
            ids = []
            for rle in sample.rle:
                key = rle['counts'] if isinstance(rle['counts'], str) else str(rle['counts'])
                if key not in regions:
                    regions[key] = len(regions)
                    rles[key] = rle
                ids.append(regions[key])
            questions.append(Question(
                id=sample.id, question=sample.question.replace('<image>', '').strip(),
                region_ids=ids, category=sample.category or '', answer=sample.answer or '',
                normalized_answer='' if sample.normalized_answer is None
                else str(sample.normalized_answer)))
        rgb = _load(rgb_path)[..., :3]
        mm_path = rgb_path.parent.parent / 'depth_mm' / rgb_path.name
        depth = _load(mm_path).astype(np.uint16) if mm_path.is_file() \
            else _load(samples[0].depth_path)
        if depth.ndim == 3:
            depth = depth[..., 0]
        masks = np.stack([rle_decode(rles[k]) for k in regions])
        yield BagFrame(
            stamp_ns=BASE_STAMP_NS + index * period_ns, rgb=np.ascontiguousarray(rgb),
            depth=np.ascontiguousarray(depth), masks=masks, region_ids=list(regions.values()),
            labels=['region'] * len(regions), questions=questions)
