"""Warehouse dataset split (NVIDIA layout) -> rosbag2 frames; ``smolrgpt bag from-dataset``.

Questions are grouped by image. Every distinct mask of an image (the same RLE string may be
referenced by several questions) becomes one region with a stable id, so the bag carries one
RegionMaskArray per frame and each question names its regions by id, in ``<mask>`` order.
Depth is written as 16UC1 millimetres when the dataset has metric depth (the synthetic
generator's ``depth_mm/``), else as the dataset's 8-bit image (mono8).

Training code, not robot code: it reads datasets with ``training.data``. The bag format itself
is ``smolrgpt_ros.bags`` (imported inside the functions, so ``import training`` needs no ROS
adapter and ``rosbags`` only when a bag is written).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
import json
from pathlib import Path
import shutil
from typing import TYPE_CHECKING

import numpy as np

from training.data.sensors import scene_intrinsics, sensor_depth
from training.perturb import PRESETS, Perturbation, frame_rng, perturb_masks

if TYPE_CHECKING:
    from smolrgpt_ros.bags import BagFrame
    from training.data.image_groups import ImageGroup

HELP = 'write rosbag2 files from a dataset split (RGB, depth, region masks, questions)'
BASE_STAMP_NS = 1_700_000_000 * 1_000_000_000


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.array(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # SyntaxError is what PIL raises for a broken PNG chunk
        raise ValueError(f'{path}: not a readable image ({exc})') from exc


def frames_from_dataset(
    data_root: str | Path,
    split: str = 'val',
    rate_hz: float = 2.0,
    limit: int = 0,
    perturb: str = 'none',
    perturb_seed: int = 0,
) -> Iterator[BagFrame]:
    """One BagFrame per image of the split (at most ``limit`` images when > 0): RGB, metric
    depth where the dataset has it, the masks and the intrinsics (``training.data.sensors``),
    perturbed like a real sensor with ``perturb='realistic'``.

    The arguments and the split file are checked now, before a bag is opened; images are read
    as the frames are consumed.
    """
    from training.data.image_groups import group_by_image
    from training.data.warehouse_json import WarehouseJsonReader

    if not rate_hz > 0:
        raise ValueError(f'rate must be > 0 Hz, got {rate_hz}')
    if limit < 0:
        raise ValueError(f'limit must be >= 0 (0 = all frames), got {limit}')
    perturbation = Perturbation.preset(perturb)
    reader = WarehouseJsonReader(data_root, split)
    try:
        groups = [g for g in group_by_image(reader) if g.rles]
    except UnicodeDecodeError as exc:
        raise ValueError(f'{reader.annotation_path}: not UTF-8 text') from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f'{reader.annotation_path}: not a JSON file ({exc})') from exc
    return _frames(
        groups[:limit] if limit else groups, round(1e9 / rate_hz), perturbation, perturb_seed
    )


def _frames(
    groups: list[ImageGroup],
    period_ns: int,
    perturbation: Perturbation | None,
    perturb_seed: int,
) -> Iterator[BagFrame]:
    from smolrgpt_ros.bags import BagFrame, Question

    for index, group in enumerate(groups):
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
        rng = frame_rng(perturb_seed, index)
        depth, _ = sensor_depth(group.rgb_path, group.depth_path, rgb.shape[:2], perturbation, rng)
        masks = group.masks()
        if perturbation is not None:
            masks = perturb_masks(masks, perturbation, rng)
        yield BagFrame(
            intrinsics=scene_intrinsics(group.rgb_path),
            stamp_ns=BASE_STAMP_NS + index * period_ns,
            rgb=np.ascontiguousarray(rgb),
            depth=np.ascontiguousarray(depth),
            masks=masks,
            region_ids=list(range(len(masks))),
            labels=['region'] * len(masks),
            questions=questions,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='bag_command', metavar='ACTION', required=True)
    make = sub.add_parser(
        'from-dataset',
        help='warehouse split (NVIDIA layout) -> rosbag2',
        description='warehouse split (NVIDIA layout) -> rosbag2',
    )
    make.add_argument('--data-root', required=True, help='folder with train/val/test.json')
    make.add_argument('--split', default='val')
    make.add_argument('--out', required=True, help='new bag directory')
    make.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    make.add_argument('--rate', type=float, default=2.0, help='frames per second of bag time')
    make.add_argument('--limit', type=int, default=0, help='at most this many frames (0 = all)')
    make.add_argument(
        '--perturb',
        choices=PRESETS,
        default='none',
        help='realistic: range-dependent depth noise, holes, mask erosion/dilation, missed '
        'detections (training.perturb)',
    )
    make.add_argument('--perturb-seed', type=int, default=0)
    make.add_argument(
        '--mask-form',
        choices=('cropped', 'full', 'instances'),
        default='cropped',
        help='regions as masks cropped to their bbox (compact, the default), full-frame masks '
        '(the 0.2 form) or an instance-label image + RegionArray (replay: regions.form '
        'instances)',
    )


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from smolrgpt_ros.bags import BagError, write_bag

    out = Path(args.out)
    existed = out.exists()
    try:
        frames = frames_from_dataset(
            args.data_root, args.split, args.rate, args.limit, args.perturb, args.perturb_seed
        )
        count = write_bag(out, frames, storage=args.storage, mask_form=args.mask_form)
    except BaseException as exc:
        if not existed and out.is_dir():  # a half-written bag would block the rerun
            shutil.rmtree(out)
        if isinstance(exc, (BagError, FileNotFoundError, ValueError)):
            raise CommandError(str(exc)) from exc
        raise
    print(
        f'wrote {count} frames from {args.data_root} ({args.split}) to {args.out} '
        f'({args.storage}, {args.mask_form} masks)'
    )
    return 0
