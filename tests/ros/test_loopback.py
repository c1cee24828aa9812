"""Real rclpy + Fast DDS between two processes on loopback: messages and a service call.

The peer (echo_peer.py) runs in its own process; this test's node publishes a RegionMaskArray,
receives it back, and calls /spatial_query, so every byte crosses DDS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.ros

PEER = Path(__file__).with_name('echo_peer.py')
TIMEOUT_S = 30.0


@pytest.fixture
def peer() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(PEER)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == 'ready', f'peer failed to start: {line!r} {proc.stderr.read()}'
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    """This test's own node, in its own rclpy context, with an executor to spin it."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('loopback_test_client', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, done: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        assert done(), f'timed out after {timeout_s} s'

    def publish_until(self, pub: object, msg: object, done: Callable[[], bool]) -> None:
        """Publish until done(): the first messages may go out before discovery completes."""
        deadline = time.monotonic() + TIMEOUT_S
        while not done() and time.monotonic() < deadline:
            pub.publish(msg)
            self.executor.spin_once(timeout_sec=0.2)
        assert done(), f'no echo through DDS within {TIMEOUT_S} s'

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def client() -> Iterator[Client]:
    c = Client()
    try:
        yield c
    finally:
        c.close()


def _make_regions(stamp_sec: int) -> object:
    from sensor_msgs.msg import Image, RegionOfInterest

    from smolrgpt_ros.msg import RegionMask, RegionMaskArray

    msg = RegionMaskArray()
    msg.header.stamp.sec = stamp_sec
    msg.header.stamp.nanosec = 250_000_000
    msg.header.frame_id = 'camera_color_optical_frame'
    for rid, (label, pixels) in enumerate(
        [('pallet', [0, 255, 255, 0, 0, 0]), ('buffer', [255, 255, 255, 255, 0, 255])], start=3
    ):
        mask = Image(
            height=2, width=3, encoding='mono8', is_bigendian=0, step=3, data=bytes(pixels)
        )
        mask.header = msg.header
        msg.regions.append(
            RegionMask(
                id=rid,
                label=label,
                score=0.5 + rid / 10,
                bbox=RegionOfInterest(x_offset=0, y_offset=0, height=2, width=3),
                mask=mask,
            )
        )
    return msg


def test_region_mask_array_round_trip(peer: subprocess.Popen[str], client: Client) -> None:
    from smolrgpt_ros.msg import RegionMaskArray

    received: list[RegionMaskArray] = []
    client.node.create_subscription(RegionMaskArray, 'regions_echo', received.append, 10)
    pub = client.node.create_publisher(RegionMaskArray, 'regions', 10)
    sent = _make_regions(stamp_sec=42)
    client.publish_until(pub, sent, lambda: bool(received))
    from rclpy.serialization import serialize_message

    echo = received[0]
    # identical on the wire: every field, nested masks included (float32 score rounding too)
    assert serialize_message(echo) == serialize_message(sent)
    assert [r.id for r in echo.regions] == [3, 4]
    assert echo.regions[0].score == pytest.approx(0.8) and echo.regions[0].label == 'pallet'
    assert echo.regions[1].label == 'buffer' and bytes(echo.regions[1].mask.data)[4] == 0
    assert echo.header.stamp.sec == 42


def test_spatial_query_service_round_trip(peer: subprocess.Popen[str], client: Client) -> None:
    from smolrgpt_ros.msg import RegionMaskArray
    from smolrgpt_ros.srv import SpatialQuery

    echoed: list[RegionMaskArray] = []
    client.node.create_subscription(RegionMaskArray, 'regions_echo', echoed.append, 10)
    pub = client.node.create_publisher(RegionMaskArray, 'regions', 10)
    service = client.node.create_client(SpatialQuery, 'spatial_query')
    assert service.wait_for_service(timeout_sec=TIMEOUT_S), 'service not discovered'

    def call(request: SpatialQuery.Request) -> SpatialQuery.Response:
        future = service.call_async(request)
        client.spin_until(future.done)
        return future.result()

    # before any regions arrive the peer answers success=false with a reason
    early = call(SpatialQuery.Request(question='Is <mask> left?', region_ids=[3]))
    assert early.success is False and early.error == 'no regions received yet'

    client.publish_until(pub, _make_regions(stamp_sec=7), lambda: bool(echoed))

    request = SpatialQuery.Request(
        question='How many pixels in <mask> and <mask>?', region_ids=[4, 3], max_new_tokens=16
    )
    response = call(request)
    assert response.success, response.error
    assert response.answer == 'How many pixels in <mask> and <mask>? -> [5, 2]'
    assert response.normalized_answer == '7' and response.value == 7.0
    assert list(response.region_ids) == [3, 4]
    assert (response.frame_stamp.sec, response.frame_stamp.nanosec) == (7, 250_000_000)
    assert response.latency_ms == 16.0

    bad = call(SpatialQuery.Request(question='?', region_ids=[9]))
    assert not bad.success and bad.error == 'unknown region ids: [9]'
    assert math.isnan(bad.value) is False  # fields keep their defaults on failure
