"""``smolrgpt query``: call /spatial_query, the twin of ``ros2 service call`` (or, with
``--action``, of ``ros2 action send_goal --feedback``).

``smolrgpt query "Is <region3> left of <region0>?"`` does what
``ros2 service call /spatial_query smolrgpt_ros/srv/SpatialQuery
"{question: 'Is <region3> left of <region0>?'}"`` does, and prints the response the same way.
``smolrgpt query --action ...`` sends the goal to the action of the same name, prints every
feedback (the partial answer) and the result as ``ros2 action send_goal --feedback`` does, and
cancels the goal on Ctrl-C.
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
    parser.add_argument(
        '--mode',
        choices=('', 'model', 'geometry', 'hybrid'),
        default='',
        help="model | geometry | hybrid (default: the node's answer.mode)",
    )
    parser.add_argument('--service', default='spatial_query', help='service (or action) name')
    parser.add_argument('--timeout', type=float, default=30.0, help='seconds to wait')
    parser.add_argument(
        '--action',
        action='store_true',
        help='send a goal to the action instead, printing feedback as it comes',
    )
    parser.add_argument(
        '--deadline',
        type=float,
        default=0.0,
        help="with --action: the goal's timeout_s (the node aborts it after that; 0 = none)",
    )


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
    if args.deadline < 0:
        raise CommandError(f'--deadline {args.deadline}: must be >= 0 seconds (0: none)')
    import rclpy
    from rclpy.node import Node

    from smolrgpt_ros.srv import SpatialQuery

    if args.action:
        return _send_goal(args, sec, nanosec)
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
            question=args.question,
            region_ids=args.region_ids,
            max_new_tokens=args.max_new_tokens,
            mode=args.mode,
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


def message_to_yaml(msg: object) -> str:
    """A message as YAML, field by field in declaration order (as rosidl_runtime_py's)."""
    import yaml

    def plain(value: object) -> object:
        if hasattr(value, 'get_fields_and_field_types'):
            return {
                name: plain(getattr(value, name)) for name in value.get_fields_and_field_types()
            }
        if isinstance(value, (list, tuple)) or type(value).__name__ in ('array', 'ndarray'):
            return [plain(v) for v in value]
        if isinstance(value, float) and value != value:
            return float('nan')
        return value

    return yaml.safe_dump(plain(msg), sort_keys=False, allow_unicode=True, width=10_000)


def _send_goal(args: argparse.Namespace, sec: int, nanosec: int) -> int:
    """``ros2 action send_goal --feedback`` to the node's action (same output)."""
    import time

    from action_msgs.msg import GoalStatus
    import rclpy
    from rclpy.action import ActionClient
    from rclpy.node import Node

    from smolrgpt_cli.errors import CommandError
    from smolrgpt_ros.action import SpatialQuery

    names = {
        getattr(GoalStatus, name): name.removeprefix('STATUS_')
        for name in dir(GoalStatus)
        if name.startswith('STATUS_')
    }
    rclpy.init()
    try:
        node = Node('smolrgpt_query_action_client')
        client = ActionClient(node, SpatialQuery, args.service)
        print('Waiting for an action server to become available...')
        if not client.wait_for_server(timeout_sec=args.timeout):
            raise CommandError(
                f'action {args.service} not available after {args.timeout} s '
                '(is the node running?)'
            )
        goal = SpatialQuery.Goal(
            question=args.question,
            region_ids=args.region_ids,
            max_new_tokens=args.max_new_tokens,
            mode=args.mode,
            timeout_s=args.deadline,
        )
        goal.stamp.sec, goal.stamp.nanosec = sec, nanosec
        print(f'Sending goal:\n     {message_to_yaml(goal)}')

        def on_feedback(msg: object) -> None:
            print(f'Feedback:\n    {message_to_yaml(msg.feedback)}', flush=True)

        def spin_until(future: object, timeout_s: float) -> None:
            end = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            if not future.done():
                raise CommandError(f'no reply within {timeout_s} s')

        sent = client.send_goal_async(goal, feedback_callback=on_feedback)
        spin_until(sent, args.timeout)
        handle = sent.result()
        if not handle.accepted:
            print('Goal was rejected.')
            return 1
        print(f'Goal accepted with ID: {bytes(handle.goal_id.uuid).hex()}\n')
        result = handle.get_result_async()
        try:
            spin_until(result, args.timeout + args.deadline)
        except KeyboardInterrupt:
            print('Canceling goal...')
            spin_until(handle.cancel_goal_async(), args.timeout)
            spin_until(result, args.timeout)
        response = result.result()
        print(f'Result:\n    {message_to_yaml(response.result)}')
        print(f'Goal finished with status: {names.get(response.status, response.status)}')
        node.destroy_node()
        return 0 if response.status == GoalStatus.STATUS_SUCCEEDED else 1
    finally:
        rclpy.try_shutdown()
