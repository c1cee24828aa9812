"""The floor: a seeded RANSAC plane fit in the camera frame, and the floor frame it defines.

A plane is ``n . p + offset = 0`` with the unit normal ``n`` pointing up, towards the camera's
side, so ``offset`` is the camera's height above the floor and ``n . p + offset`` the height
of a point. The floor frame has its origin on the floor under the camera, y = up, x = the
camera's x axis projected onto the floor, z = forward along the floor. Like the synthetic
scenes' world frame (x right, y up, z forward; left-handed), up to the camera's yaw and position,
so floor-frame footprints compare directly with the dataset's (x, z) floor rectangles.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

CAMERA_UP = np.array([0.0, -1.0, 0.0])  # optical frame: y points down
NOISE_WIDENING = 2.5  # inliers within this many robust standard deviations


@dataclass(frozen=True)
class FloorFrame:
    """Camera frame <-> floor frame. ``rotation`` rows are the floor axes in camera coordinates."""

    rotation: tuple[tuple[float, float, float], ...]
    origin: tuple[float, float, float]  # the floor point under the camera, camera frame

    def to_floor(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] camera-frame points -> [N, 3] floor-frame points (x, height, z)."""
        rotation = np.array(self.rotation)
        # np.dot takes the BLAS path for [N, 3] x [3, 3]; the @ operator is slower here
        shifted = np.asarray(points, dtype=np.float64) - np.array(self.origin)
        return np.dot(shifted, np.ascontiguousarray(rotation.T))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] floor-frame points -> [N, 3] camera-frame points."""
        rotated = np.dot(np.asarray(points, dtype=np.float64), np.array(self.rotation))
        return rotated + np.array(self.origin)


@dataclass(frozen=True)
class FloorPlane:
    normal: tuple[float, float, float]  # unit, camera frame, pointing up
    offset: float  # metres; the camera's height above the floor
    inliers: int
    rms: float  # metres, over the inliers
    source: str  # 'buffer' (painted floor regions), 'background' (lowest band) or 'given'

    @property
    def camera_height(self) -> float:
        return self.offset

    @property
    def tilt_deg(self) -> float:
        """Angle between the floor normal and the camera's up axis (-y): the camera's pitch and
        roll combined, 0 for a camera looking at the horizon."""
        cos = float(np.clip(np.dot(self.normal, CAMERA_UP), -1.0, 1.0))
        return math.degrees(math.acos(cos))

    def height(self, points: np.ndarray) -> np.ndarray:
        """[N] signed height above the floor of [N, 3] camera-frame points."""
        return np.asarray(points, dtype=np.float64) @ np.array(self.normal) + self.offset

    def frame(self) -> FloorFrame:
        n = np.array(self.normal)
        x = np.array([1.0, 0.0, 0.0]) - n[0] * n  # camera x projected onto the floor
        if np.linalg.norm(x) < 1e-6:  # camera x along the normal (a camera on its side)
            x = np.array([0.0, 0.0, 1.0]) - n[2] * n
        x /= np.linalg.norm(x)
        z = np.cross(n, x)  # forward along the floor
        rotation = tuple(tuple(float(c) for c in axis) for axis in (x, n, z))
        origin = tuple(float(c) for c in -self.offset * n)
        return FloorFrame(rotation, origin)

    @classmethod
    def from_normal(cls, normal: np.ndarray, camera_height: float) -> FloorPlane:
        """A known floor (e.g. from TF): the up normal in the camera frame and the height."""
        n = np.asarray(normal, dtype=np.float64)
        if n.shape != (3,) or not np.all(np.isfinite(n)) or np.linalg.norm(n) < 1e-9:
            raise ValueError(f'floor normal must be a finite non-zero 3-vector, got {normal!r}')
        if not (math.isfinite(camera_height) and camera_height > 0):
            raise ValueError(f'camera height must be positive metres, got {camera_height!r}')
        n = n / np.linalg.norm(n)
        return cls(tuple(float(c) for c in n), float(camera_height), 0, 0.0, 'given')


def _plane_through(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[K, 3, 3] point triples -> ([K, 3] unit normals facing the camera, [K] offsets); a
    degenerate triple gets a zero normal."""
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])  # [K, 3]
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), 0.0)
    d = -np.einsum('kc,kc->k', n, p[:, 0])  # [K]
    flip = d < 0  # the camera (origin) must lie on the positive side
    return np.where(flip[:, None], -n, n), np.where(flip, -d, d)


def _refine(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least-squares plane (unit normal facing the camera, offset), fitted in inverse
    depth: with ``m = n / offset`` the plane is ``m . p = -1``, so ``1 / z = -m . (p / z)``.
    The regressors ``p / z`` are the pixels' rays, free of depth noise, so the fit is not
    biased the way a perpendicular fit of points smeared along their rays is."""
    z = points[:, 2]
    rays = points / z[:, None]  # [N, 3]
    sw = np.sqrt(weights)
    m, *_ = np.linalg.lstsq(rays * sw[:, None], -sw / z, rcond=None)
    norm = float(np.linalg.norm(m))
    return m / norm, 1.0 / norm


def fit_floor(
    points: np.ndarray,
    *,
    source: str = 'background',
    seed: int = 0,
    iterations: int = 128,
    threshold_m: float = 0.02,
    threshold_rel: float = 0.01,
    max_tilt_deg: float = 75.0,
    min_inliers: int = 50,
    max_points: int = 4000,
    score_points: int = 1000,
) -> FloorPlane | None:
    """RANSAC plane of [N, 3] camera-frame floor candidates; None when no plane is supported.

    A point is an inlier within ``threshold_m + threshold_rel * z`` (depth noise grows with
    range). Planes whose normal is more than ``max_tilt_deg`` from the camera's up axis are not
    floors (a wall in the band). The same seed and points give the same plane.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f'floor candidates must have shape [N, 3], got {list(points.shape)}')
    points = points[np.all(np.isfinite(points), axis=1) & (points[:, 2] > 0)]
    if len(points) < max(3, min_inliers):
        return None
    if len(points) > max_points:  # an even stride keeps the spatial spread
        points = points[np.linspace(0, len(points) - 1, max_points).astype(np.int64)]
    rng = np.random.default_rng(seed)
    triples = points[rng.integers(0, len(points), size=(iterations, 3))]  # [K, 3, 3]
    normals, offsets = _plane_through(triples)
    cos_tilt = normals @ CAMERA_UP
    usable = np.linalg.norm(normals, axis=1) > 0.5
    usable &= cos_tilt >= math.cos(math.radians(max_tilt_deg))
    if not usable.any():
        return None
    normals, offsets = normals[usable], offsets[usable]
    tolerance = threshold_m + threshold_rel * np.abs(points[:, 2])  # [N]
    # hypotheses are scored on an even subset, the winner is refined on every point
    probe = np.linspace(0, len(points) - 1, min(score_points, len(points))).astype(np.int64)
    residual = np.abs(points[probe] @ normals.T + offsets)  # [P, K]
    counts = (residual <= tolerance[probe, None]).sum(axis=0)
    best = int(np.argmax(counts))
    inside = np.abs(points @ normals[best] + offsets[best]) <= tolerance
    # inverse depth is about as precise as depth / z^2: weight by the inverse of its variance
    weights = (np.abs(points[:, 2]) ** 2 / tolerance) ** 2
    scale = 1.0
    for _ in range(4):  # weighted least squares on the inliers, then re-select them
        if inside.sum() < 3:
            return None
        n, d = _refine(points[inside], weights[inside])
        residual = np.abs(points @ n + d) / tolerance
        # noisier depth than the tolerance assumes: widen it to the residuals' robust spread,
        # so the inliers are not a one-sided cut of the noise
        scale = max(1.0, NOISE_WIDENING * 1.4826 * float(np.median(residual[inside])))
        inside = residual <= scale
    if inside.sum() < min_inliers or float(n @ CAMERA_UP) < math.cos(math.radians(max_tilt_deg)):
        return None
    rms = float(np.sqrt(np.mean((points[inside] @ n + d) ** 2)))
    return FloorPlane(tuple(float(c) for c in n), float(d), int(inside.sum()), rms, source)
