"""Node overhead and ingest rate of spatial_query_node, over real DDS on loopback.

1. Service overhead: round trip seen by a client minus the time the node reports for the
   request (frame conversion + engine), p50 / p95, on a tiny model so the engine is cheap.
2. Ingest: RGB + depth (16UC1) + N full-frame masks at W x H published at increasing rates;
   a rate is sustained when >= 95 % of the published frames reach the node's frame cache.

    .venv/bin/python benchmarks/bench_node.py              # 1920x1080, 10 masks
    .venv/bin/python benchmarks/bench_node.py --size 640x360 --masks 4 --calls 50
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import tempfile
import threading
import time

import numpy as np


def _frame_msgs(stamp_ns: int, width: int, height: int, n_masks: int) -> tuple:
    from smolrgpt_ros.image_conversion import numpy_to_imgmsg
    from smolrgpt_ros.msg import RegionMask, RegionMaskArray

    rng = np.random.default_rng(stamp_ns % 97)
    rgb = numpy_to_imgmsg(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), 'rgb8')
    depth = numpy_to_imgmsg(rng.integers(500, 9000, (height, width), dtype=np.uint16), '16UC1')
    regions = RegionMaskArray()
    for k in range(n_masks):
        mask = np.zeros((height, width), np.uint8)
        x0 = (k * width) // (n_masks + 1)
        mask[height // 4 : height // 2, x0 : x0 + width // (n_masks + 2)] = 255
        regions.regions.append(
            RegionMask(id=k, label='pallet', score=1.0, mask=numpy_to_imgmsg(mask, 'mono8'))
        )
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    for msg in (rgb, depth, regions):
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return rgb, depth, regions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='1920x1080')
    parser.add_argument('--masks', type=int, default=10)
    parser.add_argument('--calls', type=int, default=100)
    parser.add_argument('--rates', default='1,2,5,10', help='ingest rates to try (Hz)')
    parser.add_argument('--seconds', type=float, default=4.0, help='per ingest rate')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split('x'))
    os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100 // 10))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from smolrgpt_core.testing import make_tiny_checkpoint
    from smolrgpt_ros.msg import RegionMaskArray
    from smolrgpt_ros.node_process import NodeProcess
    from smolrgpt_ros.srv import SpatialQuery

    checkpoint = make_tiny_checkpoint(Path(tempfile.mkdtemp(prefix='bench_node_')))
    node_proc = NodeProcess(
        str(checkpoint),
        extra_params={
            'cache.frames': '200',
            'generation.max_new_tokens': '1',
            'requests.queue_limit': '8',
        },
    )
    node_proc.start()
    rclpy.init()
    peer = Node('bench_node_peer')
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [
        peer.create_publisher(Image, 'rgb/image', qos),
        peer.create_publisher(Image, 'depth/image', qos),
        peer.create_publisher(RegionMaskArray, 'regions', qos),
    ]
    client = peer.create_client(SpatialQuery, 'spatial_query')
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(peer)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        assert client.wait_for_service(timeout_sec=60), node_proc.log_tail()

        def ask(stamp_ns: int) -> tuple[object, float]:
            request = SpatialQuery.Request(question='Is <region0> left of <region1>?')
            request.stamp.sec, request.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
            start = time.perf_counter()
            response = client.call(request, timeout_sec=60)
            return response, (time.perf_counter() - start) * 1e3

        # 1. overhead, on one small frame
        small = _frame_msgs(1_000_000_000, 64, 48, 2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for pub, msg in zip(pubs, small):
                pub.publish(msg)
            if ask(1_000_000_000)[0].success:
                break
            time.sleep(0.1)
        rows = [ask(1_000_000_000) for _ in range(args.calls)]
        round_trip = np.array([ms for _, ms in rows])
        node_side = np.array([r.latency_ms for r, _ in rows])
        overhead = round_trip - node_side
        print(f'service, {args.calls} calls (tiny model, 1 new token), ms:')
        print(
            f'  round trip   p50 {np.percentile(round_trip, 50):7.2f}  '
            f'p95 {np.percentile(round_trip, 95):7.2f}'
        )
        print(
            f'  node side    p50 {np.percentile(node_side, 50):7.2f}  '
            f'p95 {np.percentile(node_side, 95):7.2f}'
        )
        print(
            f'  overhead     p50 {np.percentile(overhead, 50):7.2f}  '
            f'p95 {np.percentile(overhead, 95):7.2f}   (round trip - node side)'
        )

        # 2. ingest
        frame = _frame_msgs(0, width, height, args.masks)
        mb = (
            len(frame[0].data)
            + len(frame[1].data)
            + sum(len(r.mask.data) for r in frame[2].regions)
        ) / 1e6
        print(
            f'ingest, {width}x{height} rgb8 + 16UC1 + {args.masks} mono8 masks '
            f'({mb:.1f} MB per frame):'
        )
        base = 2_000_000_000
        for rate in (float(r) for r in args.rates.split(',')):
            n = max(2, int(rate * args.seconds))
            stamps = [base + k * 1_000_000 for k in range(n)]
            base += 10_000_000_000
            start = time.perf_counter()
            for k, stamp in enumerate(stamps):
                for msg in frame:
                    sec, nanosec = divmod(stamp, 1_000_000_000)
                    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
                for pub, msg in zip(pubs, frame):
                    pub.publish(msg)
                delay = start + (k + 1) / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            achieved = n / (time.perf_counter() - start)
            time.sleep(1.0)
            received = sum(ask(s)[0].success for s in stamps)
            verdict = 'keeps up' if received >= 0.95 * n else 'falls behind'
            print(
                f'  {rate:5.1f} Hz asked ({achieved:5.1f} published): {received}/{n} frames '
                f'in the cache -> {verdict}'
            )
        print(f'load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores')
    finally:
        executor.shutdown()
        peer.destroy_node()
        rclpy.try_shutdown()
        node_proc.stop()


if __name__ == '__main__':
    main()
