"""Accuracy of the geometry toolkit on synthetic warehouse scenes, against their ground truth.

The toolkit sees what a robot's node sees: the 16-bit depth, the instance masks with class
labels, and the intrinsics (a bag's CameraInfo). The ground-truth 3D boxes and camera pose in
each scene JSON are read here, by the benchmark, only to score it.

    .venv/bin/smolrgpt synth --out /tmp/x --scenes 40 --seed 7 --size 640x360
    .venv/bin/python benchmarks/bench_geometry.py /tmp/x

Prints: centre errors per class, Acc@10 of the distances (the official metric: within 10%,
exactly 0 for a ground truth of 0) over every visible pair of each kind and over the dataset's
own distance questions, containment accuracy, and the time of one 1080p frame.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
import itertools
import json
from pathlib import Path
import statistics
import sys
import time

import numpy as np
from PIL import Image

from smolrgpt_core.geometry import (
    CameraModel,
    RegionGeometry,
    load_class_priors,
    measure_scene,
    relations,
)
from smolrgpt_core.masks import rle_decode

SPLITS = ('train', 'val', 'test')
PAIR_KINDS = (('pallet', 'pallet'), ('pallet', 'buffer'), ('transporter', 'pallet'))


@dataclass
class Truth:
    kind: str
    centre: np.ndarray  # camera frame
    rect: tuple[float, float, float, float]  # world floor rectangle (x0, z0, x1, z1)
    centre_world: np.ndarray


@dataclass
class Frame:
    name: str
    depth: np.ndarray
    instances: np.ndarray
    camera: CameraModel
    truth: dict[int, Truth]


def load_frames(root: Path) -> Iterator[Frame]:
    for split in SPLITS:
        for path in sorted((root / split / 'scenes').glob('*.json')):
            meta = json.loads(path.read_text(encoding='utf-8'))
            intr = meta['intrinsics']
            camera = CameraModel(
                intr['width'], intr['height'], intr['fx'], intr['fy'], intr['cx'], intr['cy']
            )
            pose = np.array(meta['world_from_camera'])
            rot, pos = pose[:3, :3], pose[:3, 3]
            truth = {}
            for obj in meta['objects']:
                world = np.array(obj['center_m'])
                if obj['floor_rect_m'] is not None:
                    rect = tuple(obj['floor_rect_m'])
                else:
                    lo, hi = obj['bbox_min_m'], obj['bbox_max_m']
                    rect = (lo[0], lo[2], hi[0], hi[2])
                truth[obj['instance_id']] = Truth(obj['kind'], (world - pos) @ rot, rect, world)
            stem = path.stem
            yield Frame(
                f'{split}/{stem}',
                np.array(Image.open(root / split / 'depth_mm' / f'{stem}.png')),
                np.array(Image.open(root / split / 'instances' / f'{stem}.png')),
                camera,
                truth,
            )


def gt_distance(a: Truth, b: Truth) -> float:
    """training/synth/scene.py::distance, on the stored boxes."""
    for pallet, buffer in ((a, b), (b, a)):
        if pallet.kind == 'pallet' and buffer.kind == 'buffer':
            x0, z0, x1, z1 = buffer.rect
            c = pallet.centre_world
            if x0 <= c[0] <= x1 and z0 <= c[2] <= z1:
                return 0.0
    return float(np.linalg.norm(a.centre - b.centre))


def acc10(pred: float, gt: float) -> bool:
    if gt == 0.0:
        return pred == 0.0
    return 0.9 * gt <= pred <= 1.1 * gt


def sensor_noise(
    depth_mm: np.ndarray, masks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The perturbation preset of shared/reference/geometry.md section 3: depth noise
    sigma(z) = 0.001 z + 0.0015 z^2, 5% random holes, holes along depth edges, millimetre
    quantisation, and each mask eroded or dilated by 1-3 px."""
    import cv2

    z = depth_mm.astype(np.float64) / 1000.0
    valid = depth_mm > 0
    noisy = z + rng.normal(size=z.shape) * (0.001 * z + 0.0015 * z * z)
    kernel = np.ones((3, 3), np.uint8)
    span = cv2.dilate(z.astype(np.float32), kernel) - cv2.erode(z.astype(np.float32), kernel)
    edge = span > 0.05 * np.maximum(z, 0.1)
    holes = (rng.random(z.shape) < 0.05) | (edge & (rng.random(z.shape) < 0.5)) | ~valid
    out = np.where(holes, 0, np.clip(np.rint(noisy * 1000.0), 1, 65535)).astype(np.uint16)
    moved = []
    for mask in masks:
        px = int(rng.integers(1, 4))
        k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
        m = mask.astype(np.uint8)
        m = cv2.dilate(m, k) if rng.random() < 0.5 else cv2.erode(m, k)
        moved.append(m.astype(bool) if m.any() else mask)  # a mask eroded away stays as it was
    return out, np.stack(moved) if moved else masks


def measure(
    frame: Frame, min_area: int, noise: np.random.Generator | None = None, **options
) -> dict[int, RegionGeometry]:
    ids, counts = np.unique(frame.instances, return_counts=True)
    ids = [int(i) for i, n in zip(ids, counts, strict=True) if i != 0 and n >= min_area]
    masks = frame.instances[None] == np.array(ids, dtype=np.uint8)[:, None, None]
    depth = frame.depth
    if noise is not None:
        depth, masks = sensor_noise(depth, masks, noise)
    labels = [frame.truth[i].kind for i in ids]
    scene = measure_scene(masks, depth, '16UC1', frame.camera, labels, **options)
    return dict(zip(ids, scene.regions, strict=True))


def questions(root: Path) -> dict[str, list[tuple[float, list[int]]]]:
    """The dataset's distance questions per frame: (answer, instance ids in mask order)."""
    out: dict[str, list[tuple[float, list[int]]]] = defaultdict(list)
    for split in ('train', 'val'):
        path = root / f'{split}.json'
        if not path.is_file():
            continue
        for record in json.loads(path.read_text(encoding='utf-8')):
            if record.get('category') != 'distance':
                continue
            stem = Path(record['image']).stem
            instances = np.array(Image.open(root / split / 'instances' / f'{stem}.png'))
            ids = []
            for rle in record['rle']:
                values = instances[rle_decode(rle)]
                ids.append(int(np.bincount(values).argmax()))
            out[f'{split}/{stem}'].append((float(record['normalized_answer']), ids))
    return out


def question_pair(ids: list[int], regions: dict[int, RegionGeometry]) -> tuple[int, int]:
    """Which two regions a question measures: the pair, or for three pallets the leftmost and
    rightmost as the toolkit orders them (the question names them so)."""
    if len(ids) == 2:
        return ids[0], ids[1]
    order = relations.order_left_to_right([regions[i] for i in ids]).value
    return ids[order[0]], ids[order[-1]]


def evaluate(
    root: Path, priors: bool, pixel_offset: float, noise_seed: int | None = None, **options
) -> dict[str, list]:
    """Per-measure lists over every frame of ``root``: centre errors, pair and question
    Acc@10, containment, ms. ``noise_seed``: apply ``sensor_noise`` first."""
    stats: dict[str, list] = defaultdict(list)
    asked = questions(root)
    options['pixel_offset'] = pixel_offset
    if priors:
        options['priors'] = load_class_priors()
    noise = None if noise_seed is None else np.random.default_rng(noise_seed)
    for frame in load_frames(root):
        min_area = max(40, frame.instances.size // 2500)
        start = time.perf_counter()
        regions = measure(frame, min_area, noise, **options)
        stats['ms'].append((time.perf_counter() - start) * 1000)
        for i, r in regions.items():
            t = frame.truth[i]
            if r.metric:
                stats[f'err/{t.kind}'].append(float(np.linalg.norm(np.array(r.centre) - t.centre)))
            else:
                stats[f'invalid/{t.kind}'].append(1)
        for ka, kb in PAIR_KINDS:
            a_ids = [i for i in regions if frame.truth[i].kind == ka]
            b_ids = [i for i in regions if frame.truth[i].kind == kb]
            pairs = (
                itertools.combinations(a_ids, 2) if ka == kb else itertools.product(a_ids, b_ids)
            )
            for ia, ib in pairs:
                ra, rb = regions[ia], regions[ib]
                gt = gt_distance(frame.truth[ia], frame.truth[ib])
                ok = ra.metric and rb.metric and acc10(relations.distance(ra, rb).value, gt)
                stats[f'pairs/{ka}-{kb}'].append(ok)
                if ka == 'pallet' and kb == 'buffer':
                    want = gt == 0.0
                    got = ra.metric and rb.metric and relations.inside(rb, ra).value
                    stats['inside'].append(got == want)
        for answer, ids in asked.get(frame.name, []):
            if not all(i in regions and regions[i].metric for i in ids):
                stats['questions'].append(False)
                continue
            ia, ib = question_pair(ids, regions)
            pred = round(relations.distance(regions[ia], regions[ib]).value, 2)
            stats['questions'].append(acc10(pred, answer))
    return stats


def time_1080p(root: Path, repeats: int = 10) -> tuple[float, float, int]:
    """CPU ms (best and median of ``repeats``, OpenCV on one thread) of measure_scene on the
    first frame upscaled to 1920x1080 (nearest), and its number of regions. The masks are
    made before the clock starts."""
    import cv2

    cv2.setNumThreads(1)
    frame = next(load_frames(root))
    scale = max(1, 1920 // frame.camera.width)
    depth = np.kron(frame.depth, np.ones((scale, scale), dtype=frame.depth.dtype))
    instances = np.kron(frame.instances, np.ones((scale, scale), dtype=frame.instances.dtype))
    h, w = depth.shape
    camera = frame.camera.scaled(w, h)
    ids, counts = np.unique(instances, return_counts=True)
    ids = [int(i) for i, n in zip(ids, counts, strict=True) if i and n >= instances.size // 2500]
    masks = instances[None] == np.array(ids, dtype=np.uint8)[:, None, None]
    labels = [frame.truth[i].kind for i in ids]
    measure_scene(masks, depth, '16UC1', camera, labels)  # warm-up (imports, allocations)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        measure_scene(masks, depth, '16UC1', camera, labels)
        times.append((time.process_time() - start) * 1000)
    return min(times), statistics.median(times), len(ids)


def report(stats: dict[str, list], title: str) -> None:
    print(f'\n## {title}')
    print('| measure | n | value |')
    print('|---|---:|---:|')
    for key in sorted(k for k in stats if k.startswith('err/')):
        errs = np.array(stats[key])
        print(
            f'| centre error {key[4:]} (median / p90, m) | {len(errs)} | '
            f'{np.median(errs):.3f} / {np.percentile(errs, 90):.3f} |'
        )
    for key in sorted(k for k in stats if k.startswith('invalid/')):
        print(f'| regions without 3D ({key[8:]}) | {len(stats[key])} | |')
    for key in sorted(k for k in stats if k.startswith('pairs/')):
        print(f'| distance Acc@10, all {key[6:]} pairs | {len(stats[key])} | '
              f'{100 * np.mean(stats[key]):.1f}% |')  # fmt: skip
    all_pairs = [v for k in stats if k.startswith('pairs/') for v in stats[k]]
    print(f'| distance Acc@10, all pairs | {len(all_pairs)} | {100 * np.mean(all_pairs):.1f}% |')
    if stats['questions']:
        q = stats['questions']
        print(f'| distance Acc@10, dataset questions | {len(q)} | {100 * np.mean(q):.1f}% |')
    if stats['inside']:
        print(
            f'| pallet-in-buffer accuracy | {len(stats["inside"])} | '
            f'{100 * np.mean(stats["inside"]):.1f}% |'
        )
    print(f'| ms per frame (median) | {len(stats["ms"])} | {statistics.median(stats["ms"]):.1f} |')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', type=Path, help='a `smolrgpt synth` output folder')
    parser.add_argument('--priors', action='store_true', help='also run with class priors')
    parser.add_argument(
        '--noise', action='store_true', help='also run with the sensor-noise preset'
    )
    parser.add_argument(
        '--erode-px', type=int, default=1, help='mask erosion (measure_scene; default 1)'
    )
    parser.add_argument(
        '--pixel-offset',
        type=float,
        default=0.5,
        help='the synthetic intrinsics put the first pixel centre at (0.5, 0.5) (default 0.5)',
    )
    args = parser.parse_args(argv)
    if not (args.root / 'train' / 'scenes').is_dir():
        print(f'{args.root} is not a `smolrgpt synth` output folder', file=sys.stderr)
        return 2
    runs = [(False, None, 'clean, no priors')]
    if args.priors:
        runs.append((True, None, 'clean, class priors'))
    if args.noise:
        runs.append((False, 0, 'sensor noise preset, no priors'))
        if args.priors:
            runs.append((True, 0, 'sensor noise preset, class priors'))
    for priors, noise, title in runs:
        options = {'erode_px': args.erode_px}
        report(evaluate(args.root, priors, args.pixel_offset, noise, **options), title)
    best, median, n = time_1080p(args.root)
    print(
        f'\n1920x1080 frame, {n} regions: {best:.1f} ms CPU best, {median:.1f} ms median '
        '(10 runs, one thread)'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
