"""The forms regions arrive in, turned into the one the engine takes: full-frame uint8 masks.

* ``RegionMaskArray`` with full-frame masks: each mask is as large as the image;
* ``RegionMaskArray`` with masks cropped to ``bbox``: a mask of ``bbox.width x bbox.height``
  whose pixel (0, 0) lies at ``(bbox.x_offset, bbox.y_offset)``; outside the box is outside
  (each region may take either form; a mask as large as the image is full-frame);
* an instance-label ``Image`` (mono8, mono16 or 32SC1; 0 = background, any other value is the
  id of a region) with a ``RegionArray`` naming the regions (id == label value, class, score,
  bbox; only label pixels inside the box count, an all-zero box is the whole image).

The three give the same masks for the same regions, so the same answers. Every size is checked
from the header fields before an array is allocated; values are left as they arrive (the
engine refuses masks other than 0, 1 and 255). No rclpy import: tested without ROS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smolrgpt_core.inference.engine import EngineError
from smolrgpt_core.settings import FrameLimits
from smolrgpt_ros.image_conversion import ImageConversionError, imgmsg_to_numpy

MASK_ENCODINGS = ('mono8', '8UC1')
# instance-label encodings -> the largest region id they can hold
LABEL_ENCODINGS = {'mono8': 255, '8UC1': 255, 'mono16': 65535, '16UC1': 65535, '32SC1': 2**31 - 1}


def image_problem(msg: Any, what: str, limits: FrameLimits) -> str | None:
    width, height = int(msg.width), int(msg.height)
    if width == 0 or height == 0:
        return f'the {what} image is empty ({width}x{height})'
    if width * height > limits.max_image_pixels:
        return (
            f'the {what} image is {width}x{height}, above limits.max_image_pixels '
            f'{limits.max_image_pixels}'
        )
    if len(msg.data) > limits.max_frame_bytes:
        return f'the {what} image holds {len(msg.data)} bytes, above limits.max_frame_bytes'
    return None


def regions_problem(msg: Any, limits: FrameLimits) -> str | None:
    """Why a RegionMaskArray or RegionArray cannot belong to a frame, from its sizes alone."""
    if len(msg.regions) > limits.max_regions:
        return f'{len(msg.regions)} regions, above limits.max_regions {limits.max_regions}'
    total = 0
    for region in msg.regions:
        mask = getattr(region, 'mask', None)
        if mask is None:  # RegionArray: a box per region, the pixels are in the label image
            continue
        problem = image_problem(mask, f'mask of region {region.id}', limits)
        if problem:
            return problem
        total += len(mask.data)
    if total > limits.max_frame_bytes:
        return f'the masks hold {total} bytes, above limits.max_frame_bytes'
    return None


def _box(bbox: Any) -> tuple[int, int, int, int]:
    return int(bbox.x_offset), int(bbox.y_offset), int(bbox.width), int(bbox.height)


def _box_problem(what: str, bbox: Any, h: int, w: int) -> str | None:
    x, y, bw, bh = _box(bbox)
    if x + bw > w or y + bh > h:
        return f'the bbox of {what} (x {x}, y {y}, {bw}x{bh}) reaches outside the {w}x{h} image'
    return None


def expanded_problem(count: int, h: int, w: int, limits: FrameLimits) -> str | None:
    """The full-frame masks of ``count`` regions must fit the frame budget too (a cropped or
    instance form is small on the wire, but the engine takes full-frame masks)."""
    if count * h * w > limits.max_frame_bytes:
        return (
            f'{count} regions at {w}x{h} expand to {count * h * w} bytes of masks, above '
            f'limits.max_frame_bytes {limits.max_frame_bytes}'
        )
    return None


def masks_from_mask_array(msg: Any, h: int, w: int, limits: FrameLimits) -> np.ndarray:
    """RegionMaskArray (each mask full-frame or cropped to its bbox) -> uint8 [M, H, W]."""
    placements = []
    for region in msg.regions:
        mask = region.mask
        mh, mw = int(mask.height), int(mask.width)
        if (mh, mw) == (h, w):  # full frame: the bbox is informative only
            placements.append((0, 0))
        elif (mh, mw) == (int(region.bbox.height), int(region.bbox.width)):
            x, y, _, _ = _box(region.bbox)
            problem = _box_problem(f'region {region.id}', region.bbox, h, w)
            if problem:
                raise EngineError(problem)
            placements.append((x, y))
        else:
            raise EngineError(
                f'size mismatch: mask of region {region.id} is [{mh}, {mw}], neither the '
                f'image [{h}, {w}] nor its bbox [{region.bbox.height}, {region.bbox.width}]'
            )
        if mask.encoding not in MASK_ENCODINGS:
            raise EngineError(f'mask of region {region.id} must be mono8, got {mask.encoding!r}')
    problem = expanded_problem(len(msg.regions), h, w, limits)
    if problem:
        raise EngineError(problem)
    masks = np.zeros((len(msg.regions), h, w), dtype=np.uint8)
    try:
        for k, (region, (x, y)) in enumerate(zip(msg.regions, placements)):
            crop = imgmsg_to_numpy(region.mask)
            masks[k, y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    except ImageConversionError as exc:
        raise EngineError(str(exc)) from exc
    return masks


def instances_problem(msg: Any, limits: FrameLimits) -> str | None:
    """Why an instance-label image cannot belong to a frame (sizes and encoding only)."""
    problem = image_problem(msg, 'instance-label', limits)
    if problem:
        return problem
    if msg.encoding not in LABEL_ENCODINGS:
        return f'the instance-label image must be mono8, mono16 or 32SC1, got {msg.encoding!r}'
    return None


def masks_from_instances(
    labels_msg: Any, regions_msg: Any, h: int, w: int, limits: FrameLimits
) -> np.ndarray:
    """Instance-label image + RegionArray -> uint8 [M, H, W] (255 inside, 0 outside)."""
    problem = instances_problem(labels_msg, limits)
    if problem:
        raise EngineError(problem)
    if (int(labels_msg.height), int(labels_msg.width)) != (h, w):
        raise EngineError(
            f'size mismatch: the instance-label image is [{labels_msg.height}, '
            f'{labels_msg.width}], rgb is [{h}, {w}]'
        )
    largest = LABEL_ENCODINGS[labels_msg.encoding]
    for region in regions_msg.regions:
        if not 1 <= int(region.id) <= largest:
            raise EngineError(
                f'region id {region.id} cannot be a {labels_msg.encoding} label '
                f'(1..{largest}; 0 is background)'
            )
        problem = _box_problem(f'region {region.id}', region.bbox, h, w)
        if problem:
            raise EngineError(problem)
    problem = expanded_problem(len(regions_msg.regions), h, w, limits)
    if problem:
        raise EngineError(problem)
    try:
        labels = imgmsg_to_numpy(labels_msg)
    except ImageConversionError as exc:
        raise EngineError(str(exc)) from exc
    masks = np.zeros((len(regions_msg.regions), h, w), dtype=np.uint8)
    for k, region in enumerate(regions_msg.regions):
        x, y, bw, bh = _box(region.bbox)
        if bw == 0 or bh == 0:  # sensor_msgs/RegionOfInterest: all zero = the whole image
            x, y, bw, bh = 0, 0, w, h
        inside = labels[y : y + bh, x : x + bw] == int(region.id)
        masks[k, y : y + bh, x : x + bw] = inside.view(np.uint8) * np.uint8(255)
    return masks


# numpy masks -> messages (publishers, bags, benchmarks, tests) ---------------------------------
MASK_FORMS = ('cropped', 'full', 'instances')


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, width, height) of a mask's nonzero pixels; (0, 0, 0, 0) for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def _label_encoding(largest_id: int) -> tuple[str, type]:
    if largest_id <= 255:
        return 'mono8', np.uint8
    if largest_id <= 65535:
        return 'mono16', np.uint16
    return '32SC1', np.int32


def encode_regions(
    form: str,
    masks: np.ndarray,
    ids: list[int],
    labels: list[str],
    *,
    types: Any,
    image: Any,
    header: Any,
    scores: list[float] | None = None,
) -> tuple[Any, ...]:
    """Masks [M, H, W] (bool, or 0/1/255) in one of ``MASK_FORMS``: ``(RegionMaskArray,)`` for
    cropped and full, ``(label Image, RegionArray)`` for instances.

    ``types`` has RegionMask, RegionMaskArray, Region, RegionArray and RegionOfInterest (rclpy
    or rosbags classes), ``image(array, encoding)`` makes a sensor_msgs/Image. The instances
    form holds one region per pixel: overlapping masks, or a region id of 0, are a ValueError."""
    if form not in MASK_FORMS:
        raise ValueError(f'mask form must be one of {", ".join(MASK_FORMS)}, got {form!r}')
    inside = masks != 0  # [M, H, W]
    scores = scores if scores is not None else [1.0] * len(ids)
    boxes = [bbox_of(m) for m in inside]

    def roi(box: tuple[int, int, int, int]) -> Any:
        x, y, w, h = box
        return types.RegionOfInterest(x_offset=x, y_offset=y, height=h, width=w, do_rectify=False)

    if form == 'instances':
        if len(ids) and min(ids) < 1:
            raise ValueError('the instances form needs region ids >= 1 (0 is background)')
        if inside.sum(axis=0).max(initial=0) > 1:
            a, b = np.flatnonzero(inside[:, inside.sum(axis=0) > 1].any(axis=1))[:2]
            raise ValueError(
                f'regions {ids[a]} and {ids[b]} overlap: an instance-label image holds one '
                'region per pixel (use the cropped form)'
            )
        encoding, dtype = _label_encoding(max(ids, default=0))
        label_image = np.zeros(masks.shape[1:], dtype=dtype)
        for rid, m in zip(ids, inside):
            label_image[m] = rid
        regions = [
            types.Region(id=int(rid), label=label, score=float(score), bbox=roi(box))
            for rid, label, score, box in zip(ids, labels, scores, boxes)
        ]
        return image(label_image, encoding), types.RegionArray(header=header, regions=regions)
    entries = []
    for rid, label, score, m, box in zip(ids, labels, scores, inside, boxes):
        if form == 'full':
            pixels = m
        else:
            x, y, w, h = box
            if w == 0:  # an empty region keeps a valid (1x1, all outside) cropped mask
                box, x, y, w, h = (0, 0, 1, 1), 0, 0, 1, 1
            pixels = m[y : y + h, x : x + w]
        entries.append(
            types.RegionMask(
                id=int(rid),
                label=label,
                score=float(score),
                bbox=roi(box),
                mask=image(pixels.astype(np.uint8) * np.uint8(255), 'mono8'),
            )
        )
    return (types.RegionMaskArray(header=header, regions=entries),)
