"""Test-side ROS peer: publishes synchronised RGB / depth / regions frames (any mask form),
calls /spatial_query (service and action) and listens to /diagnostics, spinning its own
executor in a background thread."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

TIMEOUT_S = 60.0
H, W = 36, 48
BOXES = {4: (2, 12, 3, 20), 9: (15, 30, 25, 45)}  # region id -> rows y0:y1, columns x0:x1


def now_ns() -> int:
    return time.time_ns()


class Peer:
    """Publishers for the inputs, a service and an action client, spun in a background thread.
    ``form``: how regions are published (cropped, full, instances); ``namespace``: the node's."""

    def __init__(
        self, namespace: str = '', form: str = 'full', name: str = 'node_test_peer'
    ) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy
        from rclpy.action import ActionClient
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import Image

        from smolrgpt_ros.action import SpatialQuery as SpatialQueryAction
        from smolrgpt_ros.msg import RegionArray, RegionMaskArray, SpatialAnswer
        from smolrgpt_ros.srv import SpatialQuery

        self.form = form
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(name, namespace=namespace, context=self.context)
        self.rgb = self.node.create_publisher(Image, 'rgb/image', 10)
        self.depth = self.node.create_publisher(Image, 'depth/image', 10)
        if form == 'instances':
            self.instances = self.node.create_publisher(Image, 'instances', 10)
            self.regions = self.node.create_publisher(RegionArray, 'regions', 10)
        else:
            self.regions = self.node.create_publisher(RegionMaskArray, 'regions', 10)
        self.client = self.node.create_client(SpatialQuery, 'spatial_query')
        self.action = ActionClient(self.node, SpatialQueryAction, 'spatial_query')
        self.answers: list = []
        self.diagnostics: list = []
        self.node.create_subscription(
            SpatialAnswer, 'spatial_query_node/answers', self.answers.append, 10
        )
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 10)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def publish(
        self,
        stamp_ns: int,
        *,
        depth_encoding: str = '16UC1',
        mask_hw: tuple[int, int] = (H, W),
        empty_region: bool = False,
    ) -> None:
        from sensor_msgs.msg import RegionOfInterest

        from smolrgpt_ros import msg as types
        from smolrgpt_ros.image_conversion import numpy_to_imgmsg
        from smolrgpt_ros.region_forms import encode_regions

        rng = np.random.default_rng(stamp_ns % 1000)
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        rgb = numpy_to_imgmsg(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), 'rgb8')
        if depth_encoding == '16UC1':
            depth = numpy_to_imgmsg(rng.integers(500, 9000, (H, W), dtype=np.uint16), '16UC1')
        else:  # a depth topic carrying colour: malformed
            depth = numpy_to_imgmsg(np.zeros((H, W, 3), np.uint8), 'rgb8')
        masks = np.zeros((len(BOXES), *mask_hw), bool)
        for k, (rid, (y0, y1, x0, x1)) in enumerate(BOXES.items()):
            if not (empty_region and rid == 9):
                masks[k, y0:y1, x0:x1] = True
        header = rgb.header
        header.stamp.sec, header.stamp.nanosec = sec, nanosec
        header.frame_id = 'camera'
        regions = encode_regions(
            self.form,
            masks,
            list(BOXES),
            ['pallet'] * len(BOXES),
            types=SimpleNamespace(
                RegionMask=types.RegionMask,
                RegionMaskArray=types.RegionMaskArray,
                Region=types.Region,
                RegionArray=types.RegionArray,
                RegionOfInterest=RegionOfInterest,
            ),
            image=numpy_to_imgmsg,
            header=header,
        )
        depth.header = header
        self.rgb.publish(rgb)
        self.depth.publish(depth)
        if self.form == 'instances':
            labels, region_array = regions
            labels.header = header
            self.instances.publish(labels)
            self.regions.publish(region_array)
        else:
            self.regions.publish(regions[0])

    def request(self, question: str, region_ids: list[int], stamp_ns: int = 0, **fields):
        from smolrgpt_ros.srv import SpatialQuery

        request = SpatialQuery.Request(question=question, region_ids=region_ids, **fields)
        request.stamp.sec, request.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        return request

    def call(
        self, question: str, region_ids: list[int], stamp_ns: int = 0, max_new_tokens: int = 0, **f
    ) -> object:
        request = self.request(question, region_ids, stamp_ns, max_new_tokens=max_new_tokens, **f)
        response = self.client.call(request, timeout_sec=TIMEOUT_S)
        assert response is not None, 'service call timed out'
        return response

    def send_goal(
        self, question: str, region_ids: list[int], stamp_ns: int = 0, **fields
    ) -> tuple[object, list]:
        """(goal handle, feedback list that fills as feedback arrives)."""
        from smolrgpt_ros.action import SpatialQuery as SpatialQueryAction

        goal = SpatialQueryAction.Goal(question=question, region_ids=region_ids, **fields)
        goal.stamp.sec, goal.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        feedback: list = []
        assert self.action.wait_for_server(timeout_sec=TIMEOUT_S), 'no action server'
        future = self.action.send_goal_async(
            goal, feedback_callback=lambda f: feedback.append((time.monotonic(), f.feedback))
        )
        handle = _wait(future)
        assert handle.accepted, 'the goal was rejected'
        return handle, feedback

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _wait(future: object, timeout_s: float = TIMEOUT_S) -> object:
    deadline = time.monotonic() + timeout_s
    while not future.done():
        assert time.monotonic() < deadline, 'no reply in time'
        time.sleep(0.005)
    return future.result()


def goal_result(handle: object, timeout_s: float = TIMEOUT_S) -> tuple[object, int, float]:
    """(result, status, time.monotonic() when it arrived) of a goal."""
    response = _wait(handle.get_result_async(), timeout_s)
    return response.result, response.status, time.monotonic()


def publish_until_answered(peer: Peer, stamp_ns: int, **kwargs: object) -> object:
    """Publish a frame until the node has it (discovery of new publishers takes a moment)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        peer.publish(stamp_ns, **kwargs)
        time.sleep(0.2)
        response = peer.call(
            'Is the pallet <mask> left of the pallet <mask>?', [4, 9], stamp_ns=stamp_ns
        )
        if response.success or (
            'no frame with stamp' not in response.error
            and 'no synchronised frame' not in response.error
        ):
            return response
    raise AssertionError(f'the node never received frame {stamp_ns}')
