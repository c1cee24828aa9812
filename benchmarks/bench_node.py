"""spatial_query_node as robots use it, over real DDS on loopback (the node in its own process).

1. ``bytes``: bytes on the wire (CDR, as rclpy serialises them) of one frame at --size with
   --regions pallet-sized regions (--region-size) in each mask form: full-frame masks, masks
   cropped to their bbox, an instance-label image + RegionArray.
2. ``ingest``: RGB (rgb8) + depth (16UC1) + regions of that frame published RELIABLE at each of
   --rates for --seconds, per --forms; frames the node synchronised (its /diagnostics counter)
   against frames published, and the node's CPU (user + system time over wall time, 100 % =
   one core).
3. ``calls``: --calls questions from --clients concurrent service clients (each waits for its
   answer, no retry), about one synthetic warehouse frame, on the embedded model with the
   node's default settings (``--batch-max 1``: one question per engine pass, as before 0.3).
   Lost = no response within 60 s; p50/p95 of the round trip; answers per second.

    .venv/bin/python benchmarks/bench_node.py                       # all three, as in the notes
    .venv/bin/python benchmarks/bench_node.py --only calls --batch-max 1
    .venv/bin/python benchmarks/bench_node.py --only ingest --forms cropped --rates 10
"""

from __future__ import annotations

import argparse
from collections import Counter
import os
from pathlib import Path
import tempfile
import threading
import time
from types import SimpleNamespace

import numpy as np

FORMS = ('full', 'cropped', 'instances')


def _types() -> SimpleNamespace:
    from sensor_msgs.msg import RegionOfInterest

    from smolrgpt_ros import msg

    return SimpleNamespace(
        RegionMask=msg.RegionMask,
        RegionMaskArray=msg.RegionMaskArray,
        Region=msg.Region,
        RegionArray=msg.RegionArray,
        RegionOfInterest=RegionOfInterest,
    )


def _frame_msgs(form: str, size: tuple[int, int], regions: int, region_size: tuple[int, int]):
    """(rgb, depth, *region messages) of one frame: pallet-sized boxes in a row, two rows."""
    from smolrgpt_ros.image_conversion import numpy_to_imgmsg
    from smolrgpt_ros.region_forms import encode_regions

    width, height = size
    rw, rh = region_size
    rng = np.random.default_rng(0)
    rgb = numpy_to_imgmsg(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), 'rgb8')
    depth = numpy_to_imgmsg(rng.integers(500, 9000, (height, width), dtype=np.uint16), '16UC1')
    masks = np.zeros((regions, height, width), bool)
    per_row = max(1, (regions + 1) // 2)
    for k in range(regions):
        x0 = (k % per_row) * (width // per_row) + 4
        y0 = height // 3 + (k // per_row) * (rh + 20)
        masks[k, y0 : y0 + rh, x0 : x0 + rw] = True
    ids = list(range(1, regions + 1))
    region_msgs = encode_regions(
        form,
        masks,
        ids,
        ['pallet'] * regions,
        types=_types(),
        image=numpy_to_imgmsg,
        header=rgb.header,
    )
    return (rgb, depth, *region_msgs)


def _stamp(msgs: tuple, stamp_ns: int) -> None:
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    for msg in msgs:
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec


def bench_bytes(args: argparse.Namespace) -> dict[str, int]:
    from rclpy.serialization import serialize_message

    print(
        f'bytes per frame, {args.size[0]}x{args.size[1]}, {args.regions} regions of '
        f'{args.region_size[0]}x{args.region_size[1]} px (CDR):'
    )
    print(f'  {"form":<10} {"regions":>12} {"frame":>12}  regions vs full form')
    sizes = {}
    for form in FORMS:
        msgs = _frame_msgs(form, args.size, args.regions, args.region_size)
        images = sum(len(serialize_message(m)) for m in msgs[:2])
        regions = sum(len(serialize_message(m)) for m in msgs[2:])
        sizes[form] = regions
        share = f'{100 * regions / sizes["full"]:6.2f} %'
        print(f'  {form:<10} {regions:>12,} {images + regions:>12,}  {share}')
    return sizes


class _Peer:
    def __init__(self, clients: int = 1) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node

        from smolrgpt_ros.srv import SpatialQuery

        rclpy.init()
        self.node = Node('bench_node_peer')
        self.clients = [
            self.node.create_client(SpatialQuery, 'spatial_query') for _ in range(clients)
        ]
        self.diagnostics: list = []
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 10)
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def synchronised(self, after: float) -> int:
        """The node's 'frames synchronised' from a /diagnostics report made after ``after``."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for msg in reversed(self.diagnostics):
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                if stamp > after:
                    values = {kv.key: kv.value for kv in msg.status[0].values}
                    return int(values['frames synchronised'])
            time.sleep(0.05)
        raise RuntimeError('no /diagnostics report from the node')

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def _cpu_s(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')  # utime + stime


def bench_ingest(args: argparse.Namespace) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from smolrgpt_core.testing import make_tiny_checkpoint
    from smolrgpt_ros.msg import RegionArray, RegionMaskArray
    from smolrgpt_ros.node_process import NodeProcess

    checkpoint = make_tiny_checkpoint(Path(tempfile.mkdtemp(prefix='bench_node_')))
    print(
        f'ingest, {args.size[0]}x{args.size[1]} rgb8 + 16UC1 + {args.regions} regions, '
        f'RELIABLE, {args.seconds:g} s per rate (frames synchronised / published, node CPU):'
    )
    for form in args.forms:
        extra = {'regions.form': 'instances' if form == 'instances' else 'masks'}
        node = NodeProcess(str(checkpoint), extra_params=extra)
        node.start()
        peer = _Peer()
        try:
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            kinds = [Image, Image] + (
                [Image, RegionArray] if form == 'instances' else [RegionMaskArray]
            )
            names = ['rgb/image', 'depth/image'] + (
                ['instances', 'regions'] if form == 'instances' else ['regions']
            )
            pubs = [peer.node.create_publisher(k, n, qos) for k, n in zip(kinds, names)]
            frame = _frame_msgs(form, args.size, args.regions, args.region_size)
            deadline = time.monotonic() + 60
            while not all(p.get_subscription_count() for p in pubs):
                if time.monotonic() > deadline:
                    raise RuntimeError(f'the node never subscribed: {node.log_tail()}')
                time.sleep(0.1)
            time.sleep(1.0)
            base = 1_000_000_000
            for rate in args.rates:
                n = max(2, round(rate * args.seconds))
                before = peer.synchronised(time.time())
                cpu0, start = _cpu_s(node.proc.pid), time.perf_counter()
                for k in range(n):
                    _stamp(frame, base + k * round(1e9 / rate))
                    for pub, msg in zip(pubs, frame):
                        pub.publish(msg)
                    delay = start + (k + 1) / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                wall = time.perf_counter() - start
                time.sleep(1.5)  # let the last frames arrive
                cpu = (_cpu_s(node.proc.pid) - cpu0) / (wall + 1.5)
                kept = peer.synchronised(time.time()) - before
                base += 100_000_000_000
                verdict = 'none dropped' if kept == n else f'{n - kept} dropped'
                print(
                    f'  {form:<10} {rate:5.1f} Hz ({n / wall:5.1f} published): {kept:3d}/{n:<3d} '
                    f'{verdict:<12} node CPU {100 * cpu:4.0f} %'
                )
        finally:
            peer.close()
            node.stop()


def _scene() -> tuple[tuple, list[tuple[str, list[int]]]]:
    """One synthetic warehouse frame (cropped masks) and its questions."""
    from sensor_msgs.msg import Image as ImageMsg

    from smolrgpt_ros.image_conversion import numpy_to_imgmsg
    from smolrgpt_ros.region_forms import encode_regions
    from training.dataset_bag import frames_from_dataset
    from training.synth.generate import generate

    data = Path(tempfile.mkdtemp(prefix='bench_node_scene_')) / 'data'
    generate(data, 10, 2026, 640, 360, {'nvidia'}, progress=False)
    frame = next(iter(frames_from_dataset(data, 'val')))
    rgb = numpy_to_imgmsg(frame.rgb, 'rgb8', msg_type=ImageMsg)
    depth = numpy_to_imgmsg(frame.depth, '16UC1' if frame.depth.dtype == np.uint16 else 'mono8')
    (regions,) = encode_regions(
        'cropped',
        frame.masks,
        frame.region_ids,
        frame.labels,
        types=_types(),
        image=numpy_to_imgmsg,
        header=rgb.header,
    )
    return (rgb, depth, regions), [(q.question, q.region_ids) for q in frame.questions]


def bench_calls(args: argparse.Namespace) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from smolrgpt_ros.msg import RegionMaskArray
    from smolrgpt_ros.node_process import NodeProcess
    from smolrgpt_ros.srv import SpatialQuery

    msgs, questions = _scene()
    extra = {'sync.max_age_s': '0.0'}  # the frame is published once, then asked about at length
    if args.batch_max:
        extra['requests.batch_max'] = str(args.batch_max)
    if args.batch_window >= 0:
        extra['requests.batch_window_s'] = str(args.batch_window)
    node = NodeProcess('', extra_params=extra)  # '' = the embedded model
    node.start()
    peer = _Peer(args.clients)
    try:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pubs = [
            peer.node.create_publisher(Image, 'rgb/image', qos),
            peer.node.create_publisher(Image, 'depth/image', qos),
            peer.node.create_publisher(RegionMaskArray, 'regions', qos),
        ]
        stamp = 5_000_000_000
        _stamp(msgs, stamp)

        def request(k: int) -> SpatialQuery.Request:
            question, ids = questions[k % len(questions)]
            r = SpatialQuery.Request(question=question, region_ids=ids, mode=args.mode)
            r.stamp.sec, r.stamp.nanosec = divmod(stamp, 1_000_000_000)
            return r

        client = peer.clients[0]
        assert client.wait_for_service(timeout_sec=120), node.log_tail()
        deadline = time.monotonic() + 60
        while True:
            for pub, msg in zip(pubs, msgs):
                pub.publish(msg)
            time.sleep(0.2)
            first = client.call(request(0), timeout_sec=60)
            if (
                first is not None
                and 'no frame' not in first.error
                and 'no synchron' not in first.error
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f'the node never had the frame: {node.log_tail()}')
        rows: list[tuple[float, object]] = []
        lock = threading.Lock()
        per_client = [
            args.calls // args.clients + (k < args.calls % args.clients)
            for k in range(args.clients)
        ]

        def run_client(c: int) -> None:
            for n in range(per_client[c]):
                sent = time.perf_counter()
                response = peer.clients[c].call(request(c + n * args.clients), timeout_sec=60)
                with lock:
                    rows.append(((time.perf_counter() - sent) * 1e3, response))

        threads = [threading.Thread(target=run_client, args=(c,)) for c in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        lost = sum(r is None for _, r in rows)
        answered = [(ms, r) for ms, r in rows if r is not None and r.success]
        refused = Counter(
            r.error.split(':')[0] for _, r in rows if r is not None and not r.success
        )
        ms = np.array([m for m, _ in answered]) if answered else np.array([np.nan])
        batch = np.mean([r.batch_size for _, r in answered]) if answered else 0.0
        sources = Counter(r.source for _, r in answered)
        print(
            f'calls: {args.calls} from {args.clients} clients, embedded model, mode '
            f'{args.mode or "(answer.mode)"}, requests.batch_max {args.batch_max or "default"}:'
        )
        print(
            f'  answered {len(answered)}/{args.calls} ({100 * len(answered) / args.calls:.1f} %), '
            f'lost {lost}, refused {dict(refused) or 0}; {len(answered) / wall:.1f} answers/s '
            f'over {wall:.1f} s'
        )
        print(
            f'  round trip ms p50 {np.percentile(ms, 50):.0f}  p95 {np.percentile(ms, 95):.0f}; '
            f'mean batch {batch:.2f}; sources {dict(sources)}'
        )
    finally:
        peer.close()
        node.stop()


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split('x')
    return int(w), int(h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', choices=('bytes', 'ingest', 'calls'), action='append')
    parser.add_argument('--size', type=_size, default=(1920, 1080))
    parser.add_argument('--regions', type=int, default=10)
    parser.add_argument(
        '--region-size',
        type=_size,
        default=(160, 110),
        help='a 1.2 m pallet 8-10 m away through a 1080p lens (fx ~1100 px): ~130-165 px wide',
    )
    parser.add_argument('--forms', type=lambda t: t.split(','), default=list(FORMS))
    parser.add_argument(
        '--rates', type=lambda t: [float(r) for r in t.split(',')], default=[5, 10, 15]
    )
    parser.add_argument('--seconds', type=float, default=6.0, help='per ingest rate')
    parser.add_argument('--calls', type=int, default=1000)
    parser.add_argument('--clients', type=int, default=8)
    parser.add_argument('--mode', default='model', help="request mode ('' = answer.mode)")
    parser.add_argument('--batch-max', type=int, default=0, help='0 = the node default')
    parser.add_argument(
        '--batch-window', type=float, default=-1.0, help='requests.batch_window_s; < 0 = default'
    )
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100 // 10))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    only = args.only or ['bytes', 'ingest', 'calls']
    if 'bytes' in only:
        bench_bytes(args)
    if 'ingest' in only:
        bench_ingest(args)
    if 'calls' in only:
        bench_calls(args)
    print(f'load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores')


if __name__ == '__main__':
    main()
