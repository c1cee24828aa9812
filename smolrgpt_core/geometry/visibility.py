"""Free-space checks: a hypothesised box must not stand where the camera saw past it.

A class prior says how large a partly hidden object is, not where its hidden part lies. Each
placement of the prior-sized box that covers the visible footprint is tested against the depth
image: points on the box's camera-facing faces are projected, and where the camera measured a
surface *behind* such a point, the box cannot be there (the camera would have seen it). The
placement with the fewest such points wins; the hidden part ends up behind the occluders.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.geometry.camera import CameraModel
from smolrgpt_core.geometry.floor import FloorFrame
from smolrgpt_core.geometry.footprint import EDGE_TRIM, Footprint, quantiles

SEE_THROUGH_M = 0.08  # observed this much (plus 2% of range) behind a box point: seen past it
SEE_THROUGH_REL = 0.02
POSITIONS = 5  # placements tried along each axis with room to move
_FACE = np.linspace(0.1, 0.9, 5)  # face samples, kept off the edges


@dataclass(frozen=True)
class DepthView:
    """The frame's depth and camera, for testing floor-frame points against what was seen."""

    camera: CameraModel
    depth: np.ndarray
    encoding: depth_codec.DepthEncoding
    frame: FloorFrame
    pixel_offset: float

    def seen_past(self, points_floor: np.ndarray) -> np.ndarray:
        """bool [N]: the camera measured a surface behind each floor-frame point (so nothing
        stands there); False where the point is out of view or the pixel has no reading."""
        cam = self.frame.to_camera(points_floor)
        uv = self.camera.project(cam) - self.pixel_offset
        h, w = self.depth.shape
        ok = np.all(np.isfinite(uv), axis=1)
        col = np.rint(np.where(ok, uv[:, 0], -1)).astype(np.int64)
        row = np.rint(np.where(ok, uv[:, 1], -1)).astype(np.int64)
        ok &= (col >= 0) & (col < w) & (row >= 0) & (row < h)
        observed = np.full(len(cam), np.nan)
        observed[ok] = self.encoding.to_metres(self.depth[row[ok], col[ok]])
        z = cam[:, 2]
        return observed > z + SEE_THROUGH_M + SEE_THROUGH_REL * z  # NaN compares false


def _face_layout() -> np.ndarray:
    """[S, 3] box-local samples (along axis 0, along axis 1, height), each in units of the
    box's size: a grid on the top face and on each of the four sides."""
    f = _FACE - 0.5
    top = [(s, t, 1.0) for s in f for t in f]
    sides = [(side, s, y) for side in (-0.5, 0.5) for s in f for y in _FACE]
    sides += [(s, side, y) for side in (-0.5, 0.5) for s in f for y in _FACE]
    return np.array(top + sides)


_LAYOUT = _face_layout()


def _face_points(
    centres: np.ndarray, axes: np.ndarray, sizes: np.ndarray, top: float
) -> np.ndarray:
    """[C, S, 3] floor-frame samples (x, height, z) on C boxes: centres [C, 2], axes
    [C, 2, 2], sizes [C, 2]."""
    scaled = _LAYOUT[None, :, :2] * sizes[:, None, :]  # [C, S, 2]
    xz = centres[:, None, :] + np.einsum('csk,ckd->csd', scaled, axes)  # [C, S, 2]
    height = np.broadcast_to(_LAYOUT[None, :, 2] * top, xz.shape[:2])  # [C, S]
    return np.stack([xz[..., 0], height, xz[..., 1]], axis=-1)


def _axes(angle_deg: float) -> np.ndarray:
    t = math.radians(angle_deg)
    return np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])


def place_prior_box(
    visible: Footprint,
    outline_xz: np.ndarray,
    prior: tuple[float, float],
    top: float,
    view: DepthView,
    guess: Footprint,
    grid_angle: float | None = None,
) -> Footprint:
    """The prior-sized footprint (long, short; never smaller than what is seen) that covers
    the visible outline and that the depth image least contradicts. Orientations tried: the
    visible footprint's and the scene grid's, each with the prior's long side on either axis;
    ties go to the placement nearest ``guess`` (the hidden-share estimate)."""
    orientations = [np.array(visible.axes)]
    if grid_angle is not None and abs((visible.angle_deg - grid_angle + 45) % 90 - 45) > 2.0:
        orientations.append(_axes(grid_angle))
    candidates: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for axes in orientations:
        lo, hi = quantiles(outline_xz @ axes.T, (EDGE_TRIM, 100.0 - EDGE_TRIM))  # [2] each
        for long_axis in (0, 1):
            want = np.array([prior[0], prior[1]] if long_axis == 0 else [prior[1], prior[0]])
            length = np.maximum(want, hi - lo)
            starts = [
                np.linspace(hi[k] - length[k], lo[k], POSITIONS)
                if length[k] > hi[k] - lo[k] + 0.01
                else np.array([lo[k]])
                for k in range(2)
            ]
            for s0 in starts[0]:
                for s1 in starts[1]:
                    middle = np.array([s0, s1]) + length / 2
                    candidates.append((middle @ axes, axes, length))
    centres = np.array([c for c, _, _ in candidates])  # [C, 2]
    axes_all = np.array([a for _, a, _ in candidates])  # [C, 2, 2]
    sizes = np.array([z for _, _, z in candidates])  # [C, 2]
    samples = _face_points(centres, axes_all, sizes, top)  # [C, S, 3]
    violations = view.seen_past(samples.reshape(-1, 3)).reshape(len(candidates), -1).sum(axis=1)
    best = violations.min()
    near = np.where(
        violations == best, np.linalg.norm(centres - np.array(guess.centre), axis=1), np.inf
    )
    centre, axes, size = candidates[int(np.argmin(near))]
    return Footprint(
        (float(centre[0]), float(centre[1])),
        (tuple(axes[0].tolist()), tuple(axes[1].tolist())),
        (float(size[0]), float(size[1])),
    )
