"""Test-side ROS peer: publishes synchronised RGB / depth / RegionMaskArray frames and calls
/spatial_query, spinning its own executor in a background thread."""

from __future__ import annotations

import threading
import time

import numpy as np

TIMEOUT_S = 60.0
H, W = 36, 48


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

        self.node.create_subscription(
            SpatialAnswer, 'spatial_query_node/answers', self.answers.append, 10
        )
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
                mask[box[0] : box[1], box[2] : box[3]] = 255
            regions.regions.append(
                RegionMask(id=rid, label='pallet', score=1.0, mask=numpy_to_imgmsg(mask, 'mono8'))
            )
        assert isinstance(rgb, Image)
        self.rgb.publish(rgb)
        self.depth.publish(depth)
        self.regions.publish(regions)

    def call(
        self, question: str, region_ids: list[int], stamp_ns: int = 0, max_new_tokens: int = 0
    ) -> object:
        from smolrgpt_ros.srv import SpatialQuery

        request = SpatialQuery.Request(
            question=question, region_ids=region_ids, max_new_tokens=max_new_tokens
        )
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
