"""``smolrgpt demo`` (= ``make demo``): the whole product on synthetic data, end to end.

synthetic warehouse scenes -> rosbag2 -> the spatial-query node (embedded model) over DDS ->
answers -> official score, printed as a table.

In training because it makes its data with ``training.synth``; the ROS side (bag, node,
replay) is imported inside ``run`` (which needs rclpy).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
import shutil

HELP = 'end-to-end demo: synthetic scenes -> bag -> node (embedded model) -> scored answers'
MIN_SCENES = 3  # the synthetic splits get one val scene from 3 scenes on
# what a demo run writes into --out (anything else there is not ours to delete)
_DEMO_OUTPUTS = {'synthetic', 'demo.bag', 'node.log', 'replay'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='demo_output', help='working directory (re-created)')
    parser.add_argument(
        '--scenes',
        type=int,
        default=20,
        help='synthetic scenes to generate (10%% become the replayed split)',
    )
    parser.add_argument(
        '--seed',
        type=int,
        default=2026,
        help="scene seed (held out from the embedded model's training seeds)",
    )
    parser.add_argument('--checkpoint', default='', help='default: the embedded model')
    parser.add_argument('--rate', default='1.0', help='replay speed factor or "max"')


def _short(text: str, width: int) -> str:
    text = ' '.join(text.split())
    return text if len(text) <= width else text[: width - 1] + '…'


def _fresh_output_dir(out: Path) -> None:
    """Re-create ``out``, refusing to delete a folder that is not an earlier demo's output."""
    from smolrgpt_cli.errors import CommandError

    if out.exists():
        if not out.is_dir():
            raise CommandError(f'--out {out}: exists and is not a directory')
        if not {p.name for p in out.iterdir()} <= _DEMO_OUTPUTS:
            raise CommandError(
                f'--out {out}: not an earlier demo output (it holds other files); the demo '
                're-creates its folder, so name a new or an old demo folder'
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError

    if importlib.util.find_spec('rclpy') is None:
        raise CommandError('rclpy is not installed: run `make setup` or source a ROS 2 install')
    from smolrgpt_core.paths import embedded_model_dir
    from smolrgpt_ros.bags import BagError, write_bag
    from smolrgpt_ros.commands.replay_eval import parse_rate
    from training.dataset_bag import frames_from_dataset
    from training.synth.generate import generate

    if args.scenes < MIN_SCENES:
        raise CommandError(f'--scenes must be at least {MIN_SCENES} (one val scene)')
    rate = parse_rate(args.rate)
    checkpoint = args.checkpoint
    if not checkpoint:
        try:
            checkpoint = str(embedded_model_dir())
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
    out = Path(args.out)
    _fresh_output_dir(out)
    data, bag = out / 'synthetic', out / 'demo.bag'
    print(f'[1/4] generating {args.scenes} synthetic warehouse scenes (seed {args.seed})')
    generate(data, args.scenes, args.seed, 640, 360, {'nvidia'}, progress=False)
    print('[2/4] writing the val split into a rosbag2 (masks cropped to their boxes)')
    try:
        write_bag(bag, frames_from_dataset(data, 'val'))
    except (BagError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    print(f'[3/4] starting spatial_query_node with {checkpoint}')
    from smolrgpt_ros.node_process import NodeProcess
    from smolrgpt_ros.replay import replay, write_outputs

    # hybrid (the node's default) with the model run too, to show both answers side by side
    node = NodeProcess(
        checkpoint=checkpoint,
        log_path=str(out / 'node.log'),
        extra_params={'answer.cross_check': 'true'},
    )
    node.start()
    try:
        print('[4/4] replaying the bag over DDS and asking every question')
        result = replay(bag, rate=rate, timeout_s=120)
    except RuntimeError as exc:
        raise CommandError(f'{exc}; node log: {out / "node.log"}') from exc
    finally:
        node.stop()
    report = write_outputs(result, bag, out / 'replay')
    print()
    print(
        f'{"question":<50} {"hybrid answer":<36} {"src":<8} {"hybrid":>6} {"model":>6} '
        f'{"truth":>6}'
    )
    print('-' * 118)
    from smolrgpt_core.answer_sources import MEASURED, format_by_source
    from smolrgpt_core.warehouse_metric import CORRECT, UnparsablePrediction

    def mark(pred: str, truth: str, category: str) -> str:
        try:
            ok = CORRECT[category](pred, truth) if pred != '' else False
        except UnparsablePrediction:
            ok = False
        return f'{_short(pred, 5)}{"+" if ok else "-"}'

    for row in result.answers:
        truth, pred = str(row['gt_normalized']), row['normalized_answer']
        model = row['cross_check'] if row['source'] in MEASURED else pred
        answer = row['answer'] if row['success'] else f'error: {row["error"]}'
        print(
            f'{_short(row["question"], 50):<50} {_short(answer, 36):<36} '
            f'{row["source"] or "-":<8} {mark(pred, truth, row["category"]):>6} '
            f'{mark(model, truth, row["category"]):>6} {_short(truth, 6):>6}'
        )
    print('(+ right, - wrong by the official rule; src: where the hybrid answer came from)')
    print()
    lat = report['latency_ms']
    print(
        f'{report["questions"]} questions on {report["frames"]} frames: {report["answered"]} '
        f'answered, {report["rejected_busy"]} rejected, {report["frames_dropped"]} frames '
        f'dropped; latency p50 {lat["p50"]:.0f} ms, p95 {lat["p95"]:.0f} ms'
    )
    if 'by_source' in report:
        print('official warehouse score by answer source:')
        print(format_by_source(report['by_source']))
    elif 'score' in report:
        for name, entry in report['score']['per_category'].items():
            print(f'  {name:<11} {entry["accuracy"]:6.2f}  ({entry["correct"]}/{entry["total"]})')
        print(f'official warehouse score: {report["score"]["final_score"]:.2f}')
    print(f'outputs in {out}/replay/')
    return 0 if report['answered'] == report['questions'] else 1
