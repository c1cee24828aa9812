"""rosbag2 writing/reading with rosbags: images, custom RegionMaskArray, questions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smolrgpt_core.settings import FrameLimits
from smolrgpt_ros import bags
from smolrgpt_ros.bags import BagError, BagFrame, Question
from smolrgpt_ros.region_forms import MASK_FORMS, masks_from_instances, masks_from_mask_array


def _frame(stamp_ns: int, seed: int) -> BagFrame:
    rng = np.random.default_rng(seed)
    h, w = 12, 16
    masks = np.zeros((2, h, w), dtype=bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 6:12, 10:16] = True
    return BagFrame(
        stamp_ns=stamp_ns,
        rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        depth=rng.integers(0, 20000, (h, w), dtype=np.uint16),
        masks=masks,
        region_ids=[5, 9],
        labels=['pallet', 'buffer'],
        questions=[
            Question(
                id=f'q{seed}',
                question='Is the pallet <mask> left of <mask>?',
                region_ids=[5, 9],
                category='left_right',
                answer='Yes.',
                normalized_answer='left',
            )
        ],
    )


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_write_then_read_back(tmp_path: Path, storage: str) -> None:
    frames = [_frame(1_700_000_000_000_000_000 + k * 100_000_000, k) for k in range(3)]
    bag = tmp_path / 'bag'
    assert bags.write_bag(bag, frames, storage=storage) == 3
    messages = list(bags.read_messages(bag))
    assert len(messages) == 3 * 4
    assert [m.stamp_ns for m in messages] == sorted(m.stamp_ns for m in messages)
    store = bags.typestore()
    by_topic: dict[str, list] = {}
    for m in messages:
        by_topic.setdefault(m.topic, []).append(store.deserialize_cdr(m.raw, m.msgtype))
    rgb = bags.decode_image(by_topic[bags.RGB_TOPIC][1])
    depth = bags.decode_image(by_topic[bags.DEPTH_TOPIC][1])
    assert np.array_equal(rgb, frames[1].rgb) and np.array_equal(depth, frames[1].depth)
    regions = by_topic[bags.REGIONS_TOPIC][2]
    assert [r.id for r in regions.regions] == [5, 9]
    assert regions.header.stamp.sec == 1_700_000_000 and regions.header.stamp.nanosec == 2 * 10**8
    mask = bags.decode_image(regions.regions[0].mask) > 0  # cropped to its bbox (the default)
    assert np.array_equal(mask, frames[2].masks[0, 2:5, 3:9])
    box = regions.regions[1].bbox
    assert (box.x_offset, box.y_offset, box.height, box.width) == (10, 6, 6, 6)
    questions = bags.read_questions(bag)
    assert [q['id'] for q in questions] == ['q0', 'q1', 'q2']
    assert questions[1]['stamp_ns'] == frames[1].stamp_ns
    assert questions[0]['normalized_answer'] == 'left'


@pytest.mark.parametrize('form', MASK_FORMS)
def test_every_mask_form_reads_back_as_the_frame_masks(tmp_path: Path, form: str) -> None:
    frame = _frame(1_000, 0)
    bag = tmp_path / 'bag'
    bags.write_bag(bag, [frame], mask_form=form)
    store = bags.typestore()
    msgs = {m.topic: store.deserialize_cdr(m.raw, m.msgtype) for m in bags.read_messages(bag)}
    h, w = frame.rgb.shape[:2]
    if form == 'instances':
        assert bags.region_form(bag) == 'instances'
        masks = masks_from_instances(
            msgs[bags.INSTANCES_TOPIC], msgs[bags.REGIONS_TOPIC], h, w, FrameLimits()
        )
    else:
        assert bags.region_form(bag) == 'masks' and bags.INSTANCES_TOPIC not in msgs
        masks = masks_from_mask_array(msgs[bags.REGIONS_TOPIC], h, w, FrameLimits())
    assert np.array_equal(masks != 0, frame.masks)
    assert [r.label for r in msgs[bags.REGIONS_TOPIC].regions] == ['pallet', 'buffer']


def test_the_cli_offers_every_mask_form() -> None:
    import argparse

    from training.dataset_bag import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sub = parser._subparsers._group_actions[0].choices['from-dataset']
    (action,) = [a for a in sub._actions if a.dest == 'mask_form']
    assert set(action.choices) == set(MASK_FORMS) and action.default == 'cropped'


def test_overlapping_masks_have_no_instance_form(tmp_path: Path) -> None:
    frame = _frame(1_000, 0)
    frame.masks[1, 2:5, 3:9] = True
    with pytest.raises(BagError, match='frame 1000: regions 5 and 9 overlap'):
        bags.write_bag(tmp_path / 'bag', [frame], mask_form='instances')
    with pytest.raises(BagError, match='mask form must be one of cropped, full, instances'):
        bags.write_bag(tmp_path / 'bag2', [frame], mask_form='rle')


def test_refuses_existing_path_bad_storage_and_unordered(tmp_path: Path) -> None:
    with pytest.raises(BagError, match='exists already'):
        bags.write_bag(tmp_path, [_frame(1, 0)])
    with pytest.raises(BagError, match='storage must be one of'):
        bags.write_bag(tmp_path / 'x', [_frame(1, 0)], storage='zip')
    with pytest.raises(BagError, match='stamps must increase'):
        bags.write_bag(tmp_path / 'y', [_frame(5, 0), _frame(5, 1)])
    with pytest.raises(BagError, match='not a rosbag2 directory'):
        list(bags.read_messages(tmp_path))


def test_frame_validation() -> None:
    good = _frame(1, 0)
    with pytest.raises(BagError, match='rgb must be uint8'):
        BagFrame(1, good.rgb.astype(np.float32), good.depth, good.masks, [1, 2], ['a', 'b'])
    with pytest.raises(BagError, match='depth must be'):
        BagFrame(1, good.rgb, good.depth[:-1], good.masks, [1, 2], ['a', 'b'])
    with pytest.raises(BagError, match='one region id and one label per mask'):
        BagFrame(1, good.rgb, good.depth, good.masks, [1], ['a', 'b'])


@pytest.mark.ros
def test_rclpy_reads_the_custom_type_and_hash_matches(tmp_path: Path) -> None:
    """Bags written without ROS deserialise with rclpy into the generated classes."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from smolrgpt_ros.msg import RegionMaskArray

    bag = tmp_path / 'bag'
    frame = _frame(42_000_000_001, 3)
    bags.write_bag(bag, [frame])
    for m in bags.read_messages(bag):
        if m.topic == bags.REGIONS_TOPIC:
            msg = deserialize_message(m.raw, RegionMaskArray)
            assert [r.label for r in msg.regions] == ['pallet', 'buffer']
            assert msg.header.stamp.sec == 42 and msg.header.stamp.nanosec == 1
        if m.topic == bags.DEPTH_TOPIC:
            msg = deserialize_message(m.raw, Image)
            assert msg.encoding == '16UC1' and msg.step == 32
    # the RIHS01 type hash rosbags writes equals the one rosidl generated for the live type
    import yaml

    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())
    topics = meta['rosbag2_bagfile_information']['topics_with_message_count']
    written = {
        t['topic_metadata']['name']: t['topic_metadata']['type_description_hash'] for t in topics
    }
    from smolrgpt_ros.msg._region_mask_array import RegionMaskArray as Generated

    assert written[bags.REGIONS_TOPIC] == _rihs01(Generated)
    from smolrgpt_ros.msg._region_array import RegionArray as GeneratedArray

    instances = tmp_path / 'instances'
    bags.write_bag(instances, [frame], mask_form='instances')
    meta = yaml.safe_load((instances / 'metadata.yaml').read_text())
    topics = meta['rosbag2_bagfile_information']['topics_with_message_count']
    written = {
        t['topic_metadata']['name']: t['topic_metadata']['type_description_hash'] for t in topics
    }
    assert written[bags.REGIONS_TOPIC] == _rihs01(GeneratedArray)


def _rihs01(msg_cls: type) -> str:
    import json as _json
    import os
    import sys

    # the venv prefix (make setup) or any sourced ROS prefix (colcon)
    prefixes = [sys.prefix, *os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)]
    candidates = [
        Path(p) / 'share' / 'smolrgpt_ros' / 'msg' / f'{msg_cls.__name__}.json'
        for p in prefixes
        if p
    ]
    found = [c for c in candidates if c.is_file()]
    assert found, f'no generated type description among {candidates}'
    data = _json.loads(found[0].read_text())
    return next(
        h['hash_string']
        for h in data['type_hashes']
        if h['type_name'] == f'smolrgpt_ros/msg/{msg_cls.__name__}'
    )
