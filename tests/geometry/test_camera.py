"""CameraModel: projection maths, distortion, CameraInfo / calibration YAML / text parsing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from smolrgpt_core.geometry import CameraModel

K = [600.0, 0.0, 319.5, 0.0, 605.0, 239.5, 0.0, 0.0, 1.0]
P = [590.0, 0.0, 322.0, 0.0, 0.0, 595.0, 236.0, 0.0, 0.0, 0.0, 1.0, 0.0]
D = [-0.28, 0.07, 0.0008, -0.0005, 0.0]


def info(**changes) -> SimpleNamespace:
    fields = {
        'header': SimpleNamespace(frame_id='camera_color_optical_frame'),
        'width': 640,
        'height': 480,
        'distortion_model': 'plumb_bob',
        'd': list(D),
        'k': list(K),
        'r': [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
        'p': list(P),
        'binning_x': 0,
        'binning_y': 0,
        'roi': SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0, do_rectify=False),
    }
    fields.update(changes)
    return SimpleNamespace(**fields)


def grid_points() -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(-1.5, 1.5, 7), np.linspace(-1.0, 1.0, 5))
    z = 2.0 + 0.3 * xs**2 + 0.5 * ys  # varied depth, all in front
    return np.stack([xs.ravel(), ys.ravel(), z.ravel()], axis=1)


def test_pinhole_backprojection_is_the_textbook_formula() -> None:
    cam = CameraModel(640, 480, 500.0, 520.0, 320.0, 240.0)
    u, v, z = np.array([0.0, 320.0, 639.0]), np.array([0.0, 240.0, 100.0]), np.array([1, 2, 4.0])
    got = cam.backproject(u, v, z)
    want = np.stack([(u - 320) * z / 500, (v - 240) * z / 520, z], axis=1)
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(cam.project(got), np.stack([u, v], axis=1), atol=1e-9)


@pytest.mark.parametrize(
    ('model', 'coefficients'),
    [
        ('plumb_bob', D),
        ('rational_polynomial', [0.3, -0.05, 0.0007, 0.0003, 0.01, 0.65, -0.04, 0.02]),
        ('equidistant', [0.05, -0.01, 0.002, -0.0005]),
    ],
)
def test_distorted_round_trip(model: str, coefficients: list[float]) -> None:
    cam = CameraModel(640, 480, 600.0, 605.0, 319.5, 239.5, model, tuple(coefficients))
    assert cam.has_distortion
    points = grid_points()
    pixels = cam.project(points)
    # distortion moves the corners by many pixels, so the undistortion really does work
    pinhole = CameraModel(640, 480, 600.0, 605.0, 319.5, 239.5).project(points)
    assert np.abs(pixels - pinhole).max() > 5.0
    back = cam.backproject(pixels[:, 0], pixels[:, 1], points[:, 2])
    np.testing.assert_allclose(back, points, atol=1e-6)


def test_points_behind_the_camera_do_not_project() -> None:
    cam = CameraModel(64, 48, 50.0, 50.0, 32.0, 24.0)
    out = cam.project(np.array([[0.0, 0.0, -1.0], [0.1, 0.0, 1.0]]))
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_camera_info_k_and_d() -> None:
    cam = CameraModel.from_camera_info(info())
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (600.0, 605.0, 319.5, 239.5)
    assert cam.distortion_model == 'plumb_bob' and cam.distortion == tuple(D)
    assert (cam.width, cam.height, cam.frame_id) == (640, 480, 'camera_color_optical_frame')


def test_camera_info_rectified_uses_p_and_no_distortion() -> None:
    cam = CameraModel.from_camera_info(info(), rectified=True)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (590.0, 595.0, 322.0, 236.0)
    assert not cam.has_distortion and cam.distortion_model == ''


def test_camera_info_binning_and_roi() -> None:
    roi = SimpleNamespace(x_offset=100, y_offset=40, width=400, height=300, do_rectify=False)
    cam = CameraModel.from_camera_info(info(binning_x=2, binning_y=2, roi=roi))
    assert (cam.width, cam.height) == (200, 150)
    assert cam.fx == pytest.approx(300.0) and cam.fy == pytest.approx(302.5)
    assert cam.cx == pytest.approx((319.5 - 100) / 2) and cam.cy == pytest.approx((239.5 - 40) / 2)


def test_camera_info_accepts_a_mapping_and_ros1_names() -> None:
    msg = {'width': 640, 'height': 480, 'K': K, 'D': [], 'distortion_model': ''}
    cam = CameraModel.from_camera_info(msg)
    assert (cam.fx, cam.cx) == (600.0, 319.5) and not cam.has_distortion


@pytest.mark.parametrize(
    ('changes', 'words'),
    [
        ({'k': [0.0] * 9}, 'uncalibrated'),
        ({'k': K[:8]}, 'camera_info k must have 9'),
        ({'k': [float('nan'), *K[1:]]}, 'non-finite'),
        ({'k': [-600.0, *K[1:]]}, 'focal lengths must be positive'),
        ({'d': [0.1, 0.2, 0.3]}, 'coefficients'),
        ({'distortion_model': 'fancy_lens'}, 'fancy_lens'),
        ({'width': 0}, 'camera_info width'),
        ({'width': 10**6}, 'camera_info width'),
        ({'binning_x': 1000}, 'binning_x'),
        ({'roi': SimpleNamespace(x_offset=600, y_offset=0, width=100, height=10)}, 'roi'),
    ],
)
def test_camera_info_errors_name_the_field(changes: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        CameraModel.from_camera_info(info(**changes))


def test_rectified_needs_a_calibrated_p() -> None:
    with pytest.raises(ValueError, match='camera_info p is all zeros'):
        CameraModel.from_camera_info(info(p=[0.0] * 12), rectified=True)


def test_calibration_yaml_round_trip(tmp_path) -> None:
    cam = CameraModel(1280, 720, 910.2, 909.8, 641.3, 362.9, 'plumb_bob', tuple(D), 'cam')
    path = tmp_path / 'cam.yaml'
    path.write_text(cam.to_calibration_yaml('front'), encoding='utf-8')
    back = CameraModel.from_calibration_yaml(path, frame_id='cam')
    assert back == cam
    plain = CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0)
    path.write_text(plain.to_calibration_yaml(), encoding='utf-8')
    assert CameraModel.from_calibration_yaml(path) == plain


def test_calibration_yaml_as_camera_calibration_writes_it(tmp_path) -> None:
    text = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [600.0, 0.0, 319.5, 0.0, 605.0, 239.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.28, 0.07, 0.0008, -0.0005, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [590.0, 0.0, 322.0, 0.0, 0.0, 595.0, 236.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""
    path = tmp_path / 'ost.yaml'
    path.write_text(text, encoding='utf-8')
    raw = CameraModel.from_calibration_yaml(path)
    assert raw == CameraModel.from_camera_info(info(header=SimpleNamespace(frame_id='')))
    rect = CameraModel.from_calibration_yaml(path, rectified=True)
    assert (rect.fx, rect.cx, rect.has_distortion) == (590.0, 322.0, False)


@pytest.mark.parametrize(
    ('text', 'words'),
    [
        ('image_width: 640\n', 'camera_matrix'),
        ('[1, 2]\n', 'does not hold a mapping'),
        ('image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [1]}\n',
         'camera_matrix must be 3x3'),
        (': : :\n', 'not readable YAML'),
    ],
)  # fmt: skip
def test_calibration_yaml_errors(tmp_path, text: str, words: str) -> None:
    path = tmp_path / 'bad.yaml'
    path.write_text(text, encoding='utf-8')
    with pytest.raises(ValueError, match=words):
        CameraModel.from_calibration_yaml(path)


def test_intrinsics_text() -> None:
    cam = CameraModel.from_intrinsics_text(' 500, 501.5 ,320,240 ', 640, 480)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width) == (500.0, 501.5, 320.0, 240.0, 640)
    for bad, words in (('500,500,320', 'four numbers'), ('a,b,c,d', 'four numbers'),
                       ('inf,500,320,240', 'finite'), ('0,500,320,240', 'positive')):  # fmt: skip
        with pytest.raises(ValueError, match=words):
            CameraModel.from_intrinsics_text(bad, 640, 480)


def test_scaled_and_check_frame() -> None:
    cam = CameraModel(1280, 720, 900.0, 900.0, 639.5, 359.5, 'plumb_bob', tuple(D))
    half = cam.scaled(640, 360)
    assert (half.fx, half.fy, half.cx, half.cy) == (450.0, 450.0, 319.5, 179.5)
    assert half.distortion == cam.distortion
    # the same ray through the same physical spot of the sensor in both
    ray_full = cam.backproject(np.array([100.5]), np.array([200.5]), np.array([1.0]))
    ray_half = half.backproject(np.array([50.0]), np.array([100.0]), np.array([1.0]))
    np.testing.assert_allclose(ray_full, ray_half, atol=1e-9)
    assert half.check_frame(640, 360) is None
    assert 'camera model describes 640x360' in half.check_frame(1280, 720)


def test_bounds_on_the_model_itself() -> None:
    with pytest.raises(ValueError, match='width'):
        CameraModel(0, 480, 500.0, 500.0, 320.0, 240.0)
    with pytest.raises(ValueError, match='exceeds'):
        CameraModel(60000, 60000, 500.0, 500.0, 320.0, 240.0)
    with pytest.raises(ValueError, match='far outside'):
        CameraModel(640, 480, 500.0, 500.0, 320000.0, 240.0)
    with pytest.raises(ValueError, match='u and v differ'):
        CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0).normalised(np.zeros(2), np.zeros(3))
