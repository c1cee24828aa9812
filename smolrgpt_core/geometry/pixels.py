"""From one mask to pixels and points: image quantities, an interior sample, the boundary.

Everything works on the mask's bounding-box crop, so a small region in a 1080p frame costs
little. A region's pixels are its mask, eroded by ``erode_px`` (flying pixels at depth edges),
less whatever lies behind a depth jump from the object's deeper interior (a mask 1-3 px too
large spills onto the floor or wall behind the silhouette). The interior sample is an even
grid (stride ``s`` when the mask holds more than ``max_points`` pixels): deterministic and
spread over the whole region. The outline (at most MAX_BOUNDARY_POINTS pixels at an even
stride) gives the floor footprint, each point pushed out to the true silhouette and flagged
when the object may continue unseen past it: something nearer lies just outside (an
occluder), or the image ends.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.geometry.camera import CameraModel

NEIGHBOUR_PX = 2  # how far outside the mask an occluder is looked for
OCCLUDER_GAP_M = 0.15  # an outside pixel this much nearer (plus 2% of range) hides the object
OCCLUDER_GAP_REL = 0.02
JUMP_M = 0.05  # a neighbour farther than this (plus 4% of range) lies behind an edge
JUMP_REL = 0.04
NOISE_JUMPS = 5.0  # and never less than this many standard deviations of the depth noise
NOISE_ROW_STRIDE = 4
MAX_BOUNDARY_POINTS = 1000
FLOOR_BAND = 1 / 3  # the lowest third of the image: where a downward camera sees the floor
FLOOR_SAMPLES = 20000  # background pixels looked at for the floor (an even grid)


@dataclass(frozen=True)
class ImagePart:
    area: int
    centroid: tuple[float, float]  # (u, v)
    bbox: tuple[int, int, int, int]  # (u0, v0, u1, v1), exclusive ends
    base: tuple[float, float]  # (u, v) of the mask's lowest rows
    truncated: bool


@dataclass(frozen=True)
class RegionPoints:
    interior: np.ndarray  # [N, 3] camera frame, gated
    boundary: np.ndarray  # [K, 3] camera frame, gated
    hidden: np.ndarray  # [K] bool: the object may continue unseen past this boundary point
    probe: np.ndarray  # [K, 3] the surface just outside each boundary point (NaN: none)


def image_part(mask: np.ndarray) -> ImagePart | None:
    """Area, centroid, box and base point of a bool mask; None when it is empty."""
    import cv2

    h, w = mask.shape
    rows_any = np.flatnonzero(mask.any(axis=1))  # cheap over the frame; the rest uses the crop
    if not len(rows_any):
        return None
    v0, v1 = int(rows_any[0]), int(rows_any[-1]) + 1
    cols_any = np.flatnonzero(mask[v0:v1].any(axis=0))
    u0, u1 = int(cols_any[0]), int(cols_any[-1]) + 1
    band = np.ascontiguousarray(mask[v0:v1, u0:u1]).view(np.uint8)
    m = cv2.moments(band, binaryImage=True)
    area = m['m00']
    centroid = (m['m10'] / area + u0, m['m01'] / area + v0)
    # base: the lowest 5% of the mask's pixels (a downward camera sees the floor contact there)
    per_row = cv2.reduce(band, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    from_bottom = np.cumsum(per_row[::-1])
    first = max(0, len(per_row) - 1 - int(np.searchsorted(from_bottom, 0.05 * area)))
    low = cv2.moments(np.ascontiguousarray(band[first:]), binaryImage=True)
    base = (low['m10'] / low['m00'] + u0, low['m01'] / low['m00'] + v0 + first)
    truncated = u0 == 0 or v0 == 0 or u1 == w or v1 == h
    return ImagePart(round(area), centroid, (u0, v0, u1, v1), base, truncated)


def convex_hull(mask: np.ndarray, bbox: tuple[int, int, int, int]) -> np.ndarray:
    """[K, 2] (u, v) convex hull of a mask's pixels."""
    import cv2

    u0, v0, u1, v1 = bbox
    crop = np.ascontiguousarray(mask[v0:v1, u0:u1], dtype=np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    points = np.concatenate([c.reshape(-1, 2) for c in contours])
    return cv2.convexHull(points).reshape(-1, 2).astype(np.float64) + np.array([u0, v0])


def _erode(crop: np.ndarray, px: int) -> np.ndarray:
    """Erosion that treats everything outside the crop as outside the mask."""
    import cv2

    kernel = np.ones((2 * px + 1, 2 * px + 1), dtype=np.uint8)
    out = cv2.erode(crop.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out.view(bool)


def _gate(z: np.ndarray, trim: tuple[float, float]) -> tuple[float, float]:
    """Depth limits: the trim percentiles widened by half their span (+10 cm), so an object's
    true depth range stays and only far outliers (mask bleed onto the background) go."""
    n = len(z)
    k = [min(n - 1, max(0, round(p / 100 * (n - 1)))) for p in trim]
    lo, hi = np.partition(z, k)[k]
    margin = 0.5 * (hi - lo) + 0.1
    return float(lo - margin), float(hi + margin)


class _Crop:
    """The mask and depth of one region's window; depth is converted only where read."""

    def __init__(self, mask, depth, encoding, window: tuple[int, int, int, int]) -> None:
        u0, v0, u1, v1 = window
        self.u0, self.v0 = u0, v0
        crop = np.ascontiguousarray(mask[v0:v1, u0:u1])
        self.mask = crop if crop.dtype == np.bool_ else crop != 0
        self.raw = depth[v0:v1, u0:u1]
        self.encoding = encoding
        self.map = encoding.to_metres(self.raw)  # float32 [h, w], NaN = no reading

    def metres(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """float64 metres at (rows, cols) of the crop, NaN where there is no reading."""
        return self.map[rows, cols].astype(np.float64)


def _continuous(crop: _Crop, core: np.ndarray, px: int, min_points: int) -> np.ndarray:
    """``core`` without what lies behind a depth jump from the object: pixels farther than a
    core neighbour by more than a jump are cut out, and of the pieces left only those holding
    part of the ``px``-deeper interior stay. A mask that spills past the object's silhouette
    onto the floor or wall behind it loses the spill; thin parts joined without a jump stay."""
    import cv2

    seed = _erode(core, px)
    if np.count_nonzero(seed) < min_points:
        return core
    metres = crop.map
    valid = np.isfinite(metres)
    nearest = cv2.erode(np.where(core & valid, metres, np.inf), np.ones((3, 3), np.uint8))
    # per-pixel sensor noise, from second differences along rows (a plane's are ~0)
    rows = (core & valid)[::NOISE_ROW_STRIDE]  # every few rows are plenty for one number
    z = metres[::NOISE_ROW_STRIDE]
    triple = rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:]
    relative = np.abs(z[:, :-2] - 2 * z[:, 1:-1] + z[:, 2:])[triple] / z[:, 1:-1][triple]
    noise = 1.4826 * float(np.median(relative)) / math.sqrt(6.0) if len(relative) else 0.0
    rel = max(JUMP_REL, NOISE_JUMPS * noise)
    with np.errstate(over='ignore', invalid='ignore'):
        behind = valid & (metres > nearest * (1.0 + rel) + JUMP_M)
    keep = core & ~behind
    count, labels = cv2.connectedComponents(keep.view(np.uint8), connectivity=8)
    seeded = np.zeros(count, dtype=bool)
    seeded[labels[seed & keep]] = True
    seeded[0] = False  # the background
    return seeded[labels]


def _readings(
    crop: _Crop, core: np.ndarray, area: int, max_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and metres of the core's pixels with a reading, on an even grid."""
    stride = max(1, math.ceil(math.sqrt(area / max_points)))
    rows, cols = np.nonzero(core[::stride, ::stride])
    rows, cols = rows * stride, cols * stride
    z = crop.metres(rows, cols)
    ok = np.isfinite(z)
    return rows[ok], cols[ok], z[ok]


def sample_region(
    mask: np.ndarray,
    bbox: tuple[int, int, int, int],
    depth: np.ndarray,
    encoding: depth_codec.DepthEncoding,
    camera: CameraModel,
    *,
    min_points: int,
    erode_px: int,
    max_points: int,
    trim: tuple[float, float],
    pixel_offset: float,
    regrow_px: int = 0,
    occluder_px: int = NEIGHBOUR_PX,
) -> RegionPoints | str:
    """The gated points of one region, or a sentence saying why there are too few.
    ``occluder_px``: how far outside the mask an occluder is looked for."""
    h, w = mask.shape
    pad = erode_px + max(NEIGHBOUR_PX, occluder_px)
    u0, v0, u1, v1 = bbox
    window = (max(u0 - pad, 0), max(v0 - pad, 0), min(u1 + pad, w), min(v1 + pad, h))
    crop = _Crop(mask, depth, encoding, window)
    core = _erode(crop.mask, erode_px) if erode_px > 0 else crop.mask
    area = np.count_nonzero(core)
    if area < min_points:  # small or thin: the eroded core says too little
        core, area = crop.mask, np.count_nonzero(crop.mask)
    elif regrow_px > 0:
        core = _continuous(crop, core, regrow_px, min_points)
        area = np.count_nonzero(core)

    rows, cols, z = _readings(crop, core, area, max_points)
    if len(z) < min_points and core is not crop.mask:  # holes left the core too few readings
        core = crop.mask
        rows, cols, z = _readings(crop, core, np.count_nonzero(core), max_points)
    if len(z) > max_points:
        pick = np.linspace(0, len(z) - 1, max_points).astype(np.int64)
        rows, cols, z = rows[pick], cols[pick], z[pick]
    if len(z) < min_points:
        return f'{len(z)} valid depth points (at least {min_points} needed)'
    lo, hi = _gate(z, trim)
    inside = (z >= lo) & (z <= hi)
    if inside.sum() < min_points:
        return f'{int(inside.sum())} depth points after trimming (at least {min_points} needed)'
    du, dv = crop.u0 + pixel_offset, crop.v0 + pixel_offset
    interior = camera.backproject(cols[inside] + du, rows[inside] + dv, z[inside])
    # the outline of the part with readings: sensors lose pixels right at depth edges, and
    # the outline must not stop where the readings do (isolated holes are closed first)
    import cv2

    read = np.isfinite(crop.map).view(np.uint8)
    read = cv2.morphologyEx(read, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).view(bool)
    outline = core & read if np.count_nonzero(core & read) >= min_points else core
    boundary, hidden, probe = _boundary(
        crop, outline, (w, h), (lo, hi), erode_px, camera, pixel_offset, occluder_px
    )
    return RegionPoints(interior, boundary, hidden, probe)


_RING = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


def _boundary(
    crop: _Crop,
    core: np.ndarray,
    size: tuple[int, int],
    limits: tuple[float, float],
    erode_px: int,
    camera: CameraModel,
    pixel_offset: float,
    occluder_px: int = NEIGHBOUR_PX,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame points of the core's boundary pixels, each pushed out to the mask's true
    edge; whether the object may continue unseen there (a nearer occluder or the image end);
    and the point just outside (for a floor region, anything standing there hides it).

    A boundary pixel lies ``erode_px + 0.5`` px inside the silhouette; its inward neighbour on
    the same surface gives the surface's step per pixel, so the edge is extrapolated along it
    (a planar face is exact). Where the neighbour jumps in depth, the pixel stays as it is.
    Everything is gathered at the boundary pixels only: no work over the whole window.
    """
    (w, h), (lo, hi) = size, limits
    ch, cw = core.shape
    rows, cols = np.nonzero(core & ~_erode(core, 1))
    if len(rows) > MAX_BOUNDARY_POINTS:  # an even stride along the raster keeps every side
        pick = np.linspace(0, len(rows) - 1, MAX_BOUNDARY_POINTS).astype(np.int64)
        rows, cols = rows[pick], cols[pick]
    z = crop.metres(rows, cols)
    keep = np.isfinite(z) & (z >= lo) & (z <= hi)
    rows, cols, z = rows[keep], cols[keep], z[keep]
    if not len(z):
        return np.zeros((0, 3)), np.zeros(0, dtype=bool), np.zeros((0, 3))

    # the outward direction: towards the 8-neighbours outside the core
    nr = np.clip(rows[:, None] + _RING[:, 0], 0, ch - 1)  # [K, 8]
    nc = np.clip(cols[:, None] + _RING[:, 1], 0, cw - 1)
    outward = (~core[nr, nc]).astype(np.float64) @ _RING  # [K, 2] (dv, du)
    outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-9)
    step = np.rint(-outward).astype(np.int64)  # inward, one pixel

    # something nearer just outside the mask (along the outward direction) hides the object;
    # the probe is the nearest surface met out there (the farthest pixel when none is)
    hidden = np.zeros(len(z), dtype=bool)
    du, dv = crop.u0 + pixel_offset, crop.v0 + pixel_offset
    near_z = np.full(len(z), np.inf)
    near_r, near_c = rows.copy(), cols.copy()
    for dist in range(erode_px + 1, erode_px + occluder_px + 1):
        orow = np.rint(rows + dist * outward[:, 0]).astype(np.int64)
        ocol = np.rint(cols + dist * outward[:, 1]).astype(np.int64)
        inside = (orow >= 0) & (orow < ch) & (ocol >= 0) & (ocol < cw)
        orow, ocol = np.clip(orow, 0, ch - 1), np.clip(ocol, 0, cw - 1)
        oz = np.where(inside & ~crop.mask[orow, ocol], crop.metres(orow, ocol), np.nan)
        hidden |= oz < z - (OCCLUDER_GAP_M + OCCLUDER_GAP_REL * z)  # NaN compares false
        nearer = (oz < near_z) | ~np.isfinite(near_z)  # NaN compares false
        nearer &= np.isfinite(oz) | ~np.isfinite(near_z)
        near_z = np.where(nearer, np.where(np.isfinite(oz), oz, np.inf), near_z)
        near_r, near_c = np.where(nearer, orow, near_r), np.where(nearer, ocol, near_c)
    seen = np.where(np.isfinite(near_z), near_z, np.nan)
    probe = camera.backproject(near_c + du, near_r + dv, seen)  # NaN = no surface out there
    reach = erode_px + NEIGHBOUR_PX
    v, u = rows + crop.v0, cols + crop.u0
    hidden |= (v < reach) | (u < reach) | (v >= h - reach) | (u >= w - reach)

    qr = np.clip(rows + step[:, 0], 0, ch - 1)
    qc = np.clip(cols + step[:, 1], 0, cw - 1)
    qz = crop.metres(qr, qc)
    both = camera.backproject(  # the boundary pixels and their inward neighbours at once
        np.concatenate([cols, qc]) + du,
        np.concatenate([rows, qr]) + dv,
        np.concatenate([z, np.where(np.isfinite(qz), qz, z)]),
    )
    points, inner = both[: len(z)], both[len(z) :]
    delta = points - inner
    same_surface = (
        core[qr, qc]
        & np.isfinite(qz)
        & np.any(step != 0, axis=1)
        & (np.linalg.norm(delta, axis=1) <= 8.0 * z / camera.fx)
    )
    points[same_surface] += (erode_px + 0.5) * delta[same_surface]
    return points, hidden, probe


def floor_band_points(
    masks: np.ndarray,
    depth: np.ndarray,
    encoding: depth_codec.DepthEncoding,
    camera: CameraModel,
    pixel_offset: float,
    band: float = FLOOR_BAND,
    samples: int = FLOOR_SAMPLES,
) -> np.ndarray:
    """[N, 3] camera-frame points of the lowest ``band`` of the image that no mask covers, on
    an even grid of about ``samples`` pixels: where a downward-looking camera sees the floor."""
    h, w = depth.shape
    r0 = int(h * (1 - band))
    stride = max(1, math.ceil(math.sqrt((h - r0) * w / samples)))
    grid = (slice(r0, h, stride), slice(0, w, stride))
    values = depth[grid]
    free = encoding.valid(values)
    if len(masks):
        free &= ~masks[(slice(None), *grid)].any(axis=0)
    rows, cols = np.nonzero(free)
    z = encoding.to_metres(values[rows, cols]).astype(np.float64)
    return camera.backproject(cols * stride + pixel_offset, rows * stride + r0 + pixel_offset, z)
