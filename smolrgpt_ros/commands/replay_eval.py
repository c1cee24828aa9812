"""``smolrgpt replay-eval``: play a bag into the node, ask its questions, score the answers."""

from __future__ import annotations

import argparse
import importlib.util
import math

HELP = 'replay a bag into the spatial-query node over DDS and score its answers'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--bag', required=True, help='bag written by `smolrgpt bag`')
    parser.add_argument(
        '--rate',
        default='1.0',
        help='playback speed factor, or "max" (as fast as the node answers)',
    )
    parser.add_argument('--out', default='replay_eval', help='output directory')
    parser.add_argument('--service', default='spatial_query')
    parser.add_argument(
        '--start-node',
        action='store_true',
        help='start a node for the run (else one must be running)',
    )
    parser.add_argument(
        '--checkpoint', default='', help='with --start-node: checkpoint (default: embedded model)'
    )
    parser.add_argument('--backend', default='torch', help='with --start-node')
    parser.add_argument(
        '--mode',
        choices=('model', 'geometry', 'hybrid'),
        default='hybrid',
        help='with --start-node: answer.mode of the node; the node also runs the other path '
        '(answer.cross_check), so the report scores model, geometry and hybrid side by side',
    )
    parser.add_argument('--timeout', type=float, default=120.0)


def parse_rate(text: str) -> float:
    """'max' -> 0 (no pacing), else a positive speed factor."""
    from smolrgpt_cli.errors import CommandError

    if text == 'max':
        return 0.0
    try:
        rate = float(text)
    except ValueError as exc:
        raise CommandError(f'--rate {text}: expected a number or "max"') from exc
    if not rate > 0:
        raise CommandError(f'--rate {text}: must be > 0')
    return rate


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError

    if importlib.util.find_spec('rclpy') is None:
        raise CommandError('rclpy is not installed: run `make setup` or source a ROS 2 install')
    rate = parse_rate(args.rate)
    if not args.timeout > 0:
        raise CommandError(f'--timeout {args.timeout}: must be > 0 seconds')
    from smolrgpt_ros.bags import BagError, check_bag, region_form
    from smolrgpt_ros.node_process import NodeProcess
    from smolrgpt_ros.replay import replay, write_outputs

    node = None
    try:
        check_bag(args.bag)  # before a node is started for it
        if args.start_node:
            node = NodeProcess(
                checkpoint=args.checkpoint,
                backend=args.backend,
                extra_params={
                    'answer.mode': args.mode,
                    'answer.cross_check': 'true',
                    'regions.form': region_form(args.bag),
                },
            )
            node.start()
        result = replay(args.bag, rate=rate, service=args.service, timeout_s=args.timeout)
    except (BagError, RuntimeError) as exc:
        raise CommandError(str(exc)) from exc
    finally:
        if node is not None:
            node.stop()
    report = write_outputs(result, args.bag, args.out)
    lat = report['latency_ms']
    print(
        f'{report["frames"]} frames, {report["questions"]} questions: {report["answered"]} '
        f'answered, {report["rejected_busy"]} rejected (busy), {report["frames_dropped"]} '
        f'frames dropped, {report["wall_s"]:.1f} s'
    )
    if not math.isnan(lat['p50']):
        print(f'latency ms: p50 {lat["p50"]:.0f}  p95 {lat["p95"]:.0f}  max {lat["max"]:.0f}')
    if 'score' in report:
        score = report['score']
        for name, entry in score['per_category'].items():
            print(f'  {name:<11} {entry["accuracy"]:6.2f}  ({entry["correct"]}/{entry["total"]})')
        print(f'official warehouse score: {score["final_score"]:.2f}')
    if 'by_source' in report:
        from smolrgpt_core.answer_sources import format_by_source

        print('by answer source (official metric):')
        print(format_by_source(report['by_source']))
    print(
        f'outputs: {args.out}/predictions.json, answers.jsonl, report.json, latency_histogram.png'
    )
    return 0
