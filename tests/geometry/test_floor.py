"""The floor: RANSAC recovers tilted floors and pitched, yawed, rolled cameras."""

from __future__ import annotations

import math

from geometry_scenes import Box, Pose, Rect, Scene, camera, render
import numpy as np
import pytest

from smolrgpt_core.geometry import FloorPlane, fit_floor, measure_scene


def angle_deg(a, b) -> float:
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, abs(cos))))


def floor_in_camera(scene: Scene, pose: Pose) -> tuple[np.ndarray, float]:
    """The true floor normal (camera frame) and the camera's height above the floor plane."""
    n = np.array(scene.floor_normal) / np.linalg.norm(scene.floor_normal)
    return pose.axes() @ n, float(np.array(pose.position) @ n)


@pytest.mark.parametrize(
    ('normal', 'pose'),
    [
        ((0.0, 1.0, 0.0), Pose((0.0, 3.0, 0.0), yaw=0.0, pitch=20.0)),
        ((0.0, 1.0, 0.0), Pose((0.5, 3.6, 0.0), yaw=8.0, pitch=28.0)),
        ((0.0, 1.0, 0.0), Pose((-0.5, 2.7, 0.0), yaw=-8.0, pitch=22.0, roll=4.0)),
        ((math.sin(math.radians(5)), math.cos(math.radians(5)), 0.0), Pose(yaw=3.0, pitch=25.0)),
        ((0.0, math.cos(math.radians(6)), -math.sin(math.radians(6))), Pose(pitch=21.0)),
    ],
)
def test_tilted_floor_and_pitched_camera_are_recovered(normal, pose: Pose) -> None:
    scene = Scene(boxes=[Box((-0.6, 0.0, 5.5), (0.6, 1.2, 6.3))], floor_normal=normal)
    r = render(scene, pose, camera(320, 180))
    masks = r.masks(1)
    geometry = measure_scene(masks, r.depth_mm(), '16UC1', r.camera, ['pallet'])
    plane = geometry.floor
    assert plane is not None and plane.source == 'background'
    true_n, true_h = floor_in_camera(scene, pose)
    assert angle_deg(plane.normal, true_n) < 1.0
    assert np.dot(plane.normal, true_n) > 0  # pointing up
    assert plane.camera_height == pytest.approx(true_h, abs=0.02)
    assert plane.rms < 0.01


def test_painted_floor_regions_are_preferred_for_the_floor() -> None:
    scene = Scene(rects=[Rect(-1.5, 6.0, 1.5, 8.5)])
    pose = Pose((0.2, 3.2, 0.0), yaw=4.0, pitch=24.0)
    r = render(scene, pose, camera(320, 180))
    plane = measure_scene(r.masks(1), r.depth, '32FC1', r.camera, ['buffer']).floor
    assert plane is not None and plane.source == 'buffer'
    true_n, true_h = floor_in_camera(scene, pose)
    assert angle_deg(plane.normal, true_n) < 0.5
    assert plane.camera_height == pytest.approx(true_h, abs=0.01)


def test_fit_is_deterministic_and_ignores_outliers() -> None:
    rng = np.random.default_rng(3)
    xz = rng.uniform([-3, 4], [3, 12], size=(3000, 2))
    floor = np.stack([xz[:, 0], np.full(len(xz), 1.5), xz[:, 1]], axis=1)  # y down: floor below
    clutter = rng.uniform([-3, -1, 4], [3, 1.4, 12], size=(1500, 3))  # a third are not floor
    points = np.concatenate([floor, clutter])
    a = fit_floor(points, seed=5)
    b = fit_floor(points, seed=5)
    assert a == b
    assert a is not None and angle_deg(a.normal, (0, -1, 0)) < 0.2
    assert a.camera_height == pytest.approx(1.5, abs=0.005)


def test_no_floor_from_too_few_points_or_a_wall() -> None:
    assert fit_floor(np.zeros((10, 3))) is None
    ys, xs = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-2, 2, 40))
    wall = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 6.0)], axis=1)  # faces the camera
    assert fit_floor(wall) is None
    with pytest.raises(ValueError, match=r'\[N, 3\]'):
        fit_floor(np.zeros((10, 2)))


def test_floor_frame_round_trip_and_axes() -> None:
    plane = FloorPlane.from_normal(np.array([0.0, -0.9, -0.42]), 3.1)
    frame = plane.frame()
    rot = np.array(frame.rotation)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    points = np.array([[0.5, 1.0, 6.0], [-2.0, 0.3, 9.0]])
    np.testing.assert_allclose(frame.to_camera(frame.to_floor(points)), points, atol=1e-12)
    # the camera sits above the floor origin; a point straight ahead is forward (+z)
    np.testing.assert_allclose(frame.to_floor(np.zeros((1, 3)))[0], [0.0, 3.1, 0.0], atol=1e-12)
    assert frame.to_floor(np.array([[0.0, 0.0, 5.0]]))[0, 2] > 0
    assert frame.to_floor(np.array([[1.0, 0.0, 5.0]]))[0, 0] > 0  # camera right is floor +x
    with pytest.raises(ValueError, match='camera height'):
        FloorPlane.from_normal(np.array([0.0, -1.0, 0.0]), -1.0)
