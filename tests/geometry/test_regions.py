"""measure_scene on analytic scenes: centres, footprints, tops, validity and input checks."""

from __future__ import annotations

from geometry_scenes import Box, Pose, Rect, Scene, camera, pallet, render, to_camera_centre
import numpy as np
import pytest

from smolrgpt_core.geometry import CameraModel, measure_regions, measure_scene

POSE = Pose((0.3, 3.2, 0.0), yaw=5.0, pitch=24.0)
CAM = camera(640, 360)


def scene_with_buffer() -> Scene:
    return Scene(
        boxes=[
            pallet(-1.5, 8.0, 1.0),
            pallet(1.0, 9.0, 0.144),
            Box((2.6, 0.0, 6.5), (3.55, 2.2, 8.0), 'transporter'),
        ],
        rects=[Rect(-0.2, 7.8, 2.4, 10.2)],
    )


def measured(scene: Scene, pose: Pose = POSE, cam: CameraModel = CAM, **options):
    r = render(scene, pose, cam)
    labels = [o.label for o in scene.objects]
    return measure_scene(r.masks(len(labels)), r.depth_mm(), '16UC1', r.camera, labels, **options)


@pytest.mark.parametrize('with_buffer', [True, False])
def test_known_boxes_give_their_centres(with_buffer: bool) -> None:
    scene = scene_with_buffer()
    if not with_buffer:
        scene.rects = []
    geometry = measured(scene)
    assert geometry.floor.source == ('buffer' if with_buffer else 'background')
    for obj, region in zip(scene.objects, geometry.regions, strict=True):
        assert region.valid, region.reason
        error = np.linalg.norm(np.array(region.centre) - to_camera_centre(obj, POSE))
        assert error < 0.05, (obj, region.centre)
        assert region.extent_frame == 'floor'
    tops = [r.top_height for r in geometry.regions]
    assert tops[0] == pytest.approx(1.0, abs=0.02) and tops[1] == pytest.approx(0.144, abs=0.02)
    assert tops[2] == pytest.approx(2.2, abs=0.02)
    if with_buffer:
        assert tops[3] == 0.0 and geometry.regions[3].centre_floor[1] == 0.0


def test_footprints_are_the_boxes() -> None:
    geometry = measured(scene_with_buffer())
    first, _, truck, buffer = geometry.regions
    assert sorted(first.footprint.size) == pytest.approx([0.8, 1.2], abs=0.05)
    assert sorted(truck.footprint.size) == pytest.approx([0.95, 1.5], abs=0.05)
    # the floor at 8-10 m is seen at a grazing angle: a pixel spans about 9 cm of it
    assert sorted(buffer.footprint.size) == pytest.approx([2.4, 2.6], abs=0.1)


def test_image_quantities() -> None:
    scene = scene_with_buffer()
    r = render(scene, POSE, CAM)
    masks = r.masks(len(scene.objects))
    regions = measure_regions(masks, r.depth_mm(), '16UC1', r.camera, ['pallet'] * 4)
    for mask, region in zip(masks, regions, strict=True):
        rows, cols = np.nonzero(mask)
        assert region.mask_area == mask.sum()
        assert region.mask_centroid == pytest.approx((cols.mean(), rows.mean()))
        assert region.mask_bbox == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert region.image_base[1] >= np.percentile(rows, 90)  # the bottom of the mask


def test_metres_and_millimetres_agree_and_holes_are_skipped() -> None:
    scene = scene_with_buffer()
    r = render(scene, POSE, CAM)
    labels = [o.label for o in scene.objects]
    masks = r.masks(len(labels))
    mm = measure_scene(masks, r.depth_mm(), '16UC1', r.camera, labels)
    holes = r.depth.copy()
    holes[::3, ::2] = np.nan  # a sixth of the pixels have no reading
    metres = measure_scene(masks, holes, '32FC1', r.camera, labels)
    for a, b in zip(mm.regions, metres.regions, strict=True):
        assert np.linalg.norm(np.array(a.centre) - np.array(b.centre)) < 0.02
        assert b.n_valid < a.n_valid


def test_bleeding_masks_keep_their_centres() -> None:
    """Masks 2 px too large (detector masks are 1-3 px off) spill onto the floor behind the
    objects; the cut at depth jumps keeps the spill out, where the erosion alone does not."""
    import cv2

    scene = Scene(boxes=[pallet(-0.5, 7.0, 1.2), pallet(1.5, 9.5, 0.8)])
    r = render(scene, POSE, CAM)
    kernel = np.ones((5, 5), np.uint8)
    grown = np.stack([cv2.dilate(m.astype(np.uint8), kernel) for m in r.masks(2)])
    args = (grown, r.depth_mm(), '16UC1', r.camera, ['pallet', 'pallet'])
    errors = {
        regrow: [
            np.linalg.norm(np.array(region.centre) - to_camera_centre(obj, POSE))
            for obj, region in zip(scene.objects, measure_scene(*args, regrow_px=regrow).regions)
        ]
        for regrow in (0, 3)
    }
    assert max(errors[3]) < 0.05
    assert max(errors[0]) > 0.1  # without the cut the spill drags the footprint back


def test_too_few_points_empty_masks_and_no_depth_say_why() -> None:
    scene = Scene(boxes=[pallet(0.0, 8.0, 1.0)])
    r = render(scene, POSE, CAM)
    tiny = np.zeros((3, CAM.height, CAM.width), dtype=bool)
    tiny[0] = r.masks(1)[0]
    tiny[1, 100:104, 200:205] = True  # 20 pixels
    regions = measure_regions(tiny, r.depth_mm(), '16UC1', r.camera, ['pallet'] * 3)
    assert regions[0].valid and regions[0].metric
    assert not regions[1].valid and 'at least 50 needed' in regions[1].reason
    assert regions[1].mask_centroid is not None and regions[1].centre is None
    assert not regions[2].valid and regions[2].reason == 'the mask is empty'
    no_depth = measure_regions(tiny, None, '16UC1', None, ['pallet'] * 3)
    assert [g.reason for g in no_depth][:2] == ['no metric depth and camera model'] * 2
    assert no_depth[0].mask_centroid == regions[0].mask_centroid
    mono = measure_scene(tiny, r.depth_mm().astype(np.uint8), 'mono8', r.camera, ['a'] * 3)
    assert mono.floor is None and 'not metric' in mono.regions[0].reason


def test_input_checks_are_sentences() -> None:
    r = render(Scene(boxes=[pallet(0.0, 8.0)]), POSE, CAM)
    masks, depth = r.masks(1), r.depth_mm()
    cases = [
        ((masks, depth, '16UC1', r.camera, ['a', 'b']), '1 masks but 2 labels'),
        ((masks[:, :100], depth, '16UC1', r.camera, ['a']), 'depth is 640x360 but masks'),
        ((masks, depth, '16UC1', r.camera.scaled(320, 180), ['a']), 'camera model describes'),
        ((masks.astype(np.float32), depth, '16UC1', r.camera, ['a']), 'bool or uint8'),
        ((masks, depth.astype(np.float32), '16UC1', r.camera, ['a']), 'must be uint16'),
        ((masks, depth, 'rgb8', r.camera, ['a']), 'unsupported depth encoding'),
        ((np.zeros((300, 4, 4), bool), None, '16UC1', None, ['a'] * 300), 'exceed the bound'),
    ]
    for args, words in cases:
        with pytest.raises(ValueError, match=words):
            measure_scene(*args)
    with pytest.raises(ValueError, match='max_points'):
        measure_scene(masks, depth, '16UC1', r.camera, ['a'], max_points=10**9)


def test_truncated_and_hidden_flags() -> None:
    tall = Box((-1.0, 0.0, 14.0), (1.0, 3.6, 15.0), 'shelf')
    scene = Scene(boxes=[pallet(-4.4, 6.0, 1.0), tall])
    geometry = measured(scene, Pose((0.3, 3.2, 0.0), yaw=5.0, pitch=20.0))
    cut, tall = geometry.regions
    assert cut.truncated and not tall.truncated and cut.valid
    assert tall.hidden_back and not cut.hidden_back  # its top is above the camera
