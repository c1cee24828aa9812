"""Depth image encodings used on disk, and their inverses.

* ``u8``: the warehouse dataset's convention, an 8-bit ``L`` PNG with near = dark and far =
  bright, linear between a per-image ``[near, far]`` range in metres (the real files do not
  record the range; our synthetic scenes do, in the scene JSON);
* ``mm``: 16-bit PNG in millimetres, 0 = no reading, as RGB-D cameras (and the ROS node) give it.
"""

from __future__ import annotations

import numpy as np

MM_PER_M = 1000.0


def encode_u8(depth_m: np.ndarray, near: float, far: float) -> np.ndarray:
    """float metres -> uint8, 0 at ``near`` and 255 at ``far`` (values outside are clipped)."""
    if not far > near:
        raise ValueError(f'depth range must have far > near, got [{near}, {far}]')
    scaled = (np.asarray(depth_m, dtype=np.float64) - near) * (255.0 / (far - near))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def decode_u8(image: np.ndarray, near: float, far: float) -> np.ndarray:
    """uint8 depth image -> float32 metres (resolution (far - near) / 255)."""
    return (near + np.asarray(image, dtype=np.float32) * ((far - near) / 255.0)).astype(np.float32)


def encode_mm(depth_m: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres; non-finite or out-of-range values become 0."""
    depth = np.asarray(depth_m, dtype=np.float64)
    mm = np.rint(depth * MM_PER_M)
    valid = np.isfinite(mm) & (mm > 0) & (mm <= np.iinfo(np.uint16).max)
    return np.where(valid, mm, 0).astype(np.uint16)


def decode_mm(image: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float32 metres; 0 (no reading) becomes NaN."""
    mm = np.asarray(image)
    metres = mm.astype(np.float32) / np.float32(MM_PER_M)
    return np.where(mm == 0, np.float32(np.nan), metres)
