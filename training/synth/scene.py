"""Procedural warehouse scenes: a pinhole camera, floor, racks, buffer zones, pallets, forklifts.

World frame: X right, Y up, Z away from the camera's home position; metres. Every object is a
union of axis-aligned boxes; buffer zones are painted floor rectangles. The layout keeps
buffers side by side in front of the camera, so "leftmost / rightmost buffer" has one answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import math

import numpy as np

PALLET_SIZE = (1.2, 0.144, 0.8)  # EUR pallet: x, y (height), z in metres
ROOM = ((-11.0, 0.0, -1.0), (11.0, 9.0, 26.0))  # walls, floor and ceiling


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: intrinsics in pixels, pose as position + yaw/pitch (radians)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    position: tuple[float, float, float]
    yaw: float  # positive turns right
    pitch: float  # positive looks down

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World directions of the camera's right, down and forward axes (OpenCV frame)."""
        cy_, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        forward = np.array([sy * cp, -sp, cy_ * cp])
        right = np.array([cy_, 0.0, -sy])
        down = np.cross(right, forward)
        return right, down, forward

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] world points -> [N, 3] camera-frame points (x right, y down, z forward)."""
        rotation = np.stack(self.axes)  # rows: right, down, forward
        return (np.asarray(points, dtype=np.float64) - np.array(self.position)) @ rotation.T

    def project(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] world points -> [N, 2] pixel coordinates (u, v); z must be positive."""
        cam = self.world_to_camera(points)
        return np.stack(
            [self.fx * cam[:, 0] / cam[:, 2] + self.cx, self.fy * cam[:, 1] / cam[:, 2] + self.cy],
            axis=1,
        )

    def intrinsics(self) -> dict[str, float | int]:
        return {
            'width': self.width,
            'height': self.height,
            'fx': self.fx,
            'fy': self.fy,
            'cx': self.cx,
            'cy': self.cy,
        }

    def world_from_camera(self) -> list[list[float]]:
        """4x4 pose matrix: camera (OpenCV) frame -> world frame."""
        right, down, forward = self.axes
        pose = np.eye(4)
        pose[:3, :3] = np.stack([right, down, forward], axis=1)
        pose[:3, 3] = self.position
        return pose.round(9).tolist()


@dataclass(frozen=True)
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    material: str


@dataclass
class SceneObject:
    """One instance: its boxes (or floor rectangle for a buffer) and its reference point."""

    instance_id: int
    kind: str  # 'pallet' | 'buffer' | 'transporter' | 'shelf'
    boxes: list[Box] = field(default_factory=list)
    # buffers: floor rectangle (x0, z0, x1, z1)
    rect: tuple[float, float, float, float] | None = None

    @property
    def center(self) -> np.ndarray:
        """Centre of the 3D bounding box (buffers: centre of the painted rectangle, y = 0)."""
        if self.rect is not None:
            x0, z0, x1, z1 = self.rect
            return np.array([(x0 + x1) / 2, 0.0, (z0 + z1) / 2])
        lo = np.min([b.lo for b in self.boxes], axis=0)
        hi = np.max([b.hi for b in self.boxes], axis=0)
        return (lo + hi) / 2

    def footprint(self) -> tuple[float, float, float, float]:
        if self.rect is not None:
            return self.rect
        lo = np.min([b.lo for b in self.boxes], axis=0)
        hi = np.max([b.hi for b in self.boxes], axis=0)
        return float(lo[0]), float(lo[2]), float(hi[0]), float(hi[2])

    def contains_xz(self, point: np.ndarray) -> bool:
        return in_rect_xz(self.footprint(), point)


def in_rect_xz(rect: Sequence[float], point: Sequence[float]) -> bool:
    """A point [x, y, z] over a floor rectangle (x0, z0, x1, z1): the rule for 'a pallet in a
    buffer region' (its centre over the buffer's rectangle)."""
    x0, z0, x1, z1 = rect
    return x0 <= point[0] <= x1 and z0 <= point[2] <= z1


@dataclass
class Scene:
    camera: Camera
    objects: list[SceneObject]
    buffer_paint: tuple[float, float, float]  # RGB of the buffer zone lines, 0..1

    def of_kind(self, kind: str) -> list[SceneObject]:
        return [o for o in self.objects if o.kind == kind]

    def buffer_of(self, pallet: SceneObject) -> SceneObject | None:
        """The buffer zone holding the pallet (its centre over the painted rectangle)."""
        for buffer in self.of_kind('buffer'):
            if buffer.contains_xz(pallet.center):
                return buffer
        return None


def distance(scene: Scene, a: SceneObject, b: SceneObject) -> float:
    """Metres between two regions: centre to centre, 0 when a pallet sits inside the buffer."""
    for pallet, buffer in ((a, b), (b, a)):
        if (
            pallet.kind == 'pallet'
            and buffer.kind == 'buffer'
            and buffer.contains_xz(pallet.center)
        ):
            return 0.0
    return float(np.linalg.norm(a.center - b.center))


def make_camera(rng: np.random.Generator, width: int, height: int) -> Camera:
    hfov = math.radians(rng.uniform(72.0, 84.0))
    focal = width / (2.0 * math.tan(hfov / 2.0))
    return Camera(
        width=width,
        height=height,
        fx=focal,
        fy=focal,
        cx=width / 2.0,
        cy=height / 2.0,
        position=(float(rng.uniform(-1.0, 1.0)), float(rng.uniform(2.6, 3.8)), 0.0),
        yaw=math.radians(rng.uniform(-8.0, 8.0)),
        pitch=math.radians(rng.uniform(20.0, 28.0)),
    )


def pallet(
    instance_id: int, x: float, z: float, rng: np.random.Generator, rotated: bool = False
) -> SceneObject:
    """A pallet centred at (x, z), empty or carrying a load of boxes or wrapped goods."""
    sx, sy, sz = PALLET_SIZE
    if rotated:
        sx, sz = sz, sx
    boxes = [Box((x - sx / 2, 0.0, z - sz / 2), (x + sx / 2, sy, z + sz / 2), 'pallet_wood')]
    load = rng.choice(['none', 'cartons', 'wrapped', 'cartons'], p=[0.2, 0.35, 0.25, 0.2])
    if load != 'none':
        h = float(rng.uniform(0.4, 1.3))
        inset = float(rng.uniform(0.02, 0.08))
        boxes.append(
            Box(
                (x - sx / 2 + inset, sy, z - sz / 2 + inset),
                (x + sx / 2 - inset, sy + h, z + sz / 2 - inset),
                'carton' if load == 'cartons' else 'wrap',
            )
        )
    return SceneObject(instance_id, 'pallet', boxes)


def transporter(instance_id: int, x: float, z: float, facing_x: bool) -> SceneObject:
    """A forklift-style transporter: body, overhead guard, mast and forks (empty)."""
    length, width = 1.5, 0.95
    hx, hz = (length / 2, width / 2) if facing_x else (width / 2, length / 2)
    boxes = [
        Box((x - hx, 0.1, z - hz), (x + hx, 1.0, z + hz), 'forklift_body'),
        Box(
            (x - hx + 0.05, 2.0, z - hz + 0.05),
            (x + hx - 0.05, 2.08, z + hz - 0.05),
            'forklift_dark',
        ),
    ]
    for sx in (-1, 1):  # guard posts
        for sz in (-1, 1):
            px, pz = x + sx * (hx - 0.08), z + sz * (hz - 0.08)
            boxes.append(
                Box((px - 0.04, 1.0, pz - 0.04), (px + 0.04, 2.0, pz + 0.04), 'forklift_dark')
            )
    # mast and forks on the -z side (towards the camera) so they are seen
    boxes.append(Box((x - 0.35, 0.05, z - hz - 0.12), (x + 0.35, 2.3, z - hz), 'steel'))
    for fx in (-0.25, 0.25):
        boxes.append(
            Box((x + fx - 0.06, 0.05, z - hz - 1.1), (x + fx + 0.06, 0.1, z - hz - 0.12), 'steel')
        )
    return SceneObject(instance_id, 'transporter', boxes)


def rack(
    instance_id: int,
    x0: float,
    z0: float,
    along_x: bool,
    rng: np.random.Generator,
    length: float = 2.7,
    depth: float = 1.1,
) -> SceneObject:
    """One rack bay: two upright frames, beam levels with decks and cartons on them."""
    levels = int(rng.integers(3, 5))
    height = 1.6 * levels + 0.3
    boxes = []

    def span(a: float, b: float, c0: float, c1: float, y0: float, y1: float, mat: str) -> Box:
        # (a, b) along the rack, (c0, c1) across it
        if along_x:
            return Box((x0 + a, y0, z0 + c0), (x0 + b, y1, z0 + c1), mat)
        return Box((x0 + c0, y0, z0 + a), (x0 + c1, y1, z0 + b), mat)

    for a in (0.0, length - 0.09):
        for c in (0.0, depth - 0.09):
            boxes.append(span(a, a + 0.09, c, c + 0.09, 0.0, height, 'rack_upright'))
    for level in range(levels):
        y = 0.15 + 1.6 * level
        boxes.append(span(0.09, length - 0.09, 0.0, 0.1, y, y + 0.12, 'rack_beam'))
        boxes.append(span(0.09, length - 0.09, 0.1, depth - 0.09, y + 0.08, y + 0.12, 'deck'))
        a = 0.15
        while a < length - 0.5:
            w = float(rng.uniform(0.5, 1.1))
            if a + w > length - 0.15:
                break
            if rng.random() < 0.8:
                h = float(rng.uniform(0.4, 1.3))
                mat = 'carton' if rng.random() < 0.7 else 'wrap'
                boxes.append(span(a, a + w, 0.15, depth - 0.15, y + 0.12, y + 0.12 + h, mat))
            a += w + float(rng.uniform(0.05, 0.2))
    return SceneObject(instance_id, 'shelf', boxes)


def _free(
    rect: tuple[float, float, float, float],
    taken: list[tuple[float, float, float, float]],
    margin: float,
) -> bool:
    x0, z0, x1, z1 = rect
    return all(
        x1 + margin <= t[0] or t[2] + margin <= x0 or z1 + margin <= t[1] or t[3] + margin <= z0
        for t in taken
    )


def make_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    camera = make_camera(rng, width, height)
    objects: list[SceneObject] = []

    # racks along the back wall and (sometimes) the side walls
    back_z = float(rng.uniform(17.0, 22.0))
    x = float(rng.uniform(-10.5, -9.0))
    while x + 2.7 < 10.5:
        objects.append(rack(0, x, back_z, True, rng))
        x += 2.75
    for side in (-1, 1):
        if rng.random() < 0.6:
            xs = 9.6 if side > 0 else -10.7
            z = float(rng.uniform(4.0, 7.0))
            while z + 2.7 < back_z - 1.5:
                objects.append(rack(0, xs, z, False, rng))
                z += 2.75

    # buffer zones side by side across the view, at similar depth
    n_buffers = int(rng.choice([2, 3, 3, 4]))
    zc = float(rng.uniform(7.0, 10.0))
    spacing = float(rng.uniform(3.6, 4.4))
    taken: list[tuple[float, float, float, float]] = []
    buffers = []
    for i in range(n_buffers):
        bw, bd = float(rng.uniform(2.6, 3.3)), float(rng.uniform(2.2, 3.0))
        cx = (i - (n_buffers - 1) / 2) * spacing + float(rng.uniform(-0.3, 0.3))
        cz = zc + float(rng.uniform(-0.8, 0.8)) + abs(cx) * 0.15
        rect = (cx - bw / 2, cz - bd / 2, cx + bw / 2, cz + bd / 2)
        buffer = SceneObject(0, 'buffer', rect=rect)
        buffers.append(buffer)
        taken.append(rect)
    objects.extend(buffers)

    # pallets inside buffers: a 2x2 grid of slots per buffer, most slots filled
    occupied: list[tuple[float, float, float, float]] = []
    for buffer in buffers:
        x0, z0, x1, z1 = buffer.rect or (0, 0, 0, 0)
        k = int(
            rng.choice([0, 1, 2, 2, 3, 3, 3, 4], p=[0.03, 0.2, 0.12, 0.12, 0.16, 0.16, 0.11, 0.1])
        )
        slots = [(0.27, 0.3), (0.73, 0.3), (0.27, 0.72), (0.73, 0.72)]
        for j in rng.permutation(4)[:k]:
            fx, fz = slots[j]
            px = x0 + fx * (x1 - x0) + float(rng.uniform(-0.08, 0.08))
            pz = z0 + fz * (z1 - z0) + float(rng.uniform(-0.08, 0.08))
            item = pallet(0, px, pz, rng)
            objects.append(item)
            occupied.append(item.footprint())

    # loose pallets and transporters on the open floor
    def place(make, count: int, margin: float) -> None:
        for _ in range(count):
            for _attempt in range(40):
                px, pz = float(rng.uniform(-7.5, 7.5)), float(rng.uniform(3.5, 15.5))
                candidate = make(px, pz)
                rect = candidate.footprint()
                if _free(rect, taken + occupied, margin) and _in_view(camera, candidate):
                    objects.append(candidate)
                    occupied.append(rect)
                    break

    place(
        lambda px, pz: pallet(0, px, pz, rng, rotated=bool(rng.random() < 0.3)),
        int(rng.integers(1, 5)),
        0.4,
    )
    place(
        lambda px, pz: transporter(0, px, pz, bool(rng.random() < 0.5)),
        int(rng.integers(1, 3)),
        0.8,
    )
    paint = (0.95, 0.78, 0.1) if rng.random() < 0.7 else (0.92, 0.92, 0.88)
    for instance_id, obj in enumerate(objects, start=1):  # ids 1..N; 0 is the background
        obj.instance_id = instance_id
    return Scene(camera, objects, paint)


def _in_view(camera: Camera, obj: SceneObject) -> bool:
    cam = camera.world_to_camera(obj.center[None])[0]
    if cam[2] < 1.5:
        return False
    u = camera.fx * cam[0] / cam[2] + camera.cx
    v = camera.fy * cam[1] / cam[2] + camera.cy
    return (
        0.05 * camera.width < u < 0.95 * camera.width and 0.1 * camera.height < v < camera.height
    )
