"""Measure region masks in metric depth: points, floor, centres, footprints, tops.

Per region: the mask is eroded (so the "flying pixels" on depth edges drop), only pixels with
a depth reading count (``smolrgpt_core.depth`` owns that rule), at most ``max_points`` of them
are taken at an even stride, and a depth gate built from the ``trim`` percentiles drops what
lies far before or behind the bulk (mask bleed onto the background). The floor is fitted once
per frame (``floor.fit_floor``) from the 'buffer' regions, else the lowest band of pixels no
mask covers; every 3D quantity then comes from the floor frame (``centres``). Footprints turn
to the scene's layout grid where their own outline says little, and painted floor regions are
completed under what stands on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.geometry.camera import CameraModel
from smolrgpt_core.geometry.centres import FLOOR_CLASSES, estimate_object
from smolrgpt_core.geometry.floor import FloorFrame, FloorPlane, fit_floor
from smolrgpt_core.geometry.footprint import (
    Footprint,
    complete_floor_footprint,
    footprint_of,
    grid_angle,
)
from smolrgpt_core.geometry.pixels import (
    RegionPoints,
    convex_hull,
    floor_band_points,
    image_part,
    sample_region,
)
from smolrgpt_core.geometry.priors import ClassPriors
from smolrgpt_core.geometry.visibility import DepthView
from smolrgpt_core.limits import MAX_IMAGE_PIXELS, MAX_REGIONS

Vec3 = tuple[float, float, float]
MIN_FLOOR_POINTS = 200
MAX_POINTS_BOUND = 1_000_000
MIN_RISE_M = 0.01  # a surface just outside a floor region that rises this much, and
RISE_RATIO = 0.5  # at least this steeply, stands on the floor there
FLOOR_OCCLUDER_PX = 6  # how far outside a painted region's mask an occluder is looked for


@dataclass(frozen=True)
class RegionGeometry:
    """What was measured of one region. 3D fields are None unless ``valid``."""

    index: int  # position of the mask in the input
    label: str
    mask_area: int  # pixels in the mask as given
    mask_centroid: tuple[float, float] | None  # (u, v) pixels; None for an empty mask
    mask_bbox: tuple[int, int, int, int] | None  # (u0, v0, u1, v1), u1/v1 exclusive
    image_base: tuple[float, float] | None  # (u, v) where a standing object meets the floor
    image_hull: tuple[tuple[float, float], ...]  # convex hull (u, v); floor classes only
    truncated: bool  # the mask touches the image border (part of the object may be cut)
    n_valid: int  # depth points behind the 3D quantities
    valid: bool
    reason: str  # why the 3D quantities are missing; '' when valid
    points_centroid: Vec3 | None = None  # camera frame
    centre: Vec3 | None = None  # estimated object centre (dataset definition), camera frame
    centre_floor: Vec3 | None = None  # (x, height, z) in the floor frame
    extent_min: Vec3 | None = None  # robust box, in ``extent_frame``
    extent_max: Vec3 | None = None
    extent_frame: str = ''  # 'floor' | 'camera' | ''
    footprint: Footprint | None = None  # floor frame
    top_height: float | None = None  # metres above the floor
    prior_used: bool = False
    hidden_back: bool = False  # the top is unseen, so the far side of the footprint is too

    @property
    def metric(self) -> bool:
        return self.valid and self.centre is not None

    def describe(self) -> str:
        name = f'region {self.index} ({self.label})'
        return name if self.valid else f'{name}: {self.reason}'


@dataclass(frozen=True)
class SceneGeometry:
    regions: list[RegionGeometry]
    floor: FloorPlane | None
    floor_reason: str  # why there is no floor; '' when there is one
    camera: CameraModel | None


@dataclass
class _Sampled:
    """One region's image quantities and (when metric) its gated camera-frame points."""

    geometry: RegionGeometry
    points: RegionPoints | None
    floor_points: tuple[np.ndarray, np.ndarray] | None = None  # interior, boundary (floor)


def _check_inputs(
    masks: np.ndarray, depth: np.ndarray | None, labels: Sequence[str], camera: CameraModel | None
) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f'masks must have shape [M, H, W], got {list(masks.shape)}')
    if masks.dtype not in (np.bool_, np.uint8):
        raise ValueError(f'masks must be bool or uint8, got {masks.dtype}')
    if len(masks) > MAX_REGIONS:
        raise ValueError(f'{len(masks)} masks exceed the bound of {MAX_REGIONS} regions')
    if len(labels) != len(masks):
        raise ValueError(f'{len(masks)} masks but {len(labels)} labels')
    h, w = masks.shape[1:]
    if h * w > MAX_IMAGE_PIXELS:
        raise ValueError(f'masks of {w}x{h} exceed the bound of {MAX_IMAGE_PIXELS} pixels')
    if depth is not None and depth.shape != (h, w):
        raise ValueError(f'depth is {depth.shape[1]}x{depth.shape[0]} but masks are {w}x{h}')
    if camera is not None:
        problem = camera.check_frame(w, h)
        if problem:
            raise ValueError(problem)
    return masks


def _image_geometry(index: int, label: str, mask: np.ndarray) -> RegionGeometry:
    part = image_part(mask if mask.dtype == np.bool_ else mask != 0)
    if part is None:
        return RegionGeometry(
            index, label, 0, None, None, None, (), False, 0, False, 'the mask is empty'
        )
    hull: tuple[tuple[float, float], ...] = ()
    if label in FLOOR_CLASSES:
        hull = tuple((float(u), float(v)) for u, v in convex_hull(mask, part.bbox))
    return RegionGeometry(
        index, label, part.area, part.centroid, part.bbox, part.base, hull, part.truncated,
        0, False, '',
    )  # fmt: skip


def _fit_frame_floor(
    sampled: list[_Sampled],
    masks: np.ndarray,
    depth: np.ndarray,
    encoding: depth_codec.DepthEncoding,
    camera: CameraModel,
    pixel_offset: float,
    seed: int,
) -> tuple[FloorPlane | None, str]:
    """The floor from the painted floor regions, else from the lowest band of free pixels."""
    painted = [
        s.points.interior
        for s in sampled
        if s.points is not None and s.geometry.label in FLOOR_CLASSES
    ]
    if painted and sum(len(p) for p in painted) >= MIN_FLOOR_POINTS:
        plane = fit_floor(np.concatenate(painted), source='buffer', seed=seed)
        if plane is not None:
            return plane, ''
    band = floor_band_points(masks, depth, encoding, camera, pixel_offset)
    plane = fit_floor(band, source='background', seed=seed)
    if plane is None:
        return None, 'no floor plane was found in the buffer regions or the lowest image band'
    return plane, ''


def measure_scene(
    masks: np.ndarray,
    depth: np.ndarray | None,
    depth_encoding: str,
    camera: CameraModel | None,
    labels: Sequence[str],
    *,
    min_points: int = 50,
    erode_px: int = 1,
    max_points: int = 20000,
    trim: tuple[float, float] = (5.0, 95.0),
    regrow_px: int = 3,
    floor: FloorPlane | None = None,
    priors: ClassPriors | None = None,
    align_to_grid: bool = True,
    pixel_offset: float = 0.0,
    seed: int = 0,
) -> SceneGeometry:
    """Measure every region of one frame.

    ``masks`` [M, H, W] bool/uint8 (nonzero = in), ``depth`` [H, W] in ``depth_encoding``
    ('16UC1' mm, '32FC1' m; 'mono8' or ``depth``/``camera`` None: image quantities only),
    ``labels`` one class name per mask. ``regrow_px``: a standing region keeps only what is
    reached from its ``regrow_px``-deeper interior without a depth jump (0: off; mask spill
    onto the background goes). ``floor``: a known floor (else fitted). ``priors``:
    class-size priors to apply (``priors.load_class_priors``). ``align_to_grid``: let partly
    seen footprints take the scene's layout direction. ``pixel_offset``: added to pixel
    indices before back-projection (0 for OpenCV/ROS intrinsics, where (0, 0) is the centre
    of the first pixel; 0.5 for intrinsics that put it at (0.5, 0.5)).
    """
    if not (1 <= min_points <= max_points <= MAX_POINTS_BOUND):
        raise ValueError(
            f'need 1 <= min_points <= max_points <= {MAX_POINTS_BOUND}, got {min_points}, '
            f'{max_points}'
        )
    if not 0 <= erode_px <= 16:
        raise ValueError(f'erode_px must be within 0..16, got {erode_px}')
    if not 0 <= regrow_px <= 16:
        raise ValueError(f'regrow_px must be within 0..16, got {regrow_px}')
    if not 0.0 <= trim[0] < trim[1] <= 100.0:
        raise ValueError(f'trim must be two percentiles 0 <= lo < hi <= 100, got {trim}')
    labels = [str(label) for label in labels]
    masks = _check_inputs(masks, depth, labels, camera)
    image = [_image_geometry(i, label, masks[i]) for i, label in enumerate(labels)]
    encoding = depth_codec.encoding(depth_encoding)
    why_not = ''
    if depth is None or camera is None:
        why_not = 'no metric depth and camera model'
    elif not encoding.metric:
        why_not = f'{encoding.name} depth is not metric'
    elif depth.dtype != encoding.dtype:
        raise ValueError(f'{encoding.name} depth must be {encoding.dtype}, got {depth.dtype}')
    if why_not:
        regions = [replace(g, reason=g.reason or why_not) for g in image]
        return SceneGeometry(regions, None, why_not, camera)

    options = {
        'min_points': min_points,
        'erode_px': erode_px,
        'max_points': max_points,
        'trim': trim,
        'pixel_offset': pixel_offset,
        'regrow_px': regrow_px,
    }
    sampled = [_sample(g, m, depth, encoding, camera, options) for g, m in zip(image, masks)]
    floor_reason = ''
    if floor is None:
        floor, floor_reason = _fit_frame_floor(
            sampled, masks, depth, encoding, camera, pixel_offset, seed
        )
    if floor is None:
        return SceneGeometry([_camera_box(s) for s in sampled], None, floor_reason, camera)
    frame = floor.frame()
    for s in sampled:
        if s.points is not None:
            s.floor_points = (frame.to_floor(s.points.interior), frame.to_floor(s.points.boundary))
    grid = None
    if align_to_grid:
        outlines = [s.floor_points[1][:, [0, 2]] for s in sampled if s.floor_points is not None]
        grid = grid_angle([o for o in outlines if len(o) >= 3])
    view = DepthView(camera, depth, encoding, frame, pixel_offset)
    regions = [
        _estimate(s, floor, frame, priors, grid, view)
        if s.points is not None
        else _painted_on_floor(s.geometry, floor, camera, pixel_offset)
        for s in sampled
    ]
    return SceneGeometry(_complete_floor_regions(regions, sampled, frame), floor, '', camera)


def measure_regions(
    masks: np.ndarray,
    depth: np.ndarray | None,
    depth_encoding: str,
    camera: CameraModel | None,
    labels: Sequence[str],
    **options,
) -> list[RegionGeometry]:
    """``measure_scene(...).regions`` (same arguments)."""
    return measure_scene(masks, depth, depth_encoding, camera, labels, **options).regions


def _sample(g, mask, depth, encoding, camera, options) -> _Sampled:
    if g.mask_bbox is None:
        return _Sampled(g, None)
    if g.label in FLOOR_CLASSES:  # a painted region spills onto what stands on it, not behind
        # what stands on a painted zone may lie a few pixels off its mask (an eroded mask, the
        # readings a sensor drops along the object's depth edge): look farther for it
        options = {**options, 'regrow_px': 0, 'occluder_px': FLOOR_OCCLUDER_PX}
    points = sample_region(mask, g.mask_bbox, depth, encoding, camera, **options)
    if isinstance(points, str):
        return _Sampled(replace(g, reason=points), None)
    n = len(points.interior)
    centroid = tuple(float(c) for c in np.full(n, 1.0 / n) @ points.interior)  # fast mean
    return _Sampled(
        replace(g, n_valid=len(points.interior), valid=True, points_centroid=centroid), points
    )


def _camera_box(s: _Sampled) -> RegionGeometry:
    """No floor: the middle of the robust camera-frame box stands in for the centre."""
    if s.points is None:
        return s.geometry
    lo = np.percentile(s.points.interior, 0.5, axis=0)
    hi = np.percentile(s.points.interior, 99.5, axis=0)
    return replace(
        s.geometry,
        centre=tuple(float(c) for c in (lo + hi) / 2),
        extent_min=tuple(float(c) for c in lo),
        extent_max=tuple(float(c) for c in hi),
        extent_frame='camera',
    )


def _estimate(
    s: _Sampled,
    floor: FloorPlane,
    frame: FloorFrame,
    priors: ClassPriors | None,
    grid: float | None,
    view: DepthView,
) -> RegionGeometry:
    if s.points is None or s.floor_points is None:
        return s.geometry
    g = s.geometry
    estimate = estimate_object(
        s.floor_points[0],
        s.floor_points[1],
        s.points.hidden,
        g.label,
        floor.camera_height,
        priors.get(g.label) if priors is not None else None,
        grid,
        view,
    )
    return replace(
        g,
        centre=tuple(float(c) for c in frame.to_camera(np.array([estimate.centre_floor]))[0]),
        centre_floor=estimate.centre_floor,
        extent_min=estimate.extent_min,
        extent_max=estimate.extent_max,
        extent_frame='floor',
        footprint=estimate.footprint,
        top_height=estimate.top_height,
        prior_used=estimate.prior_used,
        hidden_back=estimate.hidden_back,
    )


def _painted_on_floor(
    g: RegionGeometry, floor: FloorPlane, camera: CameraModel, pixel_offset: float
) -> RegionGeometry:
    """A painted floor region with too few depth readings (holes, a far or thin zone): its
    mask's image hull cast onto the frame's floor plane. Paint lies on the floor, so the rays
    through its outline meet the plane where its edges are; no reading of its own is needed."""
    if g.label not in FLOOR_CLASSES or len(g.image_hull) < 3:
        return g
    uv = np.array(g.image_hull) + pixel_offset
    rays = camera.backproject(uv[:, 0], uv[:, 1], np.ones(len(uv)))  # [K, 3] at z = 1
    down = rays @ np.array(floor.normal)  # the floor is below: the ray's height falls
    ahead = down < -1e-6
    if ahead.sum() < 3:
        return g
    points = rays[ahead] * (floor.offset / -down[ahead])[:, None]
    frame = floor.frame()
    xz = frame.to_floor(points)[:, [0, 2]]
    fp = footprint_of(xz, trim=0.0)
    x, z = fp.centre
    centre = tuple(float(c) for c in frame.to_camera(np.array([[x, 0.0, z]]))[0])
    lo, hi = xz.min(axis=0), xz.max(axis=0)
    return replace(
        g,
        valid=True,
        reason='',
        centre=centre,
        centre_floor=(x, 0.0, z),
        extent_min=(float(lo[0]), 0.0, float(lo[1])),
        extent_max=(float(hi[0]), 0.0, float(hi[1])),
        extent_frame='floor',
        footprint=fp,
        top_height=0.0,
    )


def _complete_floor_regions(
    regions: list[RegionGeometry], sampled: list[_Sampled], frame: FloorFrame
) -> list[RegionGeometry]:
    """Extend each floor rectangle under the standing objects that hide part of it."""
    standing = [
        r.footprint for r in regions if r.footprint is not None and r.label not in FLOOR_CLASSES
    ]
    out = []
    for region, s in zip(regions, sampled, strict=True):
        if region.label not in FLOOR_CLASSES or region.footprint is None or s.points is None:
            out.append(region)
            continue
        edge = s.floor_points[1]
        probe = frame.to_floor(s.points.probe)
        # the floor goes on under anything standing just outside the painted edge: there the
        # surface rises (a face) rather than running on along the floor
        run = np.hypot(probe[:, 0] - edge[:, 0], probe[:, 2] - edge[:, 2])
        rises = probe[:, 1] > np.maximum(MIN_RISE_M, RISE_RATIO * run)  # NaN compares false
        fp = complete_floor_footprint(
            region.footprint, edge[:, [0, 2]], s.points.hidden | rises, standing
        )
        if fp is region.footprint:
            out.append(region)
            continue
        x, z = fp.centre
        centre = frame.to_camera(np.array([[x, 0.0, z]]))[0]
        out.append(
            replace(
                region,
                footprint=fp,
                centre_floor=(x, 0.0, z),
                centre=tuple(float(c) for c in centre),
            )
        )
    return out
