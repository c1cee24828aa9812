"""The ``smolrgpt`` command: one entry point, one subcommand per job (like ``git`` or ``ros2``).

Each subcommand lives in its own module, which exposes

* ``HELP``: a one-line summary shown by ``smolrgpt --help``;
* ``add_arguments(parser)``: declares its flags (must not import torch or ROS, so that
  ``--help`` stays fast and works on a machine without them);
* ``run(args) -> int``: does the work and returns the exit code.

Adding a subcommand means adding one line to ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import importlib
import logging
import sys

from smolrgpt_core import __version__

# subcommand name -> module implementing it
SUBCOMMANDS: dict[str, str] = {
    'info': 'smolrgpt_core.commands.info',
    'ask': 'smolrgpt_core.commands.ask',
    'export': 'smolrgpt_core.commands.export',
    'node': 'smolrgpt_ros.commands.node',
    'query': 'smolrgpt_ros.commands.query',
    'bag': 'smolrgpt_ros.commands.bag',
    'replay-eval': 'smolrgpt_ros.commands.replay_eval',
    'demo': 'smolrgpt_ros.commands.demo',
    'synth': 'training.synth.cli',
    'score': 'training.metrics.cli',
    'submission': 'training.submission.cli',
    'classifier': 'training.classifier',
    'bench': 'training.bench',
    'train': 'training.train',
    'generate': 'training.generate',
}


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 2 (no traceback)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='smolrgpt',
        description='SmolRGPT for ROS 2: region-aware spatial question answering on RGB-D.',
    )
    parser.add_argument('--version', action='version', version=f'smolrgpt {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(levelname)s %(name)s: %(message)s',
    )
    try:
        return int(args._run(args) or 0)
    except CommandError as exc:
        print(f'smolrgpt {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'smolrgpt {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
