"""``smolrgpt submission generate|normalize``: the AI City Challenge 2025 Track 3 submission.

generate:  warehouse split -> ``raw_output.csv`` (``id;image_id;output``), resumable;
normalize: ``raw_output.csv`` + the split's questions -> ``submission.json``
           (``[{id, normalized_answer}]``, every question id present).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from smolrgpt_core import settings
from smolrgpt_core.settings import InferenceSettings

HELP = 'warehouse submission: generate raw_output.csv | normalize it to submission.json'

log = logging.getLogger(__name__)


# the reference's generation length; the cap lets a user ask for more
SUBMISSION_SETTINGS = InferenceSettings.from_flat(
    {'model.device': 'auto', 'generation.max_new_tokens': 120}
)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags shared with ``smolrgpt bench``."""
    parser.add_argument(
        '--checkpoint', type=Path, help='checkpoint directory (default: the embedded model)'
    )
    settings.add_arguments(
        parser,
        (*settings.COMMON_FLAGS, 'answer.mode', 'answer.priors'),
        defaults=SUBMISSION_SETTINGS,
    )
    parser.add_argument(
        '--batch',
        type=int,
        default=64,
        help='questions per generation call (one image at a time; default 64)',
    )
    parser.add_argument(
        '--max-samples',
        type=int,
        default=0,
        help='stop after about this many new answers (0 = all); rerun to go on',
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def load_engine(args: argparse.Namespace, depth_pipeline: str | None = None) -> object:
    from smolrgpt_cli.errors import CommandError
    from smolrgpt_core.inference.engine import EngineError, SpatialQueryEngine
    from smolrgpt_core.paths import embedded_model_dir

    try:
        chosen = settings.from_args(args, SUBMISSION_SETTINGS)
        if depth_pipeline:
            chosen = InferenceSettings.from_flat({'depth.pipeline': depth_pipeline}, chosen)
        return SpatialQueryEngine.from_checkpoint(args.checkpoint or embedded_model_dir(), chosen)
    except (EngineError, FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    gen = sub.add_parser('generate', help='run the model over a split -> raw_output.csv')
    gen.add_argument(
        '--data-root',
        required=True,
        type=Path,
        help='dataset folder (test.json, test/images, test/depths)',
    )
    gen.add_argument('--split', default='test', help='test (default) or val')
    gen.add_argument(
        '--out',
        type=Path,
        default=Path('raw_output.csv'),
        help='raw output CSV; an existing one is resumed (default raw_output.csv)',
    )
    gen.add_argument(
        '--reference-depth-quirk',
        action='store_true',
        help='depth through the RGB pipeline (bilinear, [-1, 1]), as the '
        "reference's submission script; default: the training pipeline",
    )
    add_engine_arguments(gen)

    norm = sub.add_parser('normalize', help='raw_output.csv -> submission.json')
    norm.add_argument('--raw', required=True, type=Path, help='raw_output.csv (id;...;output)')
    norm.add_argument(
        '--questions',
        required=True,
        type=Path,
        help='the split file the raw outputs answer (test.json)',
    )
    norm.add_argument('--out', type=Path, default=Path('submission.json'))
    norm.add_argument(
        '--extractor',
        default='rules',
        choices=('rules', 'ollama'),
        help='how answers are read: rules (default, offline) or an Ollama LLM',
    )
    norm.add_argument(
        '--classifier',
        type=Path,
        help='category classifier JSON (smolrgpt classifier train): cross-checks '
        'the rules and decides when they cannot tell',
    )
    norm.add_argument('--ollama-model', default='qwen2.5:14b-instruct')
    norm.add_argument('--ollama-host', default='http://127.0.0.1:11434')
    norm.add_argument(
        '--stats',
        type=Path,
        help='write the fallback counts as JSON here (default: next to --out)',
    )


def run(args: argparse.Namespace) -> int:
    return _generate(args) if args.action == 'generate' else _normalize(args)


def _generate(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from training import sharding
    from training.data.image_groups import group_by_image
    from training.data.warehouse_json import WarehouseJsonReader
    from training.submission.answering import sensor_depth_of, stored_depth
    from training.submission.raw_csv import RAW_COLUMNS, RawCsvError

    try:
        reader = WarehouseJsonReader(args.data_root, args.split)
        groups = group_by_image(reader)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    if reader.report.skipped:
        log.warning(
            '%s.json: %s (e.g. %s); skipped records get no raw output (normalize '
            'gives them the default answer)',
            args.split,
            reader.report.summary(),
            reader.report.problems[:2],
        )
    try:
        shard = sharding.current()  # under torchrun: this rank's images (and GPU)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    engine = load_engine(args, 'rgb' if args.reference_depth_quirk else None)
    # model answers read the stored depth (the competition entry); geometry reads what a robot
    # would: metric depth and the intrinsics where the dataset has them, else the stored depth
    measured = engine.settings.answer.mode != 'model'
    try:
        stats = shard.answer_to_csv(
            engine,
            groups,
            args.out,
            columns=RAW_COLUMNS,
            batch=args.batch,
            row=lambda s, text: (s.id, s.meta.get('image', s.rgb_path.name), text),
            max_samples=args.max_samples,
            progress=not args.no_progress,
            depth_fn=sensor_depth_of if measured else stored_depth,
        )
    except (RawCsvError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    if shard.main:
        print(f'{args.out}: {stats.summary()}')
    return 0


def _normalize(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from training.submission.normalize import build_submission, load_questions, report_lines
    from training.submission.raw_csv import RawCsvError, read_rows

    try:
        questions = load_questions(args.questions)
        rows = read_rows(args.raw)
    except (ValueError, RawCsvError) as exc:
        raise CommandError(str(exc)) from exc
    if rows and 'output' not in rows[0]:
        raise CommandError(f'{args.raw}: no "output" column (columns: {", ".join(rows[0])})')
    outputs = {r['id']: r['output'] for r in rows}
    classifier = extractor = None
    if args.classifier:
        from training.classifier import CategoryClassifier

        try:
            classifier = CategoryClassifier.load(args.classifier)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
    if args.extractor == 'ollama':
        from training.submission.ollama_extractor import ExtractorUnavailable, OllamaExtractor

        try:
            extractor = OllamaExtractor(args.ollama_model, args.ollama_host)
            submission, stats = build_submission(
                questions, outputs, extractor=extractor, classifier=classifier
            )
        except ExtractorUnavailable as exc:
            raise CommandError(str(exc)) from exc
    else:
        submission, stats = build_submission(questions, outputs, classifier=classifier)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(submission, indent=1) + '\n', encoding='utf-8')
    stats_path = args.stats or args.out.with_name(args.out.stem + '.stats.json')
    report = {
        'extractor': args.extractor,
        'raw': str(args.raw),
        'questions': str(args.questions),
        **stats.to_dict(),
    }
    if extractor is not None:
        report['ollama'] = {
            'model': args.ollama_model,
            'host': args.ollama_host,
            'calls': extractor.calls,
            'bad_replies': extractor.bad_replies,
        }
    stats_path.write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
    for line in report_lines(stats):
        print(line)
    print(f'submission: {args.out} ({len(submission)} answers); stats: {stats_path}')
    return 0
