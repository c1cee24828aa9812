"""Bags written from a synthetic split carry the scene's intrinsics as CameraInfo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from smolrgpt_ros import bags
from training.dataset_bag import frames_from_dataset


def test_camera_info_carries_the_scene_intrinsics(synth_root: Path, tmp_path: Path) -> None:
    frames = list(frames_from_dataset(synth_root, 'train'))
    assert frames and all(f.intrinsics is not None for f in frames)
    out = tmp_path / 'train.bag'
    assert bags.write_bag(out, frames) == len(frames)
    assert bags.topics(out)[bags.CAMERA_INFO_TOPIC] == 'sensor_msgs/msg/CameraInfo'
    store = bags.typestore()
    infos = [
        store.deserialize_cdr(m.raw, m.msgtype)
        for m in bags.read_messages(out)
        if m.topic == bags.CAMERA_INFO_TOPIC
    ]
    assert len(infos) == len(frames)
    scenes = [
        json.loads(p.read_text())['intrinsics']
        for p in sorted((synth_root / 'train' / 'scenes').glob('*.json'))
    ]
    wanted = sorted(tuple(k[n] for n in ('fx', 'fy', 'cx', 'cy')) for k in scenes)
    got = sorted((i.k[0], i.k[4], i.k[2], i.k[5]) for i in infos)
    assert np.allclose(got, wanted[: len(got)]) and len(got) == len(wanted)
    for info, k in zip(infos, scenes):
        assert (info.width, info.height) == (k['width'], k['height'])
        assert list(info.k[6:]) == [0, 0, 1] and info.header.frame_id == bags.FRAME_ID


def test_no_intrinsics_no_camera_info(tmp_path: Path) -> None:
    frame = bags.BagFrame(
        stamp_ns=1,
        rgb=np.zeros((4, 6, 3), np.uint8),
        depth=np.ones((4, 6), np.uint16),
        masks=np.ones((1, 4, 6), bool),
        region_ids=[0],
        labels=['pallet'],
    )
    bags.write_bag(tmp_path / 'b', [frame])
    assert bags.CAMERA_INFO_TOPIC not in bags.topics(tmp_path / 'b')
