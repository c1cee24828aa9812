"""``smolrgpt bench spatialrgpt``: run a checkpoint over SpatialRGPT-Bench and score it.

The model answers every bench question (grouped by image, resumable: ``answers.csv`` in the
output folder, ``id;output`` as the reference's ``answer_spacial_bench.csv``), then the rule
judge of ``training.metrics.spatialrgpt`` scores the answers: a table per category on the
terminal, ``score.json`` and ``score.png`` next to the answers.

The bench ships no depth. SmolRGPT feeds precomputed depth maps (its ``depths.tar``, one
``<image stem>.png`` per image): pass them with ``--depth-root`` (``DATA_ROOT/depths`` is used
when it exists). ``--flat-depth`` runs without depth (a constant image) and says so in the
report.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

HELP = 'run and score a benchmark: spatialrgpt (SpatialRGPT-Bench, rule judge)'
ANSWER_COLUMNS = ('id', 'output')

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.submission.cli import add_engine_arguments

    sub = parser.add_subparsers(dest='benchmark', metavar='BENCHMARK', required=True)
    sr = sub.add_parser('spatialrgpt', help='SpatialRGPT-Bench: generate, then the rule judge')
    sr.add_argument(
        '--data-root', required=True, type=Path, help='folder holding SpatialRGPT-Bench_v1.json'
    )
    sr.add_argument('--bench-file', default='SpatialRGPT-Bench_v1.json')
    sr.add_argument(
        '--image-root', type=Path, help='root of image_info.file_path (default: --data-root)'
    )
    depth = sr.add_mutually_exclusive_group()
    depth.add_argument(
        '--depth-root',
        type=Path,
        help='precomputed depth, <image stem>.png (default DATA_ROOT/depths)',
    )
    depth.add_argument(
        '--flat-depth',
        action='store_true',
        help='no depth maps: a constant depth image (depth cues lost)',
    )
    sr.add_argument(
        '--out',
        type=Path,
        default=Path('bench-spatialrgpt'),
        help='output folder: answers.csv (resumed), score.json, score.png',
    )
    sr.add_argument('--no-chart', action='store_true')
    add_engine_arguments(sr)


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from training import sharding
    from training.data.image_groups import group_by_image
    from training.data.spatialrgpt_bench import SpatialRGPTBenchReader
    from training.metrics.cli import spatialrgpt_report  # the `smolrgpt score spatialrgpt` scoring
    from training.metrics.report import bar_chart, write_json
    from training.submission.answering import flat_depth, stored_depth
    from training.submission.cli import load_engine
    from training.submission.raw_csv import RawCsvError, read_rows

    depth_root = args.depth_root
    if depth_root is None and not args.flat_depth:
        depth_root = args.data_root / 'depths'
        if not depth_root.is_dir():
            raise CommandError(
                f'SpatialRGPT-Bench has no depth and {depth_root} does not '
                'exist: pass --depth-root (precomputed <stem>.png maps) or '
                '--flat-depth'
            )
    try:
        reader = SpatialRGPTBenchReader(
            args.data_root,
            image_root=args.image_root,
            depth_root=depth_root,
            bench_file=args.bench_file,
        )
        groups = group_by_image(reader)
        records = json.loads(reader.path.read_text(encoding='utf-8'))
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    if reader.report.skipped:
        log.warning(
            '%s (e.g. %s); skipped items count as failures',
            reader.report.summary(),
            reader.report.problems[:2],
        )
    try:
        shard = sharding.current()  # under torchrun: this rank's images (and GPU)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    engine = load_engine(args)
    answers = args.out / 'answers.csv'
    try:
        stats = shard.answer_to_csv(
            engine,
            groups,
            answers,
            columns=ANSWER_COLUMNS,
            row=lambda s, text: (s.id, text),
            batch=args.batch,
            max_samples=args.max_samples,
            depth_fn=flat_depth if args.flat_depth else stored_depth,
            progress=not args.no_progress,
        )
        if not shard.main:
            return 0  # rank 0 scores the merged answers
        predictions = read_rows(answers)
    except (RawCsvError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(f'{answers}: {stats.summary()}')
    report, chart_scores, table = spatialrgpt_report(records, predictions)
    report.update(
        {
            'bench': str(reader.path),
            'answers': str(answers),
            'checkpoint': str(args.checkpoint or 'embedded'),
            'depth': 'flat (none)' if args.flat_depth else str(depth_root),
            'complete': stats.complete,
        }
    )
    print(table)
    print(f'report: {write_json(args.out / "score.json", report)}')
    if not args.no_chart:
        title = (
            f'SpatialRGPT-Bench (rule judge): qual {report["qualitative_accuracy"]:.1f}, '
            f'quan {report["quantitative_accuracy"]:.1f}'
        )
        print(f'chart: {bar_chart(args.out / "score.png", chart_scores, title)}')
    return 0
