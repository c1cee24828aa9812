"""The spatial-query node in its own process, driven over Fast DDS on loopback.

The node runs the real engine on a tiny checkpoint made by the test; this process publishes
synchronised RGB / depth / RegionMaskArray and calls /spatial_query.
"""

from __future__ import annotations

from collections.abc import Iterator
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

TIMEOUT_S = 60.0
H, W = 36, 48


@pytest.fixture(scope='module')
def node_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    from tiny_checkpoint import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path_factory.mktemp('node_ckpt'))
    log = tmp_path_factory.mktemp('node_log') / 'node.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'smolrgpt_ros.spatial_query_node', '--ros-args',
             '-p', f'model.checkpoint_dir:={checkpoint}', '-p', 'generation.max_new_tokens:=4',
             '-p', 'requests.queue_limit:=2', '-p', 'cache.frames:=3'],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log.read_text()[-3000:])


class Peer:
    """Publishers for the three inputs and a service client, spun in a background thread."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import Image

        from smolrgpt_ros.msg import RegionMaskArray
        from smolrgpt_ros.srv import SpatialQuery

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('node_test_peer', context=self.context)
        self.rgb = self.node.create_publisher(Image, 'rgb/image', 10)
        self.depth = self.node.create_publisher(Image, 'depth/image', 10)
        self.regions = self.node.create_publisher(RegionMaskArray, 'regions', 10)
        self.client = self.node.create_client(SpatialQuery, 'spatial_query')
        self.answers: list = []
        from smolrgpt_ros.msg import SpatialAnswer

        self.node.create_subscription(SpatialAnswer, 'spatial_query_node/answers',
                                      self.answers.append, 10)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def publish(self, stamp_ns: int, *, depth_encoding: str = '16UC1',
                mask_hw: tuple[int, int] = (H, W), empty_region: bool = False) -> None:
        from sensor_msgs.msg import Image

        from smolrgpt_ros.image_conversion import numpy_to_imgmsg
        from smolrgpt_ros.msg import RegionMask, RegionMaskArray

        rng = np.random.default_rng(stamp_ns % 1000)
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        rgb = numpy_to_imgmsg(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), 'rgb8')
        if depth_encoding == '16UC1':
            depth = numpy_to_imgmsg(rng.integers(500, 9000, (H, W), dtype=np.uint16), '16UC1')
        else:  # a depth topic carrying colour: malformed
            depth = numpy_to_imgmsg(np.zeros((H, W, 3), np.uint8), 'rgb8')
        regions = RegionMaskArray()
        for msg in (rgb, depth, regions):
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            msg.header.frame_id = 'camera'
        for rid, box in ((4, (2, 12, 3, 20)), (9, (15, 30, 25, 45))):
            mask = np.zeros(mask_hw, np.uint8)
            if not (empty_region and rid == 9):
                mask[box[0]:box[1], box[2]:box[3]] = 255
            regions.regions.append(RegionMask(id=rid, label='pallet', score=1.0,
                                              mask=numpy_to_imgmsg(mask, 'mono8')))
        assert isinstance(rgb, Image)
        self.rgb.publish(rgb)
        self.depth.publish(depth)
        self.regions.publish(regions)

    def call(self, question: str, region_ids: list[int], stamp_ns: int = 0,
             max_new_tokens: int = 0) -> object:
        from smolrgpt_ros.srv import SpatialQuery

        request = SpatialQuery.Request(question=question, region_ids=region_ids,
                                       max_new_tokens=max_new_tokens)
        request.stamp.sec, request.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        response = self.client.call(request, timeout_sec=TIMEOUT_S)
        assert response is not None, 'service call timed out'
        return response

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture(scope='module')
def peer(node_process: subprocess.Popen) -> Iterator[Peer]:
    p = Peer()
    try:
        assert p.client.wait_for_service(timeout_sec=TIMEOUT_S), 'node never offered the service'
        yield p
    finally:
        p.close()


def _publish_until_answered(peer: Peer, stamp_ns: int, **kwargs: object) -> object:
    """Publish a frame until the node has it (discovery of new publishers takes a moment)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        peer.publish(stamp_ns, **kwargs)
        time.sleep(0.2)
        response = peer.call('Is the pallet <mask> left of the pallet <mask>?', [4, 9],
                             stamp_ns=stamp_ns)
        if response.success or ('no frame with stamp' not in response.error \
                and 'no synchronised frame' not in response.error):
            return response
    raise AssertionError(f'the node never received frame {stamp_ns}')


def test_1_no_frame_yet(peer: Peer) -> None:
    response = peer.call('Is the pallet <mask> left of the pallet <mask>?', [4, 9])
    assert not response.success and response.error == 'no synchronised frame received yet'
    assert math.isnan(response.value)


def test_2_answers_on_a_published_frame(peer: Peer) -> None:
    stamp = 1_700_000_000_100_000_000
    response = _publish_until_answered(peer, stamp)
    assert response.success, response.error
    assert response.category == 'left_right'
    assert (response.frame_stamp.sec, response.frame_stamp.nanosec) == divmod(stamp,
                                                                              1_000_000_000)
    assert response.latency_ms > 0
    latest = peer.call('How far is <region9> from <region4>?', [])
    assert latest.success and latest.category == 'distance'
    deadline = time.monotonic() + 10
    while len(peer.answers) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert peer.answers and peer.answers[-1].question == 'How far is <region9> from <region4>?'
    assert peer.answers[-1].header.frame_id == 'camera'


@pytest.mark.parametrize(
    ('question', 'ids', 'stamp_ns', 'error'),
    [
        ('Is <mask> left of <mask>?', [4, 77], 0, 'unknown region ids [77]'),
        ('Is <mask> left of <mask>?', [4], 0, '2 <mask> placeholders but 1 region ids'),
        ('Is the pallet left of the other pallet?', [], 0, 'needs region references'),
        ('Is <region4> left of <region9>?', [], 123, 'no frame with stamp 123 ns'),
    ],
)
def test_3_bad_requests_get_clear_errors(peer: Peer, question: str, ids: list[int],
                                         stamp_ns: int, error: str) -> None:
    response = peer.call(question, ids, stamp_ns=stamp_ns)
    assert not response.success and error in response.error


@pytest.mark.parametrize(
    ('kwargs', 'error'),
    [
        ({'empty_region': True}, 'region 9 has an empty mask'),
        ({'mask_hw': (H + 2, W)}, 'size mismatch: mask of region 4'),
        ({'depth_encoding': 'rgb8'}, "malformed depth: encoding 'rgb8'"),
    ],
)
def test_4_bad_frames_get_clear_errors(peer: Peer, kwargs: dict, error: str) -> None:
    stamp = 1_700_000_001_000_000_000 + len(error) * 1000
    response = _publish_until_answered(peer, stamp, **kwargs)
    assert not response.success and error in response.error


def test_5_node_still_serves_after_errors(peer: Peer,
                                          node_process: subprocess.Popen) -> None:
    assert node_process.poll() is None
    stamp = 1_700_000_002_000_000_000
    assert _publish_until_answered(peer, stamp).success


def test_6_concurrent_calls_are_answered_or_rejected(peer: Peer) -> None:
    stamp = 1_700_000_003_000_000_000
    assert _publish_until_answered(peer, stamp).success
    results: list = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            response = peer.call('Is <region4> left of <region9>?', [], stamp_ns=stamp,
                                 max_new_tokens=2)
            with lock:
                results.append(response)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    ok = [r for r in results if r.success]
    busy = [r for r in results if not r.success]
    assert all(r.error.startswith('busy: ') for r in busy), {r.error for r in busy}
    assert ok, 'no call was answered'
    assert len({r.answer for r in ok}) == 1  # same frame, same question, same greedy answer
