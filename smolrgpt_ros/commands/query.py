"""``smolrgpt query``: call /spatial_query, the twin of ``ros2 service call``.

``smolrgpt query "Is <region3> left of <region0>?"`` does what
``ros2 service call /spatial_query smolrgpt_ros/srv/SpatialQuery
"{question: 'Is <region3> left of <region0>?'}"`` does, and prints the response the same way.
"""

from __future__ import annotations

import argparse
import importlib.util
import re

HELP = 'ask the running node a question over /spatial_query (like ros2 service call)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('question', help='regions as <mask> (with --region-ids) or <regionN>')
    parser.add_argument(
        '--region-ids',
        type=int,
        nargs='*',
        default=[],
        help='region ids for the <mask> placeholders, in order',
    )
    parser.add_argument(
        '--stamp', default='0', help='frame stamp as SEC[.NANOSEC] (default 0: the latest frame)'
    )
    parser.add_argument('--max-new-tokens', type=int, default=0)
    parser.add_argument('--service', default='spatial_query', help='service name')
    parser.add_argument('--timeout', type=float, default=30.0, help='seconds to wait')


def parse_stamp(text: str) -> tuple[int, int]:
    from smolrgpt_cli.errors import CommandError

    match = re.fullmatch(r'(\d+)(?:\.(\d+))?', text, re.ASCII)
    if match is None or int(match.group(1)) >= 2**31:  # builtin_interfaces/Time.sec is int32
        raise CommandError(f'--stamp {text}: expected SEC or SEC.NANOSEC (SEC below 2^31)')
    frac = match.group(2) or ''
    return int(match.group(1)), int(frac.ljust(9, '0')[:9]) if frac else 0


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError

    if importlib.util.find_spec('rclpy') is None:
        raise CommandError('rclpy is not installed: run `make setup` or source a ROS 2 install')
    sec, nanosec = parse_stamp(args.stamp)
    if not args.timeout > 0:
        raise CommandError(f'--timeout {args.timeout}: must be > 0 seconds')
    if not 0 <= args.max_new_tokens < 2**32:  # the request field is a uint32
        raise CommandError(
            f'--max-new-tokens {args.max_new_tokens}: must be >= 0 (0: the default)'
        )
    import rclpy
    from rclpy.node import Node

    from smolrgpt_ros.srv import SpatialQuery

    rclpy.init()
    try:
        node = Node('smolrgpt_query_client')
        client = node.create_client(SpatialQuery, args.service)
        if not client.wait_for_service(timeout_sec=0.5):
            print('waiting for service to become available...')
            if not client.wait_for_service(timeout_sec=args.timeout):
                raise CommandError(
                    f'service {args.service} not available after '
                    f'{args.timeout} s (is the node running?)'
                )
        request = SpatialQuery.Request(
            question=args.question, region_ids=args.region_ids, max_new_tokens=args.max_new_tokens
        )
        request.stamp.sec, request.stamp.nanosec = sec, nanosec
        print(f'requester: making request: {request!r}\n')
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=args.timeout)
        if not future.done():
            raise CommandError(f'no response within {args.timeout} s')
        response = future.result()
        print(f'response:\n{response!r}\n')
        node.destroy_node()
        return 0 if response.success else 1
    finally:
        rclpy.try_shutdown()
