"""CameraModel from ``sensor_msgs/CameraInfo``, calibration YAML and ``'fx,fy,cx,cy'`` text.

Binning and ROI follow ROS ``image_geometry``: a zero ROI (or binning 0) means the full
resolution; the ROI is cut from the full-resolution calibrated image first, then binning
divides focal lengths, principal point and size. An all-zero K is an uncalibrated camera.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
from pathlib import Path
from typing import Any

from smolrgpt_core.geometry.camera import CameraModel

MAX_YAML_BYTES = 1 << 20  # a calibration file is a few hundred bytes
MAX_BINNING = 64
_SKEW_TOLERANCE = 1e-3  # |K[0,1]| / fx below this is calibration noise, not a skewed sensor


def _field(msg: Any, *names: str, default: Any = None) -> Any:
    """``msg.name`` or ``msg[name]`` for the first name present (ROS 2 lower case, ROS 1 K/D/P)."""
    for name in names:
        if isinstance(msg, Mapping):
            if name in msg:
                return msg[name]
        elif hasattr(msg, name):
            return getattr(msg, name)
    return default


def _numbers(value: Any, field: str, count: int | None = None) -> list[float]:
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f'{field} must be a list of numbers, got {value!r}') from None
    if count is not None and len(values) != count:
        raise ValueError(f'{field} must have {count} numbers, got {len(values)}')
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f'{field} holds a non-finite number: {values}')
    return values


def _whole(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ValueError(f'{field} must be a whole number, got {value!r}') from None
        if not as_float.is_integer():
            raise ValueError(f'{field} must be a whole number, got {value!r}')
        value = int(as_float)
    if not lo <= value <= hi:
        raise ValueError(f'{field} must be within {lo}..{hi}, got {value}')
    return value


def _intrinsics(k: list[float], field: str) -> tuple[float, float, float, float]:
    if not any(k):
        raise ValueError(f'{field} is all zeros: the camera is uncalibrated')
    fx, skew, cx, _, fy, cy = k[0], k[1], k[2], k[3], k[4], k[5]
    if fx > 0 and abs(skew) > _SKEW_TOLERANCE * fx:
        raise ValueError(f'{field} has a skew of {skew}; skewed pixels are not supported')
    return fx, fy, cx, cy


def camera_from_info(msg: Any, *, rectified: bool = False) -> CameraModel:
    """See ``CameraModel.from_camera_info``."""
    width = _whole(_field(msg, 'width'), 'camera_info width', 1, 65535)
    height = _whole(_field(msg, 'height'), 'camera_info height', 1, 65535)
    if rectified:
        p = _numbers(_field(msg, 'p', 'P', default=()), 'camera_info p', 12)
        if not any(p):
            raise ValueError('camera_info p is all zeros: no rectified projection is calibrated')
        fx, cx, fy, cy = p[0], p[2], p[5], p[6]
        _intrinsics([fx, p[1], cx, 0.0, fy, cy], 'camera_info p')
        model, coefficients = '', []
    else:
        k = _numbers(_field(msg, 'k', 'K', default=()), 'camera_info k', 9)
        fx, fy, cx, cy = _intrinsics(k, 'camera_info k')
        model = str(_field(msg, 'distortion_model', default='') or '')
        coefficients = _numbers(_field(msg, 'd', 'D', default=()), 'camera_info d')
        if not any(coefficients):
            # a named model with zero coefficients distorts nothing: one spelling for 'none'
            model, coefficients = '', []

    bx = _whole(_field(msg, 'binning_x', default=0) or 1, 'camera_info binning_x', 1, MAX_BINNING)
    by = _whole(_field(msg, 'binning_y', default=0) or 1, 'camera_info binning_y', 1, MAX_BINNING)
    roi = _field(msg, 'roi')
    x0 = y0 = 0
    roi_w, roi_h = width, height
    if roi is not None:
        x0 = _whole(_field(roi, 'x_offset', default=0), 'camera_info roi.x_offset', 0, width)
        y0 = _whole(_field(roi, 'y_offset', default=0), 'camera_info roi.y_offset', 0, height)
        rw = _whole(_field(roi, 'width', default=0), 'camera_info roi.width', 0, width)
        rh = _whole(_field(roi, 'height', default=0), 'camera_info roi.height', 0, height)
        if (x0, y0, rw, rh) != (0, 0, 0, 0):
            if rw == 0 or rh == 0:
                raise ValueError(f'camera_info roi has an empty size ({rw}x{rh})')
            if x0 + rw > width or y0 + rh > height:
                raise ValueError(
                    f'camera_info roi ({x0}, {y0}, {rw}x{rh}) reaches outside the '
                    f'{width}x{height} image'
                )
            roi_w, roi_h = rw, rh
    header = _field(msg, 'header')
    frame_id = str(_field(header, 'frame_id', default='') or '') if header is not None else ''
    try:
        return CameraModel(
            width=max(1, roi_w // bx),
            height=max(1, roi_h // by),
            fx=fx / bx,
            fy=fy / by,
            cx=(cx - x0) / bx,
            cy=(cy - y0) / by,
            distortion_model=model,
            distortion=tuple(coefficients),
            frame_id=frame_id,
        )
    except ValueError as exc:
        raise ValueError(f'camera_info: {exc}') from None


def _matrix(doc: Mapping[str, Any], key: str, rows: int, cols: int | None) -> list[float]:
    block = doc.get(key)
    if not isinstance(block, Mapping) or 'data' not in block:
        raise ValueError(f'calibration {key} must be a mapping with rows, cols and data')
    data = _numbers(block['data'], f'calibration {key}.data')
    r = _whole(block.get('rows', rows), f'calibration {key}.rows', 1, 16)
    c = _whole(block.get('cols', len(data) // max(r, 1)), f'calibration {key}.cols', 0, 16)
    if r != rows or (cols is not None and c != cols) or len(data) != r * c:
        want = f'{rows}x{cols}' if cols is not None else f'{rows}xN'
        raise ValueError(f'calibration {key} must be {want} with rows*cols numbers')
    return data


def camera_from_yaml(
    path: str | Path, *, rectified: bool = False, frame_id: str = ''
) -> CameraModel:
    """See ``CameraModel.from_calibration_yaml``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f'calibration file {path} does not exist')
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ValueError(f'calibration file {path} is larger than {MAX_YAML_BYTES} bytes')
    try:
        doc = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f'calibration file {path} is not readable YAML ({exc})') from None
    if not isinstance(doc, Mapping):
        raise ValueError(f'calibration file {path} does not hold a mapping')
    try:
        return camera_from_calibration(doc, rectified=rectified, frame_id=frame_id)
    except ValueError as exc:
        raise ValueError(f'{path}: {exc}') from None


def camera_from_calibration(
    doc: Mapping[str, Any], *, rectified: bool = False, frame_id: str = ''
) -> CameraModel:
    """A parsed camera_info_manager document -> CameraModel."""
    info: dict[str, Any] = {
        'width': doc.get('image_width'),
        'height': doc.get('image_height'),
        'k': _matrix(doc, 'camera_matrix', 3, 3),
        'distortion_model': doc.get('distortion_model', ''),
        'd': _matrix(doc, 'distortion_coefficients', 1, None)
        if 'distortion_coefficients' in doc
        else [],
        'header': {'frame_id': frame_id},
    }
    if 'rectification_matrix' in doc:
        _matrix(doc, 'rectification_matrix', 3, 3)  # checked for shape; R is not applied
    if rectified or 'projection_matrix' in doc:
        info['p'] = _matrix(doc, 'projection_matrix', 3, 4)
    for key, name in (('width', 'image_width'), ('height', 'image_height')):
        if info[key] is None:
            raise ValueError(f'calibration {name} is missing')
    try:
        return camera_from_info(info, rectified=rectified)
    except ValueError as exc:
        raise ValueError(str(exc).replace('camera_info', 'calibration', 1)) from None


def camera_to_yaml(camera: CameraModel, camera_name: str = 'camera') -> str:
    """See ``CameraModel.to_calibration_yaml``."""
    import yaml

    k = camera.k.ravel().tolist()
    p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    doc = {
        'image_width': camera.width,
        'image_height': camera.height,
        'camera_name': camera_name,
        'camera_matrix': {'rows': 3, 'cols': 3, 'data': k},
        'distortion_model': camera.distortion_model or 'plumb_bob',
        'distortion_coefficients': {
            'rows': 1,
            'cols': len(camera.distortion) or 5,
            'data': list(camera.distortion) or [0.0] * 5,
        },
        'rectification_matrix': {'rows': 3, 'cols': 3, 'data': [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]},
        'projection_matrix': {'rows': 3, 'cols': 4, 'data': p},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def camera_from_text(text: str, width: int, height: int, *, frame_id: str = '') -> CameraModel:
    """See ``CameraModel.from_intrinsics_text``."""
    if not isinstance(text, str) or len(text) > 256:
        raise ValueError('intrinsics must be a short text "fx,fy,cx,cy"')
    parts: Sequence[str] = [p for p in text.replace(' ', '').split(',')]
    if len(parts) != 4:
        raise ValueError(f'intrinsics must be four numbers "fx,fy,cx,cy", got {text!r}')
    values = _numbers_text(parts, text)
    try:
        return CameraModel(width, height, *values, frame_id=frame_id)
    except ValueError as exc:
        raise ValueError(f'intrinsics {text!r}: {exc}') from None


def _numbers_text(parts: Sequence[str], text: str) -> list[float]:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f'intrinsics must be four numbers "fx,fy,cx,cy", got {text!r}') from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f'intrinsics must be finite numbers, got {text!r}')
    return values
