"""What a faster backend costs in accuracy: the official warehouse metric on a held-out split,
for torch fp32 and each candidate (e.g. ``torch:cpu:int8``, ``onnxruntime:cpu:float32``),
plus how often the candidate's answer text equals fp32's.

Questions go through the product path (``SpatialQueryEngine``: preprocessing, prompt, greedy
decoding, normaliser), grouped by image as ``training.generate`` does.

    .venv/bin/python benchmarks/backend_metric.py --checkpoint models/smolrgpt-tiny-synthetic \\
        --heldout build/embedded/synth-heldout-s1000 --candidates torch:cpu:int8
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
from pathlib import Path
import sys
import time
from typing import Any

logger = logging.getLogger('backend_metric')


def answer_all(engine: Any, examples: Sequence[Any]) -> dict[str, Any]:
    """id -> engine Answer, one batched ``ask_many`` per image (as ``smolrgpt generate``)."""
    from training.generate import answer_examples

    return {ex.id: answer for ex, answer in answer_examples(engine, examples)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', required=True, type=Path)
    parser.add_argument('--heldout', required=True, type=Path, help='synthetic split folder')
    parser.add_argument('--split', default='train', help='split inside --heldout')
    parser.add_argument(
        '--candidates',
        nargs='+',
        default=['torch:cpu:int8'],
        help='backend:device:dtype to compare with torch:cpu:float32',
    )
    parser.add_argument('--engine-dir', type=Path, help='exported graphs (onnxruntime)')
    parser.add_argument('--limit', type=int, default=0, help='at most this many questions')
    parser.add_argument('--max-new-tokens', type=int, default=48)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')

    import torch

    from smolrgpt_core.inference.engine import SpatialQueryEngine
    from smolrgpt_core.settings import InferenceSettings
    from smolrgpt_core.warehouse_metric import score_warehouse
    from training.datasets import load_examples

    torch.set_num_threads(args.threads)
    examples = load_examples('warehouse', args.heldout, args.split)
    if args.limit:
        examples = examples[: args.limit]
    gt = [
        {'id': e.id, 'category': e.category, 'normalized_answer': e.normalized_answer}
        for e in examples
    ]
    results: dict[str, tuple[Any, dict[str, Any], float]] = {}
    for spec in ['torch:cpu:float32', *args.candidates]:
        backend, device, dtype = spec.split(':')
        settings = InferenceSettings.from_flat(
            {
                'model.backend': backend,
                'model.device': device,
                'model.dtype': dtype,
                'model.engine_dir': str(args.engine_dir or '') if backend != 'torch' else '',
                'generation.max_new_tokens': args.max_new_tokens,
            }
        )
        engine = SpatialQueryEngine.from_checkpoint(args.checkpoint, settings)
        start = time.perf_counter()
        answers = answer_all(engine, examples)
        seconds = time.perf_counter() - start
        pred = [{'id': i, 'normalized_answer': a.normalized_answer} for i, a in answers.items()]
        results[spec] = (score_warehouse(gt, pred).to_dict(), answers, seconds)
    reference = results['torch:cpu:float32']
    categories = sorted(reference[0]['per_category'])
    print(
        f'\nofficial warehouse metric, {len(examples)} held-out questions '
        f'({args.heldout.name}), checkpoint {args.checkpoint}'
    )
    head = [
        'backend:device:dtype',
        'final_score',
        'overall_accuracy',
        *(f'{c} acc' for c in categories),
        'same text as fp32',
        'seconds',
    ]
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '|'.join('---' for _ in head) + '|')
    for spec, (score, answers, seconds) in results.items():
        same = sum(answers[i].text == reference[1][i].text for i in answers) / len(answers)
        cells = [
            spec,
            f'{score["final_score"]:.4f}',
            f'{score["overall_accuracy"]:.4f}',
            *(f'{score["per_category"][c]["accuracy"]:.3f}' for c in categories),
            f'{same:.1%}',
            f'{seconds:.0f}',
        ]
        print('| ' + ' | '.join(cells) + ' |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
