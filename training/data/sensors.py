"""What a robot's sensors would deliver for a dataset image: RGB, metric depth, the camera's
intrinsics. The synthetic scenes store millimetre depth (``depth_mm/``) and the intrinsics
(``scenes/<image>.json``, the ``intrinsics`` entry only: what a driver publishes as
CameraInfo) beside the dataset-style 8-bit depth; the NVIDIA data has neither, so its stored
8-bit depth and no intrinsics are what there is. Ground truth is never read here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.perturb import Perturbation, perturb_depth_mm


def depth_mm_path(rgb_path: Path) -> Path | None:
    path = rgb_path.parent.parent / 'depth_mm' / rgb_path.name
    return path if path.is_file() else None


def model_depth_path(rgb_path: Path, stored_depth_path: Path | None, metric: bool) -> Path:
    """The depth file a model trains on: the millimetre PNG for a checkpoint with
    ``depth_input`` 'metric' (its fixed range maps it to 8 bits), else the dataset's 8-bit
    depth. ValueError naming the image when that file does not exist."""
    if metric:
        path = depth_mm_path(rgb_path)
        if path is None:
            raise ValueError(
                f'{rgb_path}: no millimetre depth (depth_mm/{rgb_path.name}) for a model with '
                'depth_input "metric"; only datasets with metric depth (e.g. smolrgpt synth) '
                'can train one'
            )
        return path
    if stored_depth_path is None:
        raise ValueError(f'{rgb_path}: no depth image')
    return stored_depth_path


def scene_intrinsics(rgb_path: Path) -> dict[str, float] | None:
    """fx, fy, cx, cy, width, height of the scene's camera, or None without a scene file."""
    scene = rgb_path.parent.parent / 'scenes' / (rgb_path.stem + '.json')
    if not scene.is_file():
        return None
    try:
        entry = json.loads(scene.read_text(encoding='utf-8'))['intrinsics']
        return {key: float(entry[key]) for key in ('fx', 'fy', 'cx', 'cy', 'width', 'height')}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f'{scene}: no readable intrinsics ({exc})') from exc


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.array(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # SyntaxError is what PIL raises for a broken PNG chunk
        raise ValueError(f'{path}: not a readable image ({exc})') from exc


def sensor_depth(
    rgb_path: Path,
    stored_depth_path: Path | None,
    shape: tuple[int, int],
    perturbation: Perturbation | None = None,
    rng: np.random.Generator | None = None,
    *,
    metric: bool = True,
) -> tuple[np.ndarray, str]:
    """(depth, encoding): 16UC1 millimetres when the dataset has them and ``metric`` (perturbed
    when asked), else the stored 8-bit depth (mono8), else a flat mid-grey image."""
    mm = depth_mm_path(rgb_path) if metric else None
    if mm is not None:
        depth = _load(mm).astype(np.uint16)
        if perturbation is not None:
            depth = perturb_depth_mm(depth, perturbation, rng or np.random.default_rng(0))
        return np.ascontiguousarray(depth), '16UC1'
    if stored_depth_path is None:
        return np.full(shape, 128, np.uint8), 'mono8'
    depth = _load(stored_depth_path)
    depth = depth[..., 0] if depth.ndim == 3 else depth
    return np.ascontiguousarray(depth.astype(np.uint8)), 'mono8'


def camera_model(rgb_path: Path) -> object:
    """The scene camera as a ``smolrgpt_core.geometry.CameraModel``, or None."""
    k = scene_intrinsics(rgb_path)
    if k is None:
        return None
    from smolrgpt_core.geometry import CameraModel

    text = f'{k["fx"]},{k["fy"]},{k["cx"]},{k["cy"]}'
    return CameraModel.from_intrinsics_text(text, int(k['width']), int(k['height']))
