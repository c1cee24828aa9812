"""Relations in the dataset's definitions, metric and with the 2D fallback."""

from __future__ import annotations

from geometry_scenes import Box, Pose, Rect, Scene, camera, pallet, render, to_camera_centre
import numpy as np
import pytest

from smolrgpt_core.geometry import NotMeasurable, measure_scene, relations

POSE = Pose((0.0, 3.0, 0.0), yaw=-4.0, pitch=24.0)


def small_scene() -> Scene:
    """Three pallets left to right (the middle one in a buffer), a transporter on the right."""
    return Scene(
        boxes=[
            pallet(-3.0, 8.0, 0.9),  # 0: left, loose
            pallet(0.2, 9.0, 1.1),  # 1: middle, inside the buffer
            pallet(2.8, 7.0, 0.144),  # 2: right, loose
            Box((4.0, 0.0, 9.5), (4.95, 2.2, 11.0), 'transporter'),  # 3
        ],
        rects=[Rect(-1.2, 7.9, 1.6, 10.4)],  # 4: buffer
    )


@pytest.fixture(scope='module')
def scene_and_regions():
    scene = small_scene()
    r = render(scene, POSE, camera(640, 360))
    labels = [o.label for o in scene.objects]
    geometry = measure_scene(r.masks(len(labels)), r.depth_mm(), '16UC1', r.camera, labels)
    assert all(g.metric for g in geometry.regions)
    return scene, geometry.regions, r


def true_distance(a, b) -> float:
    return float(np.linalg.norm(to_camera_centre(a, POSE) - to_camera_centre(b, POSE)))


def test_distance_is_centre_to_centre(scene_and_regions) -> None:
    scene, regions, _ = scene_and_regions
    for i, j in ((0, 1), (0, 2), (1, 2), (3, 0), (3, 2), (0, 4), (2, 4)):
        got = relations.distance(regions[i], regions[j])
        want = true_distance(scene.objects[i], scene.objects[j])
        assert got.value == pytest.approx(want, rel=0.03, abs=0.05), (i, j)
        assert got.basis == 'metric' and got.unit == 'm'


def test_a_pallet_inside_a_buffer_is_at_zero(scene_and_regions) -> None:
    _, regions, _ = scene_and_regions
    buffer = regions[4]
    zero = relations.distance(regions[1], buffer)
    assert zero.value == 0.0 and not zero.ambiguous and zero.margin > 0.3
    assert relations.distance(buffer, regions[1]).value == 0.0  # either order
    assert relations.inside(buffer, regions[1]).value
    assert not relations.inside(buffer, regions[0]).value
    assert not relations.inside(buffer, regions[2]).value
    count = relations.count_inside(buffer, [regions[0], regions[1], regions[2]])
    assert (count.value, count.members, count.basis) == (1, (1,), 'metric')


def test_left_right_and_the_extremes(scene_and_regions) -> None:
    _, regions, _ = scene_and_regions
    pallets = regions[:3]
    left = relations.is_left_of(regions[0], regions[1])
    assert left.value and left.margin > 2.0 and not left.ambiguous
    assert not relations.is_left_of(regions[2], regions[1]).value
    assert relations.order_left_to_right(pallets).value == (0, 1, 2)
    shuffled = [pallets[2], pallets[0], pallets[1]]
    assert relations.order_left_to_right(shuffled).members == (0, 1, 2)
    assert relations.leftmost(shuffled).value == 1
    assert relations.rightmost(shuffled).value == 0
    assert relations.middle(shuffled).value == 2
    assert relations.middle(pallets[:2]).ambiguous  # two have no middle one


def test_closest_to_the_transporter(scene_and_regions) -> None:
    scene, regions, _ = scene_and_regions
    pallets = regions[:3]
    got = relations.closest(regions[3], pallets)
    truth = int(np.argmin([true_distance(scene.objects[3], p) for p in scene.objects[:3]]))
    assert got.value == truth == 2
    assert got.margin > 0.5 and not got.ambiguous


def test_close_calls_are_flagged() -> None:
    scene = Scene(boxes=[pallet(0.0, 7.0, 1.0), pallet(0.08, 10.0, 1.0)])
    r = render(scene, Pose((0.0, 3.0, 0.0), pitch=24.0), camera(640, 360))
    regions = measure_scene(r.masks(2), r.depth_mm(), '16UC1', r.camera, ['pallet'] * 2).regions
    rel = relations.is_left_of(regions[0], regions[1])
    assert rel.ambiguous and rel.margin < relations.MIN_GAP_M


def test_two_dimensional_fallback(scene_and_regions) -> None:
    scene, _, r = scene_and_regions
    labels = [o.label for o in scene.objects]
    flat = measure_scene(r.masks(len(labels)), None, '16UC1', None, labels).regions
    assert not any(g.metric for g in flat)
    rel = relations.is_left_of(flat[0], flat[1])
    assert rel.value and rel.basis == 'image' and rel.unit == 'px' and rel.margin > 50
    assert relations.order_left_to_right(flat[:3]).value == (0, 1, 2)
    assert relations.rightmost(flat[:4]).value == 3
    contained = relations.count_inside(flat[4], flat[:3])
    assert (contained.value, contained.members, contained.basis) == (1, (1,), 'image')
    with pytest.raises(NotMeasurable, match='metric answer needs depth'):
        relations.distance(flat[0], flat[1])
    with pytest.raises(NotMeasurable):
        relations.closest(flat[3], flat[:3])


def test_mixed_metric_and_image_regions_fall_back_together(scene_and_regions) -> None:
    scene, regions, r = scene_and_regions
    labels = [o.label for o in scene.objects]
    flat = measure_scene(r.masks(len(labels)), None, '16UC1', None, labels).regions
    rel = relations.order_left_to_right([regions[0], flat[1], regions[2]])
    assert rel.basis == 'image' and rel.value == (0, 1, 2)
