"""``smolrgpt generate``: the per-stage inspection runs (captions, regions, warehouse QA).

Each example's question goes through the product path (``SpatialQueryEngine``: the same
preprocessing, prompt and greedy decoding as the node); questions about the same image are
answered in one batched call. Output: JSONL with id, question, answer, ground truth, category,
the normalised prediction and, where a ground truth exists, whether it scores (official rule).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from smolrgpt_core import settings
from smolrgpt_core.normalize import CATEGORIES
from smolrgpt_core.settings import InferenceSettings
from training.data.sensors import camera_model, sensor_depth
from training.perturb import PRESETS, Perturbation, frame_rng, perturb_masks

HELP = 'per-stage inspection runs of a checkpoint (rgb captions, refiner regions, sft QA)'
KINDS = {'rgb': 'captions', 'refiners': 'regions', 'sft': 'warehouse'}

log = logging.getLogger(__name__)
# inspection answers (captions, region descriptions) run longer than warehouse answers
GENERATE_SETTINGS = InferenceSettings.from_flat({'generation.max_new_tokens': 64})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, type=Path, help='checkpoint directory')
    parser.add_argument(
        '--stage',
        required=True,
        choices=tuple(KINDS),
        help='rgb: stage-I captions; refiners: stage-II regions; sft: warehouse',
    )
    parser.add_argument('--data-root', required=True, type=Path, help='dataset folder')
    parser.add_argument('--split', default='val', help='split to read (default val)')
    parser.add_argument('--limit', type=int, default=0, help='at most this many examples')
    parser.add_argument(
        '--out', type=Path, help='output JSONL (default CHECKPOINT/generate-STAGE.jsonl)'
    )
    settings.add_arguments(
        parser,
        (*settings.COMMON_FLAGS, 'answer.mode', 'answer.cross_check', 'answer.priors'),
        defaults=GENERATE_SETTINGS,
    )
    parser.add_argument(
        '--perturb',
        choices=PRESETS,
        default='none',
        help='realistic: the sensor noise preset (training.perturb) on depth and masks',
    )
    parser.add_argument('--perturb-seed', type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from training import sharding
    from training.datasets import load_examples

    try:
        chosen = settings.from_args(args, GENERATE_SETTINGS)
        examples = load_examples(KINDS[args.stage], args.data_root, args.split)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    if args.limit:
        examples = examples[: args.limit]
    out = args.out or args.checkpoint / f'generate-{args.stage}.jsonl'
    perturbation = Perturbation.preset(args.perturb)
    try:
        shard = sharding.current()  # under torchrun: this rank's images (and GPU)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    records = shard.run_jsonl(
        out,
        examples,
        key=lambda ex: str(ex.rgb_path),  # the grouping of answer_examples
        produce=lambda mine: generate_answers(
            args.checkpoint, mine, chosen, perturbation, args.perturb_seed
        ),
    )
    if not shard.main:
        return 0
    scored = [r for r in records if r.get('correct') is not None]
    summary = f'{len(records)} answers -> {out}'
    if scored:
        summary += f'; {sum(r["correct"] for r in scored)}/{len(scored)} correct'
    print(summary)
    gt = [
        {'id': ex.id, 'category': ex.category, 'normalized_answer': ex.normalized_answer}
        for ex in examples
        if ex.category in CATEGORIES and ex.normalized_answer is not None
    ]
    if gt and chosen.answer.mode != 'model':
        from smolrgpt_core.answer_sources import format_by_source, score_by_source

        wanted = {g['id'] for g in gt}
        report = score_by_source(gt, [r for r in records if r['id'] in wanted])
        print(f'by answer source (official metric, perturb {args.perturb}):')
        print(format_by_source(report))
        print(_baselines_and_intervals(gt, report))
    return 0


def _baselines_and_intervals(gt: list[dict[str, Any]], report: dict[str, Any]) -> str:
    from training.metrics.baselines import constant_baselines, wilson_interval

    lines = ['strongest constant answer | hybrid 95% interval:']
    for category, base in constant_baselines(gt).items():
        entry = report['hybrid']['per_category'][category]
        lo, hi = wilson_interval(entry['correct'], entry['total'])
        lines.append(
            f'  {category:<11} {base["accuracy"]:6.2f} ({base["answer"]})'
            f' | {entry["accuracy"]:6.2f} [{lo:.1f}, {hi:.1f}]'
        )
    return '\n'.join(lines)


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')


def _by_image(examples: Sequence[Any], max_regions: int) -> Iterator[tuple[int, list[Any]]]:
    """(image index, examples) for each image, in runs whose masks together fit one frame
    (``limits.max_regions``): a dataset may ask more questions about an image than one frame
    of their masks holds, and the engine refuses such a frame whole. A question whose own
    masks exceed the limit goes alone, so that only it is refused."""
    groups: dict[str, list[Any]] = {}
    for ex in examples:
        groups.setdefault(str(ex.rgb_path), []).append(ex)
    for index, group in enumerate(groups.values()):
        run: list[Any] = []
        regions = 0
        for ex in group:
            n = len(ex.rle or ())
            if run and regions + n > max_regions:
                yield index, run
                run, regions = [], 0
            run.append(ex)
            regions += n
        yield index, run


def _load(path: Path, mode: str | None = None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert(mode) if mode else image)


def answer_examples(
    engine: Any,
    examples: Sequence[Any],
    progress: bool = False,
    perturbation: Perturbation | None = None,
    perturb_seed: int = 0,
) -> Iterator[tuple[Any, Any]]:
    """(example, engine Answer) for every example: one batched ``ask_many`` per image, each
    question's masks appended to that image's frame (several frames of one image where the
    masks of all its questions exceed ``limits.max_regions``). With an answer mode other than
    ``model``, frames hold what the robot's sensors would (``training.data.sensors``: metric
    depth and intrinsics where the dataset has them); else the stored dataset depth, unless
    the checkpoint itself takes metric depth."""
    sensors = (
        engine.settings.answer.mode != 'model'
        or perturbation is not None
        or engine.cfg.depth_input == 'metric'
    )
    from tqdm import tqdm

    from smolrgpt_core.inference.engine import Frame, Query
    from smolrgpt_core.masks import rles_decode

    groups = list(_by_image(examples, engine.settings.limits.max_regions))
    # the noise is drawn per image, so the runs of one image see the same sensor frame
    for index, group in tqdm(groups, desc='generate', unit='frame', disable=not progress):
        rgb = _load(group[0].rgb_path, 'RGB')
        h, w = rgb.shape[:2]
        rng = frame_rng(perturb_seed, index)
        # without sensors: the stored dataset depth, as the model was trained on it
        depth, encoding = sensor_depth(
            group[0].rgb_path, group[0].depth_path, (h, w), perturbation, rng, metric=sensors
        )
        masks, queries = [], []
        for ex in group:
            first = len(masks)
            if ex.rle:
                masks.extend(rles_decode(ex.rle))  # [M, H, W]
            queries.append(Query(ex.question, list(range(first, len(masks)))))
        stack = np.stack(masks).astype(bool) if masks else np.zeros((0, h, w), bool)
        if perturbation is not None:
            stack = perturb_masks(stack, perturbation, rng)
        frame = Frame(
            rgb,
            depth,
            stack,
            list(range(len(stack))),
            depth_encoding=encoding,
            camera=camera_model(group[0].rgb_path) if sensors else None,
        )
        yield from zip(group, _answers(engine, frame, queries))


def _answers(engine: Any, frame: Any, queries: Sequence[Any]) -> list[Any]:
    """The batch's answers; a question the engine refuses (e.g. a missed detection left its
    mask empty) gets an empty answer, and the others still run."""
    from smolrgpt_core.inference.engine import EngineError

    try:
        return engine.ask_many(frame, queries)
    except EngineError:
        pass
    answers = []
    for query in queries:
        try:
            answers.append(engine.ask_many(frame, [query])[0])
        except EngineError as exc:
            answers.append(_refused(frame, query, str(exc)))
    return answers


def _refused(frame: Any, query: Any, reason: str) -> Any:
    from smolrgpt_core.inference.engine import Answer

    return Answer('', '', 'other', float('nan'), [], [], frame.stamp_ns, source='none',
                  geometry_reason=reason)  # fmt: skip


def generate_answers(
    checkpoint: str | Path,
    examples: Sequence[Any],
    settings: InferenceSettings = GENERATE_SETTINGS,
    perturbation: Perturbation | None = None,
    perturb_seed: int = 0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    from smolrgpt_core.inference.engine import SpatialQueryEngine
    from smolrgpt_core.warehouse_metric import score_warehouse

    engine = SpatialQueryEngine.from_checkpoint(checkpoint, settings)
    records = []
    for ex, answer in answer_examples(engine, examples, progress, perturbation, perturb_seed):
        record = {
            'id': ex.id,
            'question': ex.question,
            'answer': answer.text,
            'ground_truth': ex.answer,
            'category': ex.category,
            'normalized_answer': answer.normalized_answer,
            'source': answer.source,
            'cross_check': answer.cross_check,
            'geometry_reason': answer.geometry_reason,
        }
        if ex.category in CATEGORIES and ex.normalized_answer is not None:
            gt = [
                {'id': ex.id, 'category': ex.category, 'normalized_answer': ex.normalized_answer}
            ]
            score = score_warehouse(
                gt, [{'id': ex.id, 'normalized_answer': answer.normalized_answer}]
            )
            record['correct'] = bool(score.to_dict()['final_score'] > 0)
        elif ex.answer is not None:
            record['correct'] = None
        records.append(record)
    return records
