"""Analytic test scenes: a z-buffer ray caster for axis-aligned boxes on a (tilted) floor.

World frame as in the synthetic data: x right, y up, z forward; the floor is y = 0 unless a
tilt is given. Painted floor rectangles are drawn on the floor where no box hides them. Pixels
follow OpenCV (pixel (u, v) looks through its centre), so the geometry runs with
``pixel_offset=0``. Everything ground truth lives here, never in smolrgpt_core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from smolrgpt_core.geometry import CameraModel


@dataclass(frozen=True)
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    label: str = 'pallet'

    @property
    def centre(self) -> np.ndarray:
        return (np.array(self.lo) + np.array(self.hi)) / 2


@dataclass(frozen=True)
class Rect:
    """A painted floor rectangle (x0, z0, x1, z1) on the y = 0 floor."""

    x0: float
    z0: float
    x1: float
    z1: float
    label: str = 'buffer'

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.x0 + self.x1) / 2, 0.0, (self.z0 + self.z1) / 2])


@dataclass(frozen=True)
class Pose:
    """Camera position and orientation: yaw (positive turns right), pitch (positive looks
    down), roll (positive turns the image clockwise), degrees."""

    position: tuple[float, float, float] = (0.0, 3.0, 0.0)
    yaw: float = 0.0
    pitch: float = 24.0
    roll: float = 0.0

    def axes(self) -> np.ndarray:
        """[3, 3] rows: world directions of the camera's right, down and forward axes."""
        y, p, r = (math.radians(a) for a in (self.yaw, self.pitch, self.roll))
        forward = np.array([math.sin(y) * math.cos(p), -math.sin(p), math.cos(y) * math.cos(p)])
        right = np.array([math.cos(y), 0.0, -math.sin(y)])
        down = np.cross(right, forward)
        # roll about the forward axis
        right, down = (
            math.cos(r) * right + math.sin(r) * down,
            -math.sin(r) * right + math.cos(r) * down,
        )
        return np.stack([right, down, forward])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - np.array(self.position)) @ self.axes().T


@dataclass
class Scene:
    boxes: list[Box] = field(default_factory=list)
    rects: list[Rect] = field(default_factory=list)
    floor_normal: tuple[float, float, float] = (0.0, 1.0, 0.0)  # world up of the floor plane

    @property
    def objects(self) -> list[Box | Rect]:
        return [*self.boxes, *self.rects]


@dataclass
class Rendering:
    depth: np.ndarray  # float32 [H, W] z-depth in metres, NaN where nothing was hit
    ids: np.ndarray  # int [H, W]: 0 background, k + 1 for scene.objects[k]
    camera: CameraModel

    def masks(self, n: int) -> np.ndarray:
        return self.ids[None] == np.arange(1, n + 1)[:, None, None]

    def depth_mm(self) -> np.ndarray:
        mm = np.rint(np.nan_to_num(self.depth, nan=0.0) * 1000.0)
        return np.clip(mm, 0, 65535).astype(np.uint16)


def camera(width: int = 320, height: int = 180, hfov_deg: float = 78.0) -> CameraModel:
    f = width / (2 * math.tan(math.radians(hfov_deg) / 2))
    return CameraModel(width, height, f, f, (width - 1) / 2, (height - 1) / 2)


def render(scene: Scene, pose: Pose, cam: CameraModel | None = None) -> Rendering:
    cam = cam or camera()
    h, w = cam.height, cam.width
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays_cam = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1)
    dirs = rays_cam @ pose.axes()  # [H, W, 3] world directions with unit camera z
    origin = np.array(pose.position)
    depth = np.full((h, w), np.inf)
    ids = np.zeros((h, w), dtype=np.int64)

    # the floor plane n . p = 0 (through the world origin)
    n = np.array(scene.floor_normal, dtype=np.float64)
    n /= np.linalg.norm(n)
    denom = dirs @ n
    with np.errstate(divide='ignore', invalid='ignore'):
        t_floor = -(origin @ n) / denom
    floor_hit = (denom < 0) & (t_floor > 0)
    depth[floor_hit] = t_floor[floor_hit]

    for k, box in enumerate(scene.boxes):
        lo, hi = np.array(box.lo), np.array(box.hi)
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (lo - origin) / dirs
            t2 = (hi - origin) / dirs
        t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < depth)
        depth[hit] = t_near[hit]
        ids[hit] = k + 1

    on_floor = floor_hit & (ids == 0)
    points = origin + depth[..., None] * dirs
    for j, rect in enumerate(scene.rects):
        x, z = points[..., 0], points[..., 2]
        inside = on_floor & (x >= rect.x0) & (x <= rect.x1) & (z >= rect.z0) & (z <= rect.z1)
        ids[inside] = len(scene.boxes) + j + 1
    depth[~np.isfinite(depth)] = np.nan
    return Rendering(depth.astype(np.float32), ids, cam)


def pallet(x: float, z: float, height: float = 1.0, along_x: bool = True) -> Box:
    sx, sz = (1.2, 0.8) if along_x else (0.8, 1.2)
    return Box((x - sx / 2, 0.0, z - sz / 2), (x + sx / 2, height, z + sz / 2), 'pallet')


def to_camera_centre(obj: Box | Rect, pose: Pose) -> np.ndarray:
    return pose.to_camera(obj.centre[None])[0]
