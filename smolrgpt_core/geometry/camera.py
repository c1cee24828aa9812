"""A calibrated camera: intrinsics, lens distortion, back-projection and projection.

Frames follow REP 103's optical frame: x right, y down, z forward; depth is z along the optical
axis (REP 118), not the length of the ray. Pixel coordinates follow OpenCV and ROS
``image_geometry``: the centre of the top-left pixel is (0, 0).

The constructors that read ``sensor_msgs/CameraInfo``, calibration YAML and intrinsics text live
in ``camera_io``; this file is the model and its maths. OpenCV is imported inside the functions
that undistort, so ``import smolrgpt_core`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math
from pathlib import Path
from typing import Any

import numpy as np

from smolrgpt_core.limits import MAX_IMAGE_PIXELS

# distortion model -> accepted numbers of coefficients (0: the model is named but unused)
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    '': (0,),
    'plumb_bob': (0, 4, 5),  # k1, k2, t1, t2[, k3]
    'rational_polynomial': (0, 8, 12, 14),  # k1, k2, t1, t2, k3, k4, k5, k6[, s1..s4[, tx, ty]]
    'equidistant': (0, 4),  # fisheye k1..k4
}
MAX_SIDE = 65535  # CameraInfo stores width/height as uint32; no sensor is wider than this
_UNDISTORT_CRITERIA = (3, 40, 1e-10)  # COUNT | EPS: the iteration converges well below 1e-6 px


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics in pixels plus a lens distortion model (OpenCV conventions)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = ''
    distortion: tuple[float, ...] = ()
    frame_id: str = ''

    def __post_init__(self) -> None:
        for name in ('width', 'height'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f'camera {name} must be a whole number of pixels, got {value!r}')
            if not 1 <= value <= MAX_SIDE:
                raise ValueError(f'camera {name} must be within 1..{MAX_SIDE} px, got {value}')
        if self.width * self.height > MAX_IMAGE_PIXELS:
            raise ValueError(
                f'camera image {self.width}x{self.height} exceeds {MAX_IMAGE_PIXELS} pixels'
            )
        for name in ('fx', 'fy', 'cx', 'cy'):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(
                value
            ):
                raise ValueError(f'camera {name} must be a finite number, got {value!r}')
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(
                f'camera focal lengths must be positive, got fx={self.fx}, fy={self.fy}'
            )
        # a principal point far outside the image is a unit or field mix-up, not a lens
        if not (abs(self.cx) <= 4 * self.width and abs(self.cy) <= 4 * self.height):
            raise ValueError(
                f'camera principal point ({self.cx}, {self.cy}) lies far outside the '
                f'{self.width}x{self.height} image'
            )
        if self.distortion_model not in DISTORTION_MODELS:
            choices = ', '.join(repr(m) for m in DISTORTION_MODELS)
            raise ValueError(
                f'distortion_model {self.distortion_model!r} is not supported; expected one of '
                f'{choices}'
            )
        counts = DISTORTION_MODELS[self.distortion_model]
        if len(self.distortion) not in counts:
            raise ValueError(
                f'distortion model {self.distortion_model!r} takes '
                f'{" or ".join(str(c) for c in counts)} coefficients, got {len(self.distortion)}'
            )
        if not all(
            isinstance(c, (int, float, np.floating, np.integer)) and math.isfinite(c)
            for c in self.distortion
        ):
            raise ValueError(f'distortion coefficients must be finite numbers: {self.distortion}')
        object.__setattr__(self, 'distortion', tuple(float(c) for c in self.distortion))
        for name in ('fx', 'fy', 'cx', 'cy'):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, 'width', int(self.width))
        object.__setattr__(self, 'height', int(self.height))

    # constructors (parsing lives in camera_io) ------------------------------------------------

    @classmethod
    def from_camera_info(cls, msg: Any, *, rectified: bool = False) -> CameraModel:
        """From a ``sensor_msgs/CameraInfo`` (duck-typed). ``rectified``: the image is
        ``image_rect*``, so use P and no distortion. Binning and ROI are applied."""
        from smolrgpt_core.geometry.camera_io import camera_from_info

        return camera_from_info(msg, rectified=rectified)

    @classmethod
    def from_calibration_yaml(
        cls, path: str | Path, *, rectified: bool = False, frame_id: str = ''
    ) -> CameraModel:
        """From a camera_calibration / camera_info_manager YAML file."""
        from smolrgpt_core.geometry.camera_io import camera_from_yaml

        return camera_from_yaml(path, rectified=rectified, frame_id=frame_id)

    @classmethod
    def from_intrinsics_text(
        cls, text: str, width: int, height: int, *, frame_id: str = ''
    ) -> CameraModel:
        """From ``'fx,fy,cx,cy'`` (pixels) and the image size; no distortion."""
        from smolrgpt_core.geometry.camera_io import camera_from_text

        return camera_from_text(text, width, height, frame_id=frame_id)

    def to_calibration_yaml(self, camera_name: str = 'camera') -> str:
        """The camera_info_manager YAML text of this model (R = identity, P = [K | 0])."""
        from smolrgpt_core.geometry.camera_io import camera_to_yaml

        return camera_to_yaml(self, camera_name)

    # properties -------------------------------------------------------------------------------

    @property
    def k(self) -> np.ndarray:
        """The 3x3 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def has_distortion(self) -> bool:
        return any(c != 0.0 for c in self.distortion)

    # frames of other sizes --------------------------------------------------------------------

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same lens for a frame resized to ``width`` x ``height`` (e.g. depth at a lower
        resolution). Pixel centres map as u' = (u + 0.5) * s - 0.5; distortion is in
        normalised coordinates, so it is unchanged."""
        probe = replace(self, width=width, height=height)  # validates the new size
        sx, sy = probe.width / self.width, probe.height / self.height
        return replace(
            probe,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
        )

    def check_frame(self, width: int, height: int) -> str | None:
        """A sentence when a frame of ``width`` x ``height`` does not match this model."""
        if (width, height) == (self.width, self.height):
            return None
        return (
            f'the frame is {width}x{height} but the camera model describes '
            f'{self.width}x{self.height}; scale the model (CameraModel.scaled) or send the '
            'camera_info of this stream'
        )

    # maths ------------------------------------------------------------------------------------

    def normalised(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates -> undistorted normalised coordinates (x/z, y/z), float64."""
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        if u.shape != v.shape:
            raise ValueError(f'u and v differ in length: {u.size} and {v.size}')
        if not self.has_distortion:
            return (u - self.cx) / self.fx, (v - self.cy) / self.fy
        import cv2

        pixels = np.stack([u, v], axis=1).reshape(-1, 1, 2)  # [N, 1, 2] as OpenCV wants
        d = np.array(self.distortion)
        if self.distortion_model == 'equidistant':
            out = cv2.fisheye.undistortPoints(pixels, self.k, d, criteria=_UNDISTORT_CRITERIA)
        elif hasattr(cv2, 'undistortPointsIter'):  # OpenCV 4: the iteration count is its own
            eye = np.eye(3)
            out = cv2.undistortPointsIter(pixels, self.k, d, eye, eye, _UNDISTORT_CRITERIA)
        else:  # OpenCV 5 folded it into undistortPoints
            out = cv2.undistortPoints(pixels, self.k, d, criteria=_UNDISTORT_CRITERIA)
        out = out.reshape(-1, 2)
        return out[:, 0], out[:, 1]

    def backproject(self, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixels (u, v) with z-depth ``z`` (metres) -> [N, 3] camera-frame points."""
        z = np.asarray(z, dtype=np.float64).ravel()
        _check_count(z.size)
        x, y = self.normalised(u, v)
        if x.size != z.size:
            raise ValueError(f'{x.size} pixels but {z.size} depth values')
        return np.stack([x * z, y * z, z], axis=1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] camera-frame points -> [N, 2] pixels (distorted like the raw image); points
        at or behind the camera (z <= 0) give NaN."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f'points must have shape [N, 3], got {list(points.shape)}')
        _check_count(len(points))
        out = np.full((len(points), 2), np.nan)
        front = points[:, 2] > 0
        p = points[front]
        if not len(p):
            return out
        if not self.has_distortion:
            out[front, 0] = self.fx * p[:, 0] / p[:, 2] + self.cx
            out[front, 1] = self.fy * p[:, 1] / p[:, 2] + self.cy
            return out
        import cv2

        zero = np.zeros(3)
        d = np.array(self.distortion)
        if self.distortion_model == 'equidistant':
            pixels, _ = cv2.fisheye.projectPoints(p.reshape(-1, 1, 3), zero, zero, self.k, d)
        else:
            pixels, _ = cv2.projectPoints(p, zero, zero, self.k, d)
        out[front] = pixels.reshape(-1, 2)
        return out


def _check_count(n: int) -> None:
    if n > MAX_IMAGE_PIXELS:
        raise ValueError(f'{n} points exceed the bound of {MAX_IMAGE_PIXELS} (one frame)')
