"""Class priors: the YAML, and growing a partly hidden pallet to its size on the hidden side."""

from __future__ import annotations

from geometry_scenes import Box, Pose, Scene, camera, pallet, render, to_camera_centre
import numpy as np
import pytest

from smolrgpt_core.geometry import load_class_priors, measure_scene
from smolrgpt_core.geometry.priors import default_priors_path, parse_class_priors

POSE = Pose((0.0, 3.0, 0.0), yaw=2.0, pitch=24.0)


def test_the_shipped_priors_file() -> None:
    priors = load_class_priors()
    assert default_priors_path().name == 'class_priors.yaml'
    pallet_prior = priors.get('pallet')
    assert pallet_prior.footprint_m == (1.2, 0.8) and pallet_prior.min_height_m == 0.144
    assert priors.get('buffer').footprint_m is None
    assert priors.get('forklift') is None


@pytest.mark.parametrize(
    ('doc', 'words'),
    [
        ([1, 2], 'mapping of class labels'),
        ({'pallet': {'footprint_m': [1.2]}}, r'\[long, short\]'),
        ({'pallet': {'footprint_m': [1.2, -1]}}, 'within'),
        ({'pallet': {'min_height_m': 'tall'}}, 'number of metres'),
        ({'pallet': {'height': 1}}, 'unknown keys'),
    ],
)
def test_bad_priors_are_refused(doc, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_class_priors(doc)


def occluded_scene(hide: str) -> Scene:
    """A pallet with a load whose left or right half hides behind a taller box in front."""
    target = pallet(0.0, 9.0, 0.9)
    x = -0.75 if hide == 'left' else 0.75
    wall = Box((x - 0.55, 0.0, 7.3), (x + 0.55, 2.4, 7.9), 'shelf')
    return Scene(boxes=[target, wall])


@pytest.mark.parametrize('hide', ['left', 'right'])
def test_a_prior_grows_the_hidden_side(hide: str) -> None:
    scene = occluded_scene(hide)
    r = render(scene, POSE, camera(640, 360))
    masks, depth = r.masks(2), r.depth_mm()
    truth = to_camera_centre(scene.boxes[0], POSE)
    plain = measure_scene(masks, depth, '16UC1', r.camera, ['pallet', 'shelf']).regions[0]
    assert plain.valid and not plain.prior_used
    assert np.linalg.norm(np.array(plain.centre) - truth) > 0.15  # half of it is unseen
    assert max(plain.footprint.size) < 1.0  # a third of the 1.2 m is behind the wall
    grown = measure_scene(
        masks, depth, '16UC1', r.camera, ['pallet', 'shelf'], priors=load_class_priors()
    ).regions[0]
    assert grown.prior_used
    assert max(grown.footprint.size) == pytest.approx(1.2, abs=0.02)
    assert np.linalg.norm(np.array(grown.centre) - truth) < 0.08


def test_a_fully_seen_pallet_keeps_its_measure() -> None:
    scene = Scene(boxes=[pallet(0.0, 8.0, 0.144)])
    r = render(scene, POSE, camera(640, 360))
    args = (r.masks(1), r.depth_mm(), '16UC1', r.camera, ['pallet'])
    plain = measure_scene(*args).regions[0]
    grown = measure_scene(*args, priors=load_class_priors()).regions[0]
    truth = to_camera_centre(scene.boxes[0], POSE)
    assert np.linalg.norm(np.array(grown.centre) - truth) < 0.04
    assert np.linalg.norm(np.array(grown.centre) - np.array(plain.centre)) < 0.04
