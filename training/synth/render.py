"""Vectorised ray casting of a warehouse scene: RGB, metric z-depth and an instance id map.

Every pixel's ray is written ``C + t * (f + a r + b d)``: with the forward component equal to 1,
the ray parameter ``t`` at a hit *is* the z-depth a depth camera reports. Boxes are intersected
with the slab test, each only over the pixel rectangle its projected corners cover, which keeps
a 640x360 frame to a few tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from training.synth.scene import ROOM, Box, Scene

# surface kinds drawn without boxes; box materials follow
_SURFACES = ('floor', 'wall', 'ceiling')
MATERIALS = (*_SURFACES, 'pallet_wood', 'carton', 'wrap', 'rack_upright', 'rack_beam', 'deck',
             'forklift_body', 'forklift_dark', 'steel', 'buffer')  # fmt: skip
_MAT = {name: i for i, name in enumerate(MATERIALS)}
_BASE_COLOUR = {
    'floor': (0.56, 0.56, 0.54), 'wall': (0.70, 0.72, 0.74), 'ceiling': (0.30, 0.31, 0.33),
    'pallet_wood': (0.74, 0.58, 0.38), 'carton': (0.69, 0.52, 0.33), 'wrap': (0.80, 0.84, 0.86),
    'rack_upright': (0.14, 0.30, 0.66), 'rack_beam': (0.93, 0.45, 0.10),
    'deck': (0.58, 0.59, 0.60),
    'forklift_body': (0.95, 0.74, 0.08), 'forklift_dark': (0.13, 0.13, 0.14),
    'steel': (0.33, 0.34, 0.36), 'buffer': (0.56, 0.56, 0.54),
}  # fmt: skip
_LIGHT = np.array([0.35, 1.0, -0.45]) / np.linalg.norm([0.35, 1.0, -0.45])


@dataclass
class Rendering:
    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W], z-depth in metres
    instances: np.ndarray  # uint8 [H, W], SceneObject.instance_id, 0 = background


class _Noise:
    """Smooth 2-D value noise from a random lattice (deterministic per scene rng)."""

    def __init__(self, rng: np.random.Generator, size: int = 64) -> None:
        self.table = rng.random((size, size)).astype(np.float32)
        self.size = size

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ix, iy = np.floor(x), np.floor(y)
        fx, fy = (x - ix).astype(np.float32), (y - iy).astype(np.float32)
        fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)  # smoothstep
        i0 = ix.astype(np.int64) % self.size
        j0 = iy.astype(np.int64) % self.size
        i1, j1 = (i0 + 1) % self.size, (j0 + 1) % self.size
        t = self.table
        top = t[i0, j0] * (1 - fx) + t[i1, j0] * fx
        bottom = t[i0, j1] * (1 - fx) + t[i1, j1] * fx
        return top * (1 - fy) + bottom * fy


def render(scene: Scene, rng: np.random.Generator) -> Rendering:
    cam = scene.camera
    h, w = cam.height, cam.width
    right, down, forward = cam.axes
    a = ((np.arange(w) + 0.5 - cam.cx) / cam.fx)[None, :]
    b = ((np.arange(h) + 0.5 - cam.cy) / cam.fy)[:, None]
    dirs = [np.broadcast_to(forward[k] + a * right[k] + b * down[k], (h, w)) for k in range(3)]
    origin = np.array(cam.position)

    depth, material, normal = _room(dirs, origin)
    instances = np.zeros((h, w), dtype=np.uint8)
    box_ids = np.full((h, w), -1, dtype=np.int32)
    boxes: list[Box] = []
    for obj in scene.objects:
        for box in obj.boxes:
            _cast_box(
                box,
                len(boxes),
                obj.instance_id,
                cam,
                dirs,
                origin,
                depth,
                material,
                normal,
                instances,
                box_ids,
            )
            boxes.append(box)

    points = [origin[k] + depth * dirs[k] for k in range(3)]
    _paint_buffers(scene, points, material, instances)
    rgb = _shade(scene, rng, points, depth, material, normal, box_ids, len(boxes))
    return Rendering(rgb, depth.astype(np.float32), instances)


def _room(dirs: list[np.ndarray], origin: np.ndarray) -> tuple[np.ndarray, ...]:
    """Where each ray leaves the room box (the camera is inside): floor, walls or ceiling."""
    exits = []
    for k in range(3):
        with np.errstate(divide='ignore'):
            t_lo = (ROOM[0][k] - origin[k]) / dirs[k]
            t_hi = (ROOM[1][k] - origin[k]) / dirs[k]
        exits.append(np.where(dirs[k] > 0, t_hi, t_lo))
    stacked = np.stack(exits)
    stacked[~np.isfinite(stacked)] = np.inf
    axis = np.argmin(stacked, axis=0)
    depth = np.take_along_axis(stacked, axis[None], 0)[0]
    positive = np.take_along_axis(np.stack(dirs), axis[None], 0)[0] > 0
    material = np.full(depth.shape, _MAT['wall'], dtype=np.uint8)
    material[(axis == 1) & ~positive] = _MAT['floor']
    material[(axis == 1) & positive] = _MAT['ceiling']
    # normal index: 2 * axis + (1 if the surface faces +axis); the room faces inwards
    normal = (2 * axis + (~positive)).astype(np.uint8)
    return depth, material, normal


def _cast_box(
    box: Box,
    box_index: int,
    instance_id: int,
    cam,
    dirs,
    origin,
    depth,
    material,
    normal,
    instances,
    box_ids,
) -> None:
    lo, hi = np.array(box.lo), np.array(box.hi)
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    cam_pts = cam.world_to_camera(corners)
    if np.all(cam_pts[:, 2] <= 0.05):
        return  # behind the camera
    if np.any(cam_pts[:, 2] <= 0.05):
        u0, v0, u1, v1 = 0, 0, cam.width, cam.height
    else:
        uv = cam.project(corners)
        u0 = max(math.floor(uv[:, 0].min()), 0)
        u1 = min(math.ceil(uv[:, 0].max()) + 1, cam.width)
        v0 = max(math.floor(uv[:, 1].min()), 0)
        v1 = min(math.ceil(uv[:, 1].max()) + 1, cam.height)
        if u0 >= u1 or v0 >= v1:
            return
    window = (slice(v0, v1), slice(u0, u1))
    t_near = np.full((v1 - v0, u1 - u0), -np.inf)
    t_far = np.full((v1 - v0, u1 - u0), np.inf)
    near_axis = np.zeros((v1 - v0, u1 - u0), dtype=np.uint8)
    near_positive = np.zeros((v1 - v0, u1 - u0), dtype=bool)
    for k in range(3):
        d = dirs[k][window]
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (lo[k] - origin[k]) / d
            t2 = (hi[k] - origin[k]) / d
        entry, leave = np.minimum(t1, t2), np.maximum(t1, t2)
        # a ray parallel to the slab: inside it -> no constraint, outside -> miss
        parallel = d == 0
        inside = (origin[k] >= lo[k]) & (origin[k] <= hi[k])
        entry = np.where(parallel, -np.inf if inside else np.inf, entry)
        leave = np.where(parallel, np.inf if inside else -np.inf, leave)
        later = entry > t_near
        near_axis[later] = k
        near_positive[later] = d[later] < 0  # entering through the face that looks at +axis
        t_near = np.maximum(t_near, entry)
        t_far = np.minimum(t_far, leave)
    hit = (t_near <= t_far) & (t_near > 0) & (t_near < depth[window])
    if not hit.any():
        return
    depth[window][hit] = t_near[hit]
    material[window][hit] = _MAT[box.material]
    normal[window][hit] = (2 * near_axis + near_positive)[hit]
    instances[window][hit] = instance_id
    box_ids[window][hit] = box_index


def _paint_buffers(scene: Scene, points, material, instances) -> None:
    floor = (material == _MAT['floor']) & (instances == 0)
    x, z = points[0], points[2]
    for buffer in scene.of_kind('buffer'):
        x0, z0, x1, z1 = buffer.rect or (0.0, 0.0, 0.0, 0.0)
        inside = floor & (x >= x0) & (x <= x1) & (z >= z0) & (z <= z1)
        material[inside] = _MAT['buffer']
        instances[inside] = buffer.instance_id


def _shade(
    scene: Scene, rng: np.random.Generator, points, depth, material, normal, box_ids, n_boxes: int
) -> np.ndarray:
    h, w = depth.shape
    noise = _Noise(rng)
    x, y, z = points
    base = np.zeros((h, w, 3), dtype=np.float32)
    for name, colour in _BASE_COLOUR.items():
        base[material == _MAT[name]] = colour
    detail = np.ones((h, w), dtype=np.float32)

    floorish = (material == _MAT['floor']) | (material == _MAT['buffer'])
    fx, fz = x[floorish], z[floorish]
    concrete = 0.86 + 0.12 * noise(fx * 0.7, fz * 0.7) + 0.06 * noise(fx * 6.0 + 17, fz * 6.0)
    joints = (np.abs(((fx + 0.5) % 6.0) - 3.0) > 2.97) | (np.abs((fz % 6.0) - 3.0) > 2.97)
    detail[floorish] = concrete * np.where(joints, 0.8, 1.0)
    _paint_buffer_marks(scene, base, floorish, x, z)

    walls = material == _MAT['wall']
    seams = np.abs(((x[walls] + z[walls]) % 1.2) - 0.6) > 0.585
    detail[walls] = (
        0.93 + 0.07 * noise(x[walls] * 0.3 + z[walls] * 0.3, y[walls] * 0.3)
    ) * np.where(seams, 0.82, 1.0)

    wood = material == _MAT['pallet_wood']
    wx, wy, wz = x[wood], y[wood], z[wood]
    top = normal[wood] == 3
    planks = (((wx * 7.0) % 1.0) < 0.78) | ~top  # slat gaps on the deck
    pockets = ~top & (wy > 0.03) & (wy < 0.11) & ((((wx + wz) * 2.4) % 1.0) < 0.62)
    detail[wood] = (0.85 + 0.2 * noise(wx * 9.0, wz * 2.0 + wy * 9.0)) * np.where(
        planks, 1.0, 0.45
    )
    detail[wood] *= np.where(pockets, 0.25, 1.0)

    tint = 0.82 + 0.3 * rng.random(n_boxes + 1).astype(np.float32)  # per-box shade
    for name, seam_scale in (('carton', 0.45), ('wrap', 0.0)):
        sel = material == _MAT[name]
        factor = tint[box_ids[sel]]
        if seam_scale:
            tape = np.abs(((x[sel] + z[sel]) % seam_scale) - seam_scale / 2) < 0.02
            factor = factor * np.where(tape, 0.78, 1.0)
        else:
            factor = factor * (0.9 + 0.15 * noise(x[sel] * 3 + z[sel] * 3, y[sel] * 8.0))
        detail[sel] = factor

    normals = np.zeros((6, 3))
    for k in range(3):
        normals[2 * k, k], normals[2 * k + 1, k] = -1.0, 1.0
    lambert = np.clip(normals @ _LIGHT, 0.0, None)[normal]
    light = 0.5 + 0.55 * lambert
    light *= np.clip(1.08 - 0.018 * depth, 0.55, 1.0)  # fall-off with distance
    light *= _contact_shadows(scene, x, z, floorish)
    v, u = np.mgrid[0:h, 0:w]
    r2 = ((u - w / 2) / (w / 2)) ** 2 + ((v - h / 2) / (h / 2)) ** 2
    light *= (1.0 - 0.18 * r2).astype(np.float32)  # lens vignetting

    rgb = base * (detail * light)[..., None]
    rgb += rng.normal(0.0, 0.012, size=rgb.shape).astype(np.float32)  # sensor noise
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _paint_buffer_marks(
    scene: Scene, base: np.ndarray, floorish: np.ndarray, x: np.ndarray, z: np.ndarray
) -> None:
    """Buffer zones: solid border lines and diagonal hatching in the paint colour."""
    paint = np.array(scene.buffer_paint, dtype=np.float32)
    for buffer in scene.of_kind('buffer'):
        x0, z0, x1, z1 = buffer.rect or (0.0, 0.0, 0.0, 0.0)
        inside = floorish & (x >= x0) & (x <= x1) & (z >= z0) & (z <= z1)
        bx, bz = x[inside], z[inside]
        edge = np.minimum.reduce([bx - x0, x1 - bx, bz - z0, z1 - bz])
        border = edge < 0.1
        hatch = (edge < 0.45) & ((((bx + bz) * 1.6) % 1.0) < 0.22)
        colour = base[inside]
        colour[border | hatch] = paint
        colour[~(border | hatch)] *= np.array([1.03, 1.02, 0.96], dtype=np.float32)
        base[inside] = colour


def _contact_shadows(
    scene: Scene, x: np.ndarray, z: np.ndarray, floorish: np.ndarray
) -> np.ndarray:
    """Soft darkening of the floor under and around standing objects."""
    shade = np.ones(x.shape, dtype=np.float32)
    fx, fz = x[floorish], z[floorish]
    local = np.ones(fx.shape, dtype=np.float32)
    for obj in scene.objects:
        if obj.kind == 'buffer':
            continue
        x0, z0, x1, z1 = obj.footprint()
        dx = np.maximum(np.maximum(x0 - fx, fx - x1), 0.0)
        dz = np.maximum(np.maximum(z0 - fz, fz - z1), 0.0)
        dist = np.sqrt(dx * dx + dz * dz)
        local *= (1.0 - 0.45 * np.exp(-dist / 0.18)).astype(np.float32)
    shade[floorish] = local
    return shade
