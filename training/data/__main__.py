"""``python -m training.data --layout L --data-root DIR``: validate a dataset and summarise it.

Prints records read/skipped, the categories, and the first problems with their record ids.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m training.data', description=__doc__)
    parser.add_argument(
        '--layout',
        required=True,
        choices=('warehouse', 'parquet', 'spatialrgpt-bench'),
        help='warehouse: NVIDIA JSON layout; parquet: SmolRGPT parquet; '
        'spatialrgpt-bench: SpatialRGPT-Bench_v1.json',
    )
    parser.add_argument('--data-root', required=True, help='the dataset folder')
    parser.add_argument('--split', help='train / val / test (warehouse default: train)')
    parser.add_argument('--image-root', help='bench only: folder the image file_paths start at')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='stop at the first bad record instead of skipping and counting',
    )
    parser.add_argument(
        '--no-file-check',
        action='store_true',
        help='do not open image files (faster; skips size and existence checks)',
    )
    parser.add_argument('--show', type=int, default=10, help='problems to list (default 10)')
    return parser


def make_reader(args: argparse.Namespace):
    check = not args.no_file_check
    if args.layout == 'warehouse':
        from training.data.warehouse_json import WarehouseJsonReader

        return WarehouseJsonReader(args.data_root, args.split or 'train', args.strict, check)
    if args.layout == 'parquet':
        from training.data.parquet import ParquetReader

        return ParquetReader(args.data_root, args.split, args.strict, check)
    from training.data.spatialrgpt_bench import SpatialRGPTBenchReader

    return SpatialRGPTBenchReader(
        args.data_root, args.image_root, strict=args.strict, check_files=check
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    from training.data.validation import RecordError

    try:
        reader = make_reader(args)
        categories = Counter(sample.category for sample in reader)
    except (FileNotFoundError, ValueError) as exc:
        label = 'bad record' if isinstance(exc, RecordError) else 'error'
        print(f'{label}: {exc}', file=sys.stderr)
        return 2
    report = reader.report
    print(report.summary())
    for name, n in sorted(categories.items(), key=lambda kv: str(kv[0])):
        print(f'  {name}: {n}')
    for record_id, problem in report.problems[: args.show]:
        print(f'  skipped {record_id}: {problem}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
