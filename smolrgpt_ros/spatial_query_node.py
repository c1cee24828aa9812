"""The spatial-query node.

Placeholder until the node lands: the interfaces (``smolrgpt_ros.msg``/``.srv``) are the
public contract already, but the node that serves ``/spatial_query`` is not implemented yet.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import sys

NOT_YET = (
    'spatial_query_node: the ROS node is not implemented yet in this version; '
    'use `smolrgpt info` to check the installation'
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='spatial_query_node',
        description='SmolRGPT spatial-query node (NOT IMPLEMENTED YET in this version: it only '
        'prints a message and exits with status 1).',
    )
    # ROS passes --ros-args ...; accept and ignore them so `ros2 run` gets the clear message.
    parser.parse_known_args(argv)
    print(NOT_YET, file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
