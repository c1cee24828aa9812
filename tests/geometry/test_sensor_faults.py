"""What real sensors and segmenters do to a frame: holes in the depth, eroded masks, regions
without readings; the measurements that must survive them."""

from __future__ import annotations

import cv2
from geometry_scenes import Pose, Rect, Scene, camera, pallet, render
import numpy as np
import pytest

from smolrgpt_core.depth import encoding
from smolrgpt_core.geometry import measure_scene, relations
from smolrgpt_core.geometry.pixels import sample_region

POSE = Pose((0.0, 3.0, 0.0), yaw=0.0, pitch=24.0)
CAM = camera(640, 360)


def _labels(scene: Scene) -> list[str]:
    return [o.label for o in scene.objects]


def test_a_holed_core_falls_back_to_the_whole_mask() -> None:
    """Holes inside the eroded core leave it fewer readings than needed, the whole mask has
    enough: the region is still measured."""
    scene = Scene(boxes=[pallet(0.0, 8.0, 1.0)])
    r = render(scene, POSE, CAM)
    masks, depth = r.masks(1), r.depth_mm()
    core = cv2.erode(masks[0].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    holed = depth.copy()
    holed[core & (np.arange(CAM.height)[:, None] % 4 != 0)] = 0  # 3 rows in 4 of the core
    with_readings = int(np.count_nonzero(masks[0] & (holed > 0)))
    in_core = int(np.count_nonzero(core & (holed > 0)))
    assert in_core < with_readings
    need = (in_core + with_readings) // 2
    region = measure_scene(masks, holed, '16UC1', CAM, ['pallet'], min_points=need).regions[0]
    assert region.valid and region.n_valid >= need
    truth = POSE.to_camera(scene.boxes[0].centre[None])[0]
    assert np.linalg.norm(np.array(region.centre) - truth) < 0.1


def test_a_buffer_without_readings_is_cast_on_the_floor() -> None:
    """A painted region whose depth is all holes takes its rectangle from its outline's rays
    on the floor plane (fitted from the other painted region)."""
    scene = Scene(
        boxes=[pallet(-2.0, 8.6, 0.144)],
        rects=[Rect(-3.2, 7.5, -0.6, 10.0), Rect(0.8, 7.0, 3.6, 9.6)],
    )
    r = render(scene, POSE, CAM)
    masks, depth = r.masks(3), r.depth_mm()
    depth[masks[1]] = 0  # the left buffer has no reading at all
    regions = measure_scene(masks, depth, '16UC1', CAM, _labels(scene)).regions
    buffer = regions[1]
    assert buffer.valid and buffer.n_valid == 0 and buffer.footprint is not None
    rect = scene.rects[0]
    assert sorted(buffer.footprint.size) == pytest.approx(
        sorted((rect.x1 - rect.x0, rect.z1 - rect.z0)), abs=0.15
    )
    truth = POSE.to_camera(rect.centre[None])[0]
    assert np.linalg.norm(np.array(buffer.centre) - truth) < 0.15
    assert relations.inside(buffer, regions[0]).value
    assert not relations.inside(regions[2], regions[0]).value


def test_a_pallet_without_3d_leaves_the_others_metric() -> None:
    """count_inside tests each pallet on what it has: the measured ones in metres."""
    scene = Scene(
        boxes=[pallet(-0.3, 8.6, 1.0), pallet(3.0, 8.0, 1.0)],
        rects=[Rect(-1.6, 7.6, 1.2, 10.0)],
    )
    r = render(scene, POSE, CAM)
    masks, depth = r.masks(3), r.depth_mm()
    depth[masks[1]] = 0  # the outside pallet has no reading
    regions = measure_scene(masks, depth, '16UC1', CAM, _labels(scene)).regions
    assert regions[0].metric and not regions[1].valid and regions[2].metric
    count = relations.count_inside(regions[2], regions[:2])
    assert (count.value, count.members, count.basis, count.unit) == (1, (0,), 'image', 'px')
    metric = relations.count_inside(regions[2], regions[:1])
    assert metric.basis == 'metric' and metric.unit == 'm' and metric.margin > 0.3


@pytest.mark.parametrize('reach, hidden', [(2, False), (6, True)])
def test_occluders_a_few_pixels_off_the_mask(reach: int, hidden: bool) -> None:
    """An occluder 4 px past a mask's edge (an eroded mask, dropped readings in between) hides
    the side facing it only when the search reaches that far (painted regions look 6 px)."""
    cam = camera(160, 90)
    depth = np.full((90, 160), 5000, np.uint16)  # a wall at 5 m
    depth[:, 84:] = 3000  # something nearer, from column 84
    depth[:, 80:84] = 0  # no readings in the gap
    mask = np.zeros((90, 160), bool)
    mask[20:70, 20:80] = True
    points = sample_region(
        mask, (20, 20, 80, 70), depth, encoding('16UC1'), cam, min_points=50, erode_px=1,
        max_points=20000, trim=(5.0, 95.0), pixel_offset=0.0, occluder_px=reach,
    )  # fmt: skip
    u, v = cam.project(points.boundary).T
    right = (u > 76) & (v > 25) & (v < 65)  # the right side, off its corners
    assert right.any() and bool(points.hidden[right].all()) is hidden
    assert not points.hidden[u < 60].any()  # the other sides stay seen
