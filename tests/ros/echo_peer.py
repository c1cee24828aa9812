"""A second ROS process for the loopback test: echoes RegionMaskArray, serves SpatialQuery.

Run as a script by tests/ros/test_loopback.py, so every message and the service call cross a
process boundary through Fast DDS. It answers deterministically from the request and the last
RegionMaskArray it received, so the test can check each field.
"""

from __future__ import annotations

import math
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from smolrgpt_ros.msg import RegionMaskArray
from smolrgpt_ros.srv import SpatialQuery


class EchoPeer(Node):
    def __init__(self) -> None:
        super().__init__('echo_peer')
        self._last: RegionMaskArray | None = None
        self._echo = self.create_publisher(RegionMaskArray, 'regions_echo', 10)
        self.create_subscription(RegionMaskArray, 'regions', self._on_regions, 10)
        self.create_service(SpatialQuery, 'spatial_query', self._on_query)

    def _on_regions(self, msg: RegionMaskArray) -> None:
        self._last = msg
        self._echo.publish(msg)

    def _on_query(
        self, request: SpatialQuery.Request, response: SpatialQuery.Response
    ) -> SpatialQuery.Response:
        if self._last is None:
            response.success = False
            response.error = 'no regions received yet'
            return response
        known = {region.id: region for region in self._last.regions}
        unknown = [rid for rid in request.region_ids if rid not in known]
        if unknown:
            response.success = False
            response.error = f'unknown region ids: {unknown}'
            return response
        pixels = [int(sum(1 for b in known[rid].mask.data if b)) for rid in request.region_ids]
        response.success = True
        response.answer = f'{request.question} -> {pixels}'
        response.normalized_answer = str(sum(pixels))
        response.category = 'count'
        response.value = float(sum(pixels)) if pixels else math.nan
        response.region_ids = list(reversed(request.region_ids))
        response.frame_stamp = self._last.header.stamp
        response.latency_ms = float(request.max_new_tokens)
        return response


def main() -> int:
    rclpy.init()
    node = EchoPeer()
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    print('ready', flush=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # shutdown requested by the test: the normal way out
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
