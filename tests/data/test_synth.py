"""The synthetic generator: determinism, geometry, depth encodings, layout."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from training.data import depth as depth_codec
from training.synth.generate import generate, scene_rng
from training.synth.render import render
from training.synth.scene import Box, Camera, Scene, SceneObject, distance, make_scene, pallet


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*'))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path: Path, synth_root: Path) -> None:
    again = tmp_path / synth_root.name
    generate(
        again, 4, seed=3, width=192, height=108, formats={'nvidia', 'parquet'}, progress=False
    )
    assert _digest(again) == _digest(synth_root)
    other = tmp_path / 'other' / synth_root.name
    generate(other, 1, seed=4, width=192, height=108, formats={'nvidia'}, progress=False)
    assert (other / 'train' / 'images' / '000000.png').read_bytes() != (
        synth_root / 'train' / 'images' / '000000.png'
    ).read_bytes()


def test_distance_between_pallets_at_known_points() -> None:
    rng = np.random.default_rng(0)
    a, b = pallet(1, 0.0, 5.0, rng), pallet(2, 3.0, 9.0, rng)
    a.boxes, b.boxes = a.boxes[:1], b.boxes[:1]  # bare pallets: centres at equal height
    scene = Scene(make_scene(rng, 64, 36).camera, [a, b], (1, 1, 0))
    assert math.isclose(distance(scene, a, b), 5.0)
    buffer = SceneObject(3, 'buffer', rect=(-1.0, 4.0, 1.0, 6.0))
    assert distance(scene, a, buffer) == 0.0  # a pallet inside a buffer
    assert math.isclose(distance(scene, b, buffer), math.dist(b.center, (0.0, 0.0, 5.0)))


def _camera() -> Camera:
    return Camera(
        width=64,
        height=48,
        fx=40.0,
        fy=40.0,
        cx=32.0,
        cy=24.0,
        position=(0.0, 1.0, 0.0),
        yaw=0.0,
        pitch=0.0,
    )


def test_rendered_depth_is_z_depth_and_masks_match_the_projection() -> None:
    camera = _camera()
    wall = SceneObject(1, 'shelf', [Box((-1.0, 0.5, 4.0), (1.0, 1.5, 4.5), 'carton')])
    rendering = render(Scene(camera, [wall], (1, 1, 0)), np.random.default_rng(0))
    mask = rendering.instances == 1
    # the front face at z = 4 covers u in 32 +- 40 * 1 / 4 = [22, 42), v in 24 +- 5
    assert mask[24, 22] and mask[24, 41] and not mask[24, 21] and not mask[24, 42]
    assert mask[19, 32] and mask[28, 32] and not mask[18, 32] and not mask[29, 32]
    assert np.allclose(rendering.depth[mask], 4.0, atol=1e-5)
    u, v = camera.project(np.array([[1.0, 1.0, 4.0]]))[0]
    assert math.isclose(u, 42.0) and math.isclose(v, 24.0)


def test_depth_encodings_round_trip() -> None:
    depth = np.linspace(2.0, 20.0, 100, dtype=np.float32).reshape(10, 10)
    u8 = depth_codec.encode_u8(depth, 2.0, 20.0)
    assert u8[0, 0] == 0 and u8[-1, -1] == 255  # near = dark
    assert np.abs(depth_codec.decode_u8(u8, 2.0, 20.0) - depth).max() <= 18.0 / 255 / 2 + 1e-6
    mm = depth_codec.encode_mm(depth)
    assert mm.dtype == np.uint16
    assert np.abs(depth_codec.decode_mm(mm) - depth).max() <= 0.0005 + 1e-6


def test_files_follow_the_dataset_conventions(synth_root: Path) -> None:
    depth_png = synth_root / 'val' / 'depths' / '000002_depth.png'
    with Image.open(depth_png) as image:
        assert image.mode == 'L'
        u8 = np.asarray(image)
    with Image.open(synth_root / 'val' / 'depth_mm' / '000002.png') as image:
        mm = np.asarray(image)
    meta = json.loads((synth_root / 'val' / 'scenes' / '000002.json').read_text())
    assert {'fx', 'fy', 'cx', 'cy'} <= set(meta['intrinsics'])
    near, far = meta['depth_png']['near_m'], meta['depth_png']['far_m']
    metres = depth_codec.decode_u8(u8, near, far)
    assert np.abs(metres - depth_codec.decode_mm(mm)).max() <= (far - near) / 255
    records = json.loads((synth_root / 'val.json').read_text())
    assert {
        'id',
        'image',
        'conversations',
        'rle',
        'category',
        'normalized_answer',
        'freeform_answer',
    } <= set(records[0])
    assert all(
        set(r) == {'id', 'image', 'conversations', 'rle'}
        for r in json.loads((synth_root / 'test.json').read_text())
    )


def test_scene_is_a_function_of_seed_and_index() -> None:
    a = make_scene(scene_rng(5, 7), 64, 36)
    b = make_scene(scene_rng(5, 7), 64, 36)
    assert [o.center.tolist() for o in a.objects] == [o.center.tolist() for o in b.objects]
