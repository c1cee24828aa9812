"""Rectangles on the floor: fitting them, finding their unseen sides, growing, completing.

All coordinates are floor-frame (x, z) metres, with the camera above the origin. A side of a
region's footprint is *hidden* when a good share of the region's boundary points near it are
hidden (an occluder lies just outside them, or the image ends there): the region may go on
unseen past it. Seen sides are where the object really ends.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

EDGE_TRIM = 0.25  # percent of boundary points a footprint side may leave outside
END_TOLERANCE_M = 0.05  # the least band of boundary points that belong to a side
HIDDEN_SHARE = 0.25  # this share of a side's boundary points hidden: the side may go on
MIN_SIDE_POINTS = 5  # fewer boundary points than this near a side say nothing about it
OVERLAP_TOLERANCE_M = 0.1  # objects this close to a floor rectangle stand on it
GRID_SNAP_RATIO = 1.15  # a footprint takes the scene's grid angle if its area grows less
HIDDEN_SNAP_RATIO = 1.6  # the same for a footprint with a hidden side


@dataclass(frozen=True)
class Footprint:
    """A rotated rectangle on the floor."""

    centre: tuple[float, float]
    axes: tuple[tuple[float, float], tuple[float, float]]  # unit directions of the two sides
    size: tuple[float, float]  # side lengths along ``axes``

    @property
    def corners(self) -> np.ndarray:
        """[4, 2] corners (x, z), going round the rectangle."""
        c, (a, b), (la, lb) = np.array(self.centre), np.array(self.axes), self.size
        signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))
        return np.array([c + sa * la / 2 * a + sb * lb / 2 * b for sa, sb in signs])

    @property
    def angle_deg(self) -> float:
        """Direction of the first side, degrees from the floor's x axis, in [0, 90)."""
        return math.degrees(math.atan2(self.axes[0][1], self.axes[0][0])) % 90.0

    def signed_distance(self, x: float, z: float) -> float:
        """Metres from (x, z) to the rectangle's boundary: positive inside, negative outside."""
        return float(self.signed_distances(np.array([[x, z]], dtype=np.float64))[0])

    def signed_distances(self, xz: np.ndarray) -> np.ndarray:
        """[N] signed distances of [N, 2] floor points (positive inside)."""
        q = np.asarray(xz, dtype=np.float64) - np.array(self.centre)
        local = np.abs(q @ np.array(self.axes).T) - np.array(self.size) / 2  # [N, 2]
        outside = np.linalg.norm(np.maximum(local, 0.0), axis=1)
        inside = np.minimum(local.max(axis=1), 0.0)
        return -(outside + inside)

    def contains(self, x: float, z: float) -> bool:
        """The dataset's rule (``in_rect_xz``): boundary points count as inside."""
        return self.signed_distance(x, z) >= 0.0


def quantiles(values: np.ndarray, percents: tuple[float, ...]) -> np.ndarray:
    """Percentiles by partition (nearest rank) along axis 0: cheaper than np.percentile."""
    n = len(values)
    k = [min(n - 1, max(0, round(p / 100 * (n - 1)))) for p in percents]
    return np.partition(values, k, axis=0)[k]


def _rectangle_at(xz: np.ndarray, angle: float, trim: float) -> Footprint:
    t = math.radians(angle)
    axes = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    lo, hi = quantiles(xz @ axes.T, (trim, 100.0 - trim))  # [2] each
    centre = ((lo + hi) / 2) @ axes
    size = hi - lo
    return Footprint(
        (float(centre[0]), float(centre[1])),
        (tuple(axes[0].tolist()), tuple(axes[1].tolist())),
        (float(size[0]), float(size[1])),
    )


def min_area_angle(xz: np.ndarray) -> float:
    """Degrees of the minimum-area rectangle around [N, 2] points."""
    import cv2

    return float(cv2.minAreaRect(xz.astype(np.float32))[2])


def footprint_of(
    xz: np.ndarray,
    hidden: np.ndarray | None = None,
    *,
    grid_angle: float | None = None,
    trim: float = EDGE_TRIM,
) -> Footprint:
    """The rectangle around [N, 2] floor points: the orientation of their minimum-area
    rectangle, each side at the ``trim`` / 100 - ``trim`` percentile of the points along it
    (stray points do not stretch it). With ``grid_angle`` (the scene's layout direction), the
    rectangle turns to it when that costs less than GRID_SNAP_RATIO times the area, or
    HIDDEN_SNAP_RATIO when ``hidden`` ([N] bool) says a side is hidden: a partly seen region's
    own outline says little about its direction."""
    angle = min_area_angle(xz)
    own = _rectangle_at(xz, angle, trim)
    if grid_angle is None or abs((angle - grid_angle + 45.0) % 90.0 - 45.0) < 0.5:
        return own
    aligned = _rectangle_at(xz, grid_angle, trim)
    growth = aligned.size[0] * aligned.size[1] / max(own.size[0] * own.size[1], 1e-6)
    if growth <= GRID_SNAP_RATIO:
        return aligned
    partly_hidden = (
        growth <= HIDDEN_SNAP_RATIO
        and hidden is not None
        and hidden_share(own, xz, hidden).max() >= HIDDEN_SHARE
    )
    return aligned if partly_hidden else own


def grid_angle(outlines: list[np.ndarray]) -> float | None:
    """The scene's layout direction, degrees in [0, 90): warehouses put racks, painted zones
    and pallets on one grid. The mean of the regions' own rectangle angles (modulo 90, as a
    circular mean of 4x the angle), each weighted by its outline's point count."""
    if not outlines:
        return None
    weights = np.array([len(o) for o in outlines], dtype=np.float64)
    angles = np.radians([4.0 * min_area_angle(o) for o in outlines])
    s, c = float(weights @ np.sin(angles)), float(weights @ np.cos(angles))
    if math.hypot(s, c) < 0.3 * weights.sum():  # the regions disagree: no grid
        return None
    return math.degrees(math.atan2(s, c)) / 4.0 % 90.0


def hidden_share(fp: Footprint, xz: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """float [2 axes, 2 sides (low, high)]: the share of boundary points near each side that
    are hidden. "Near" is a band of 10% of the side (at least END_TOLERANCE_M), so ragged
    edges count; a side with no boundary point near it counts as fully hidden."""
    along = (xz - np.array(fp.centre)) @ np.array(fp.axes).T  # [N, 2]
    half = np.array(fp.size) / 2
    out = np.ones((2, 2))
    for k in range(2):
        band = max(END_TOLERANCE_M, 0.1 * fp.size[k])
        for end, sign in ((0, -1.0), (1, 1.0)):
            near = np.abs(along[:, k] - sign * half[k]) <= band
            if near.sum() >= MIN_SIDE_POINTS:
                out[k, end] = float(hidden[near].mean())
    return out


def hidden_sides(fp: Footprint, xz: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """bool [2 axes, 2 sides (low, high)]: sides the region may continue past unseen."""
    return hidden_share(fp, xz, hidden) >= HIDDEN_SHARE


def far_side(fp: Footprint) -> np.ndarray:
    """float [2 axes, 2 sides]: 1 at the side facing away from the camera (at 0, 0) of the
    axis that runs along the line of sight (within 45 degrees), else 0."""
    out = np.zeros((2, 2))
    centre = np.array(fp.centre)
    sight = centre / max(float(np.linalg.norm(centre)), 1e-9)
    along = np.array(fp.axes) @ sight  # [2] cosines
    k = int(np.argmax(np.abs(along)))
    if abs(along[k]) >= math.cos(math.radians(45.0)):
        out[k, 1 if along[k] > 0 else 0] = 1.0
    return out


def grow(fp: Footprint, prior: tuple[float, float], share: np.ndarray) -> tuple[Footprint, bool]:
    """Grow the sides to the prior's (long, short) where the footprint may go on unseen
    (``share`` [2, 2]: how hidden each side is; below HIDDEN_SHARE it is seen); never shrink.
    The missing length goes to the open sides in proportion to their share. The prior's long
    side goes along the axis that needs the least growth past seen sides (the measured long
    side when nothing tells them apart). Returns (footprint, grown)."""
    size = np.array(fp.size)
    weight = np.where(share >= HIDDEN_SHARE, share, 0.0)  # [2, 2]
    movable = weight.sum(axis=1) > 0

    def cost(assign: tuple[int, int]) -> float:
        missing = np.maximum(np.array([prior[assign[0]], prior[assign[1]]]) - size, 0.0)
        return float((missing * ~movable).sum())

    long_first = (0, 1) if size[0] >= size[1] else (1, 0)
    swapped = (long_first[1], long_first[0])
    assign = swapped if cost(swapped) < cost(long_first) - 1e-9 else long_first
    centre = np.array(fp.centre)
    grown = False
    for k in range(2):
        missing = prior[assign[k]] - size[k]
        if missing <= 0 or not movable[k]:
            continue
        low, high = weight[k] / weight[k].sum()
        centre = centre + missing * (high - low) / 2 * np.array(fp.axes[k])
        size[k] = prior[assign[k]]
        grown = True
    out = Footprint(
        (float(centre[0]), float(centre[1])), fp.axes, (float(size[0]), float(size[1]))
    )
    return out, grown


def _overlaps(a: Footprint, b: Footprint, tolerance: float) -> bool:
    """Whether two rectangles touch, within ``tolerance`` metres (corner and centre tests)."""
    gap = float(np.hypot(*(np.array(a.centre) - np.array(b.centre))))
    if gap > (np.hypot(*a.size) + np.hypot(*b.size)) / 2 + tolerance:
        return False
    probes_a = np.vstack([a.corners, np.array(a.centre)])
    probes_b = np.vstack([b.corners, np.array(b.centre)])
    return bool(
        (b.signed_distances(probes_a) >= -tolerance).any()
        or (a.signed_distances(probes_b) >= -tolerance).any()
    )


def complete_floor_footprint(
    fp: Footprint, outline_xz: np.ndarray, hidden: np.ndarray, standing: list[Footprint]
) -> Footprint:
    """A painted floor rectangle is partly hidden under the objects standing on it: extend it,
    along its own axes and only past its hidden sides, over the footprints of the standing
    objects that touch it and are smaller than it (the floor under them is the rectangle's)."""
    area = fp.size[0] * fp.size[1]
    touching = [  # what stands on a painted zone is smaller than the zone
        o
        for o in standing
        if o.size[0] * o.size[1] < area and _overlaps(fp, o, OVERLAP_TOLERANCE_M)
    ]
    if not touching:
        return fp
    half = np.array(fp.size) / 2
    lo, hi = -half.copy(), half.copy()
    corners = np.concatenate([o.corners for o in touching])  # [4 T, 2]
    reach = (corners - np.array(fp.centre)) @ np.array(fp.axes).T  # [4 T, 2]
    sides = hidden_sides(fp, outline_xz, hidden)
    for k in range(2):
        if sides[k, 0]:
            lo[k] = min(lo[k], float(reach[:, k].min()))
        if sides[k, 1]:
            hi[k] = max(hi[k], float(reach[:, k].max()))
    centre = np.array(fp.centre) + ((lo + hi) / 2) @ np.array(fp.axes)
    size = hi - lo
    return Footprint(
        (float(centre[0]), float(centre[1])), fp.axes, (float(size[0]), float(size[1]))
    )
