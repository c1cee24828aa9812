"""``smolrgpt score warehouse|spatialrgpt``: official scores, a JSON report and a bar chart."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

HELP = 'score predictions: warehouse (official AIC25 Track 3 metric) or spatialrgpt (bench)'

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='benchmark', metavar='BENCHMARK', required=True)
    wh = sub.add_parser('warehouse', help='the official warehouse metric (mean of 4 categories)')
    wh.add_argument(
        '--gt',
        required=True,
        type=Path,
        help='ground truth with answers: val.json (NVIDIA layout) or a JSON list '
        'of {id, category, normalized_answer}',
    )
    wh.add_argument(
        '--normalize',
        action='store_true',
        help='predictions are free-form text (output/answer column): normalise them '
        'with the rule normaliser first',
    )
    _add_common(wh)
    sr = sub.add_parser('spatialrgpt', help='SpatialRGPT-Bench with the rule judge')
    sr.add_argument(
        '--gt', required=True, type=Path, help='SpatialRGPT-Bench_v1.json (list of bench records)'
    )
    _add_common(sr)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--pred',
        required=True,
        type=Path,
        help='predictions: JSON list of {id, normalized_answer} or CSV with an id column',
    )
    parser.add_argument(
        '--report', type=Path, help='JSON report path (default: next to --pred, *.score.json)'
    )
    parser.add_argument(
        '--chart', type=Path, help='bar chart PNG path (default: next to --pred, *.score.png)'
    )
    parser.add_argument('--no-chart', action='store_true', help='do not draw the bar chart')


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from training.metrics.predictions import PredictionFileError, load_records

    try:
        gt = load_records(args.gt)
        pred = load_records(args.pred)
    except PredictionFileError as exc:
        raise CommandError(str(exc)) from exc
    if args.benchmark == 'warehouse':
        report, chart_scores, table = _warehouse(gt, pred, args.normalize)
        title = f'warehouse: final {report["final_score"]:.2f}'
    else:
        report, chart_scores, table = spatialrgpt_report(gt, pred)
        title = (
            f'SpatialRGPT-Bench (rule judge): qual {report["qualitative_accuracy"]:.1f}, '
            f'quan {report["quantitative_accuracy"]:.1f}'
        )
    report['gt'] = str(args.gt)
    report['pred'] = str(args.pred)
    stem = args.pred.with_suffix('')
    from training.metrics.report import bar_chart, write_json

    report_path = write_json(args.report or stem.with_name(stem.name + '.score.json'), report)
    print(table)
    print(f'report: {report_path}')
    if not args.no_chart:
        chart_path = bar_chart(
            args.chart or stem.with_name(stem.name + '.score.png'), chart_scores, title
        )
        print(f'chart: {chart_path}')
    return 0


def _warehouse(
    gt: list[dict[str, Any]], pred: list[dict[str, Any]], normalize: bool
) -> tuple[dict[str, Any], dict[str, float], str]:
    from smolrgpt_cli.errors import CommandError
    from smolrgpt_core.warehouse_metric import ScoringError, score_warehouse
    from training.metrics.report import format_table

    if normalize:
        pred = _normalize_predictions(gt, pred)
    try:
        score = score_warehouse(gt, pred)
    except ScoringError as exc:
        raise CommandError(str(exc)) from exc
    report = score.to_dict()
    rows = []
    for name, entry in report['per_category'].items():
        numeric = entry.get('numeric', {})
        rows.append(
            [
                name,
                entry['total'],
                entry['accuracy'],
                entry['unparsable'],
                numeric.get('abs_rel'),
                numeric.get('rmse'),
            ]
        )
        if entry['unparsable']:
            log.warning(
                '%s: %d non-numeric predictions scored as misses (e.g. %s)',
                name,
                entry['unparsable'],
                entry['unparsable_ids'][:3],
            )
    table = format_table(['category', 'n', 'accuracy', 'unparsable', 'abs_rel', 'rmse'], rows)
    table += f'\nfinal score: {report["final_score"]:.2f}'
    scores = {n: e['accuracy'] for n, e in report['per_category'].items()}
    scores['final'] = report['final_score']
    return report, scores, table


def _normalize_predictions(
    gt: list[dict[str, Any]], pred: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Free-form predictions -> {id, normalized_answer}; unreadable ones stay as text (misses)."""
    from smolrgpt_core.normalize import NormalizationError, normalize_answer
    from training.metrics.predictions import text_of

    by_id = {str(r['id']): r for r in gt}
    out = []
    failed = 0
    for record in pred:
        text = text_of(record)
        if text is None:
            text = str(record.get('normalized_answer', ''))
        truth = by_id.get(record['id'], {})
        question = _question_of(truth)
        try:
            value = normalize_answer(text, truth.get('category'), question)
        except NormalizationError:
            failed += 1
            value = text
        out.append({'id': record['id'], 'normalized_answer': value})
    if failed:
        log.warning('%d of %d predictions had no readable answer', failed, len(pred))
    return out


def _question_of(record: dict[str, Any]) -> str | None:
    turns = record.get('conversations') or []
    return turns[0].get('value') if turns and isinstance(turns[0], dict) else None


def spatialrgpt_report(
    gt: list[dict[str, Any]], pred: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, float], str]:
    from smolrgpt_cli.errors import CommandError
    from training.data.spatialrgpt_bench import BenchFormatError, bench_items
    from training.metrics.predictions import text_of
    from training.metrics.report import format_table
    from training.metrics.spatialrgpt import score_bench

    try:
        items = bench_items(gt)
    except BenchFormatError as exc:
        raise CommandError(str(exc)) from exc
    predictions = {}
    for record in pred:
        text = text_of(record)
        if text is None and record.get('normalized_answer') is not None:
            text = str(record['normalized_answer'])
        if text is not None:
            predictions[record['id']] = text
    missing = {i['id'] for i in items} - set(predictions)
    if missing:
        log.warning('%d bench items have no prediction; they count as failures', len(missing))
    try:
        score = score_bench(items, predictions)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    report = score.to_dict()
    rows = []
    for name, entry in report['per_category'].items():
        error = entry.get('abs_rel', entry.get('mean_error_deg'))
        rows.append([name, entry['total'], entry['accuracy'], error, entry['match_fail']])
    table = format_table(['category', 'n', 'success', 'abs_rel / deg', 'match_fail'], rows)
    table += (
        f'\nqualitative accuracy: {report["qualitative_accuracy"]:.2f}'
        f'\nquantitative accuracy: {report["quantitative_accuracy"]:.2f}'
    )
    scores = {n: e['accuracy'] for n, e in report['per_category'].items()}
    return report, scores, table
