"""Spatial relations between measured regions, as the warehouse data defines them.

* distance: centre to centre in metres, 0.0 when a pallet's centre stands over a buffer's
  footprint (``training/synth/scene.py::distance`` / ``in_rect_xz``);
* left / right and the extremes: camera-frame x of the centres; with no metric data, the image
  column of the mask centroids (what the competition's winner used);
* inside / count: a pallet's centre over the buffer's floor rectangle; with no metric data, the
  pallet's image base point inside the buffer mask's convex hull.

Every function returns a ``Relation``: the value plus its evidence (``margin``: how far the
answer is from flipping, in ``unit``), and ``ambiguous`` when that margin is small.
A relation that needs metres and has none raises ``NotMeasurable`` (a ValueError).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from smolrgpt_core.geometry.centres import FLOOR_CLASSES
from smolrgpt_core.geometry.regions import RegionGeometry

T = TypeVar('T')
MIN_GAP_M = 0.15  # a left/right or closest gap below this is called ambiguous
MIN_GAP_PX = 8.0  # the same for image columns
INSIDE_MARGIN_M = 0.1  # a centre this close to a buffer's edge is ambiguous
INSIDE_MARGIN_PX = 4.0


class NotMeasurable(ValueError):
    """The relation needs metric geometry a region lacks; the message says which and why."""


@dataclass(frozen=True)
class Relation(Generic[T]):
    value: T
    basis: str  # 'metric' (3D centres) or 'image' (2D mask fallback)
    margin: float  # distance from the answer flipping, in ``unit``; inf when nothing can flip
    unit: str  # 'm' or 'px'
    ambiguous: bool
    detail: str  # one sentence of evidence
    members: tuple[int, ...] = ()  # region indices the answer refers to, when a set


def _need_metric(*regions: RegionGeometry) -> None:
    for r in regions:
        if not r.metric:
            raise NotMeasurable(f'{r.describe()}; a metric answer needs depth and a camera model')


def _centre(r: RegionGeometry) -> np.ndarray:
    return np.array(r.centre)


def _pallet_buffer(a: RegionGeometry, b: RegionGeometry):
    if a.label == 'pallet' and b.label in FLOOR_CLASSES:
        return a, b
    if b.label == 'pallet' and a.label in FLOOR_CLASSES:
        return b, a
    return None


def _inside_metric(buffer: RegionGeometry, pallet: RegionGeometry) -> bool:
    return buffer.footprint is not None and pallet.centre_floor is not None


def inside(
    buffer: RegionGeometry, pallet: RegionGeometry, *, basis: str = 'auto'
) -> Relation[bool]:
    """Whether the pallet's centre stands over the buffer's floor rectangle. ``basis`` 'auto':
    metric when the buffer has a floor footprint and the pallet a floor centre, else the image
    fallback (the pallet's base point inside the buffer mask's hull); 'metric' / 'image' force
    one."""
    if basis not in ('auto', 'metric', 'image'):
        raise ValueError(f"basis must be 'auto', 'metric' or 'image', got {basis!r}")
    if basis == 'metric' and not _inside_metric(buffer, pallet):
        _need_metric(buffer, pallet)
        raise NotMeasurable(f'region {buffer.index} has no floor footprint (no floor was found)')
    if basis != 'image' and _inside_metric(buffer, pallet):
        x, _, z = pallet.centre_floor
        margin = buffer.footprint.signed_distance(x, z)
        value = margin >= 0.0
        return Relation(
            value,
            'metric',
            abs(margin),
            'm',
            abs(margin) < INSIDE_MARGIN_M,
            f'the centre of region {pallet.index} is {abs(margin):.2f} m '
            f'{"inside" if value else "outside"} the edge of region {buffer.index}',
        )
    if not buffer.image_hull or pallet.image_base is None:
        raise NotMeasurable(
            f'{buffer.describe()}; {pallet.describe()}: neither a floor footprint nor an '
            'image hull to test containment'
        )
    import cv2

    hull = np.array(buffer.image_hull, dtype=np.float32).reshape(-1, 1, 2)
    signed = float(cv2.pointPolygonTest(hull, tuple(map(float, pallet.image_base)), True))
    value = signed >= 0.0
    return Relation(
        value,
        'image',
        abs(signed),
        'px',
        abs(signed) < INSIDE_MARGIN_PX,
        f'the base of region {pallet.index} is {abs(signed):.0f} px '
        f'{"inside" if value else "outside"} the outline of region {buffer.index}',
    )


def distance(a: RegionGeometry, b: RegionGeometry) -> Relation[float]:
    """Metres between the centres; 0.0 when one is a pallet whose centre is inside the other,
    a buffer. ``margin`` for a pallet-buffer pair is the containment margin, else inf."""
    _need_metric(a, b)
    pair = _pallet_buffer(a, b)
    if pair is not None and pair[1].footprint is not None:
        contained = inside(pair[1], pair[0])
        if contained.value:
            return Relation(
                0.0, 'metric', contained.margin, 'm', contained.ambiguous, contained.detail
            )
    metres = float(np.linalg.norm(_centre(a) - _centre(b)))
    if pair is not None and pair[1].footprint is not None:
        return Relation(
            metres, 'metric', contained.margin, 'm', contained.ambiguous, contained.detail
        )
    return Relation(
        metres,
        'metric',
        float('inf'),
        'm',
        False,
        f'regions {a.index} and {b.index} are {metres:.2f} m apart, centre to centre',
    )


def _x_of(regions: Sequence[RegionGeometry]) -> tuple[list[float], str, str, float]:
    """Camera-frame x of the centres when every region has one, else mask-centroid columns."""
    if all(r.metric for r in regions):
        return [r.centre[0] for r in regions], 'metric', 'm', MIN_GAP_M
    if all(r.mask_centroid is not None for r in regions):
        return [r.mask_centroid[0] for r in regions], 'image', 'px', MIN_GAP_PX
    empty = [r for r in regions if r.mask_centroid is None]
    raise NotMeasurable(f'{empty[0].describe()}: no position to compare')


def is_left_of(a: RegionGeometry, b: RegionGeometry) -> Relation[bool]:
    """Whether ``a`` is left of ``b`` (smaller camera-frame x; image column as the fallback)."""
    (xa, xb), basis, unit, min_gap = _x_of([a, b])
    gap = abs(xb - xa)
    value = xa < xb
    return Relation(
        value,
        basis,
        gap,
        unit,
        gap < min_gap,
        f'region {a.index} is {gap:.2f} {unit} {"left" if value else "right"} of region {b.index}',
    )


def order_left_to_right(regions: Sequence[RegionGeometry]) -> Relation[tuple[int, ...]]:
    """Positions in ``regions`` sorted left to right; ``margin`` is the smallest neighbour gap."""
    if not regions:
        raise ValueError('no regions to order')
    xs, basis, unit, min_gap = _x_of(regions)
    order = tuple(int(i) for i in np.argsort(xs, kind='stable'))
    gaps = np.diff(np.array(xs)[list(order)])
    margin = float(gaps.min()) if len(gaps) else float('inf')
    return Relation(
        order,
        basis,
        margin,
        unit,
        margin < min_gap,
        f'regions left to right: {", ".join(str(regions[i].index) for i in order)}',
        tuple(regions[i].index for i in order),
    )


def _pick(regions: Sequence[RegionGeometry], rank: int, name: str) -> Relation[int]:
    """The region at ``rank`` (0 = leftmost) of the left-to-right order."""
    ordered = order_left_to_right(regions)
    xs, _, unit, min_gap = _x_of(regions)
    pos = ordered.value[rank]
    neighbours = [ordered.value[k] for k in (rank - 1, rank + 1) if 0 <= k < len(regions)]
    margin = min((abs(xs[pos] - xs[n]) for n in neighbours), default=float('inf'))
    return Relation(
        pos,
        ordered.basis,
        margin,
        unit,
        margin < min_gap,
        f'region {regions[pos].index} is the {name}, {margin:.2f} {unit} from the next',
        (regions[pos].index,),
    )


def leftmost(regions: Sequence[RegionGeometry]) -> Relation[int]:
    """Position in ``regions`` of the leftmost one."""
    return _pick(regions, 0, 'leftmost')


def rightmost(regions: Sequence[RegionGeometry]) -> Relation[int]:
    """Position in ``regions`` of the rightmost one."""
    return _pick(regions, len(regions) - 1, 'rightmost')


def middle(regions: Sequence[RegionGeometry]) -> Relation[int]:
    """Position of the middle one of an odd number of regions (even: ambiguous, the left one of
    the middle pair)."""
    relation = _pick(regions, (len(regions) - 1) // 2, 'middle')
    if len(regions) % 2 == 0:
        return Relation(
            relation.value,
            relation.basis,
            0.0,
            relation.unit,
            True,
            f'{len(regions)} regions have no single middle one',
            relation.members,
        )
    return relation


def closest(to: RegionGeometry, candidates: Sequence[RegionGeometry]) -> Relation[int]:
    """Position in ``candidates`` of the one nearest ``to`` (``distance``); ``margin`` is the
    runner-up's extra distance."""
    if not candidates:
        raise ValueError('no candidates to choose from')
    dists = [distance(to, c).value for c in candidates]
    order = np.argsort(dists, kind='stable')
    best = int(order[0])
    margin = float(dists[order[1]] - dists[best]) if len(order) > 1 else float('inf')
    return Relation(
        best,
        'metric',
        margin,
        'm',
        margin < MIN_GAP_M,
        f'region {candidates[best].index} is {dists[best]:.2f} m from region {to.index}, '
        f'{margin:.2f} m nearer than the next',
        (candidates[best].index,),
    )


def count_inside(buffer: RegionGeometry, pallets: Sequence[RegionGeometry]) -> Relation[int]:
    """How many ``pallets`` stand in ``buffer``; ``members`` are their region indices and
    ``margin`` the smallest containment margin (the pallet closest to flipping). Each pallet is
    tested on the best basis it has (``inside``'s 'auto'): one pallet without 3D does not send
    the others to the image fallback; ``basis`` is 'image' when any pallet needed it."""
    results = [inside(buffer, p) for p in pallets]  # each pallet on what it has: 3D or image
    members = tuple(p.index for p, r in zip(pallets, results, strict=True) if r.value)
    basis = 'metric' if all(r.basis == 'metric' for r in results) else 'image'
    # metres and pixels do not compare: the margin is the smallest of the weaker basis
    margin = min((r.margin for r in results if r.basis == basis), default=float('inf'))
    unit = 'm' if basis == 'metric' else 'px'
    return Relation(
        len(members),
        basis,
        margin,
        unit,
        any(r.ambiguous for r in results),
        f'{len(members)} of {len(pallets)} pallets stand in region {buffer.index}',
        members,
    )
