"""The node answers from geometry when the bag carries CameraInfo, publishes RViz markers, and
without CameraInfo falls back (saying why once in its log)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import threading
import time

import pytest

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.synth.generate import generate

    out = tmp_path_factory.mktemp('geo_synth') / 'data'
    generate(out, 10, seed=5, width=320, height=180, formats={'nvidia'}, progress=False)
    return out


@pytest.fixture(scope='module')
def node(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[object]:
    from smolrgpt_ros.node_process import NodeProcess

    log = tmp_path_factory.mktemp('geo_log') / 'node.log'
    proc = NodeProcess(
        checkpoint=str(tiny_checkpoint),
        extra_params={'generation.max_new_tokens': '4', 'answer.cross_check': 'true'},
        log_path=str(log),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _bag(dataset: Path, out: Path, with_camera: bool) -> Path:
    from smolrgpt_ros.bags import write_bag
    from training.dataset_bag import frames_from_dataset

    # several frames: CameraInfo is a stream (the node keeps the latest), and the first message
    # of a new publisher can be lost to DDS discovery, as on a robot
    frames = list(frames_from_dataset(dataset, 'train', rate_hz=5, limit=3))
    if not with_camera:
        for frame in frames:
            frame.intrinsics = None
    write_bag(out, frames)
    return out


def test_without_camera_info_it_falls_back_and_says_so_once(
    dataset: Path, node: object, tmp_path: Path
) -> None:
    from smolrgpt_ros.replay import replay

    result = replay(_bag(dataset, tmp_path / 'no_camera', False), rate=1.0, timeout_s=60)
    assert result.answers and all(a['success'] for a in result.answers)
    assert {a['source'] for a in result.answers} <= {'model', 'image'}
    log = node.log_path.read_text()
    assert log.count('no CameraInfo on depth/camera_info') == 1


def test_with_camera_info_answers_come_from_geometry_with_markers(
    dataset: Path, node: object, tmp_path: Path
) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from visualization_msgs.msg import MarkerArray

    from smolrgpt_ros.replay import replay

    context = rclpy.Context()
    rclpy.init(context=context)
    listener = Node('marker_listener', context=context)
    arrays: list[MarkerArray] = []
    subscription = listener.create_subscription(
        MarkerArray, 'spatial_query_node/markers', arrays.append, 10
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        # the node publishes markers only to matched subscribers: wait for DDS discovery
        deadline = time.monotonic() + 20
        while subscription.get_publisher_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert subscription.get_publisher_count() > 0, 'the node never matched the listener'
        result = replay(_bag(dataset, tmp_path / 'camera', True), rate=1.0, timeout_s=60)
    finally:
        executor.shutdown()
        spin.join(timeout=5)
        listener.destroy_node()
        rclpy.shutdown(context=context)
    sources = [a['source'] for a in result.answers]
    assert sources.count('geometry') >= len(sources) // 2, sources
    assert arrays, 'no MarkerArray was published'
    first = arrays[0].markers
    assert first[0].action == 3  # DELETEALL: the previous answer's markers go
    spheres = [m for array in arrays for m in array.markers if m.type == 2 and m.action == 0]
    assert spheres, [(m.type, m.action, m.ns) for m in first]
    frames = {m.header.frame_id for m in spheres}
    depths = [m.pose.position.z for m in spheres]
    assert frames == {'camera_color_optical_frame'} and min(depths) > 0, (frames, depths)
