"""``smolrgpt node``: start the spatial-query node, for machines without the ``ros2`` CLI.

Equivalent to ``ros2 run smolrgpt_ros spatial_query_node --ros-args --params-file FILE`` (and
to ``ros2 launch smolrgpt_ros warehouse.launch.py`` with its default arguments).
"""

from __future__ import annotations

import argparse
import importlib.util

HELP = 'start the spatial-query node with a parameters YAML (like ros2 run / ros2 launch)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--params', default=None, help='ROS 2 parameters YAML (default: config/warehouse.yaml)'
    )
    parser.add_argument(
        '-p',
        '--param',
        action='append',
        default=[],
        metavar='NAME:=VALUE',
        help='override one parameter, e.g. -p model.backend:=onnxruntime',
    )
    parser.add_argument(
        '-r',
        '--remap',
        action='append',
        default=[],
        metavar='FROM:=TO',
        help='remap a topic, e.g. -r rgb/image:=/camera/color/image_raw',
    )
    parser.add_argument('--namespace', default='', help='node namespace')


def _check_yaml(path: str) -> None:
    """A UTF-8 YAML mapping (node name -> ros__parameters), or a one-line CommandError."""
    import yaml

    from smolrgpt_cli.errors import CommandError

    try:
        with open(path, encoding='utf-8') as f:
            doc = yaml.safe_load(f)
    except UnicodeDecodeError as exc:
        raise CommandError(f'{path}: not UTF-8 text') from exc
    except yaml.YAMLError as exc:
        raise CommandError(f'{path}: not YAML ({" ".join(str(exc).split())})') from exc
    if doc is not None and not isinstance(doc, dict):
        raise CommandError(
            f'{path}: expected a mapping of node names to ros__parameters, '
            f'got a {type(doc).__name__}'
        )


def ros_args(args: argparse.Namespace) -> list[str]:
    from pathlib import Path

    from smolrgpt_cli.errors import CommandError
    from smolrgpt_ros.node_config import NodeConfigError, load_params_file

    params = args.params or str(Path(__file__).resolve().parents[2] / 'config' / 'warehouse.yaml')
    if not Path(params).is_file():
        raise CommandError(f'{params}: no such parameters file')
    _check_yaml(params)
    try:
        load_params_file(params)  # fail here, with the parameter's name, not inside the node
    except NodeConfigError as exc:
        raise CommandError(str(exc)) from exc
    argv = ['--ros-args', '--params-file', params]
    for item in args.param:
        if ':=' not in item:
            raise CommandError(f'-p {item}: expected NAME:=VALUE')
        argv += ['-p', item]
    for item in args.remap:
        if ':=' not in item:
            raise CommandError(f'-r {item}: expected FROM:=TO')
        argv += ['-r', item]
    if args.namespace:  # rcl takes fully qualified namespaces only
        argv += ['-r', f'__ns:=/{args.namespace.lstrip("/")}']
    return argv


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError

    if importlib.util.find_spec('rclpy') is None:
        raise CommandError('rclpy is not installed: run `make setup` or source a ROS 2 install')
    argv = ros_args(args)
    from smolrgpt_ros.spatial_query_node import main

    return main(['smolrgpt-node', *argv])
