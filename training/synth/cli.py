"""``smolrgpt synth``: procedural RGB-D warehouse scenes with questions and answers."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
import re
import time

HELP = 'generate synthetic RGB-D warehouse scenes with questions (NVIDIA and/or parquet layout)'

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', required=True, type=Path, help='output dataset folder')
    parser.add_argument('--scenes', type=int, default=100, help='number of scenes (default 100)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (same seed, same bytes)')
    parser.add_argument(
        '--format',
        choices=('nvidia', 'parquet', 'both'),
        default='both',
        help='annotation layout (default both)',
    )
    parser.add_argument('--size', default='640x360', help='image WIDTHxHEIGHT (default 640x360)')
    parser.add_argument(
        '--questions-per-category',
        type=int,
        default=2,
        help='questions of each category asked per scene (default 2)',
    )
    parser.add_argument(
        '--float-depth', action='store_true', help='also save float32 depth in metres (.npy)'
    )
    parser.add_argument(
        '--previews',
        type=int,
        default=0,
        help='save this many RGB | depth | mask-overlay previews in OUT/previews',
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r'(\d+)x(\d+)', text.strip())
    if not match:
        raise ValueError(f'--size must look like 640x360, got {text!r}')
    width, height = int(match.group(1)), int(match.group(2))
    if not (32 <= width <= 4096 and 32 <= height <= 4096):
        raise ValueError(f'--size {text}: width and height must be within 32..4096')
    return width, height


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from training.synth.generate import generate

    try:
        width, height = parse_size(args.size)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    if args.scenes < 1:
        raise CommandError('--scenes must be at least 1')
    formats = {'nvidia', 'parquet'} if args.format == 'both' else {args.format}
    start = time.perf_counter()
    counts = generate(
        args.out,
        args.scenes,
        args.seed,
        width,
        height,
        formats,
        per_category=args.questions_per_category,
        float_depth=args.float_depth,
        previews=args.previews,
        progress=not args.no_progress,
    )
    elapsed = time.perf_counter() - start
    print(
        f'{args.scenes} scenes in {elapsed:.1f} s ({args.scenes / elapsed:.1f} scenes/s); '
        + ', '.join(f'{split}: {n} QA' for split, n in counts.items())
        + f' -> {args.out}'
    )
    return 0
