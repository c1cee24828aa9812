"""The ``smolrgpt`` command: one entry point, one subcommand per job (like ``git`` or ``ros2``).

Each subcommand lives in the layer that owns its job (the model core, the ROS adapter or
training) and exposes

* ``HELP``: a one-line summary shown by ``smolrgpt --help``;
* ``add_arguments(parser)``: declares its flags (must not import torch or ROS, so that
  ``--help`` stays fast and works on a machine without them);
* ``run(args) -> int``: does the work and returns the exit code.

Adding a subcommand means adding one line to ``SUBCOMMANDS``. Subcommands of a layer that is
not installed are left out (a robot installs no ``training/``).

Whatever goes wrong, the user reads one line on stderr:

* a ``CommandError`` (input the command recognised as bad) or a bad command line:
  ``smolrgpt <cmd>: error: <message>``, exit code 2;
* any other exception: one sentence saying what failed, exit code 1 (``--verbose`` prints the
  traceback above it);
* Ctrl-C: ``smolrgpt <cmd>: interrupted``, exit code 130.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import importlib
import importlib.util
import logging
import sys
import traceback
from typing import NoReturn

from smolrgpt_cli.errors import CommandError
from smolrgpt_core import __version__

# subcommand name -> module implementing it
SUBCOMMANDS: dict[str, str] = {
    'info': 'smolrgpt_core.commands.info',
    'ask': 'smolrgpt_core.commands.ask',
    'export': 'smolrgpt_core.commands.export',
    'node': 'smolrgpt_ros.commands.node',
    'query': 'smolrgpt_ros.commands.query',
    'replay-eval': 'smolrgpt_ros.commands.replay_eval',
    'bag': 'training.dataset_bag',
    'demo': 'training.demo',
    'synth': 'training.synth.cli',
    'score': 'training.metrics.cli',
    'submission': 'training.submission.cli',
    'classifier': 'training.classifier',
    'bench': 'training.bench',
    'train': 'training.train',
    'generate': 'training.generate',
}


def one_line(text: str) -> str:
    """Whitespace (line breaks included) collapsed, so a message is always one line."""
    return ' '.join(text.split())


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract (no usage block above the error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n')


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog='smolrgpt',
        description='SmolRGPT for ROS 2: region-aware spatial question answering on RGB-D.',
    )
    parser.add_argument('--version', action='version', version=f'smolrgpt {__version__}')
    parser.add_argument(
        '-v', '--verbose', action='store_true', help='debug logging; tracebacks of failures'
    )
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, module_name in SUBCOMMANDS.items():
        if importlib.util.find_spec(module_name.partition('.')[0]) is None:
            continue  # a layer this install lacks: a robot has no training/ (CMakeLists.txt)
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def describe(exc: BaseException, verbose: bool = False) -> str:
    """One sentence for a failure no command anticipated (the traceback is for --verbose)."""
    if isinstance(exc, MemoryError):
        return 'out of memory: an input is larger than this machine can hold'
    if isinstance(exc, UnicodeDecodeError):
        return f'an input file is not UTF-8 text ({exc.reason} at byte {exc.start})'
    if isinstance(exc, OSError) and exc.filename is not None:
        return f'cannot open {exc.filename}: {exc.strerror or one_line(str(exc))}'
    text = one_line(str(exc)) or 'no message'
    hint = '' if verbose else '; run with --verbose for the traceback'
    return f'{text} ({type(exc).__name__}{hint})'


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(levelname)s %(name)s: %(message)s',
    )
    prefix = f'smolrgpt {args.command}'
    try:
        return int(args._run(args) or 0)
    except CommandError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f'{prefix}: error: {one_line(str(exc))}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{prefix}: interrupted', file=sys.stderr)
        return 130
    except Exception as exc:  # the contract: whatever failed, the user reads one sentence
        if args.verbose:
            traceback.print_exc()
        print(f'{prefix}: error: {describe(exc, args.verbose)}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
