"""``smolrgpt bag from-dataset``: write a dataset split into a rosbag2 (no ROS needed)."""

from __future__ import annotations

import argparse

HELP = 'write rosbag2 files from a dataset split (RGB, depth, region masks, questions)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='bag_command', metavar='ACTION', required=True)
    make = sub.add_parser(
        'from-dataset',
        help='warehouse split (NVIDIA layout) -> rosbag2',
        description='warehouse split (NVIDIA layout) -> rosbag2',
    )
    make.add_argument('--data-root', required=True, help='folder with train/val/test.json')
    make.add_argument('--split', default='val')
    make.add_argument('--out', required=True, help='new bag directory')
    make.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    make.add_argument('--rate', type=float, default=2.0, help='frames per second of bag time')
    make.add_argument('--limit', type=int, default=0, help='at most this many frames (0 = all)')


def run(args: argparse.Namespace) -> int:
    from smolrgpt_core.cli import CommandError
    from smolrgpt_ros.bags import BagError, write_bag
    from smolrgpt_ros.dataset_bag import frames_from_dataset

    try:
        count = write_bag(
            args.out,
            frames_from_dataset(args.data_root, args.split, args.rate, args.limit),
            storage=args.storage,
        )
    except (BagError, FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(
        f'wrote {count} frames from {args.data_root} ({args.split}) to {args.out} ({args.storage})'
    )
    return 0
