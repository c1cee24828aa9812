"""Training speed per stage: step time (forward / backward / optimizer), samples/s, peak RSS.

For each stage (connector, refiner, sft) with that stage's frozen parts (the stage table of
``training.stages``, AdamW over its trainable groups as ``training.optim`` builds it) and for
each batch layout:

* ``shared+fit``: two questions per image, the image stacked once (``image_index``), batches
  left-padded to their longest sample (what ``training.collate.Collator`` does);
* ``own+fit``: every sample with its own copy of the image (the vision side runs per sample);
* ``shared+pad512``: shared images, padded to ``max_length`` 512 as the reference pads.

Synthetic batches of the real layout (64 image tokens, region token pairs with their masks
in stages II/III, an answer of target tokens), random weights: the tiny test config, the
shipped embedded model's config (``--sizes embedded``) and the full official size (475.7M
parameters). Each configuration runs in its own process, so peak RSS is that configuration's
own; layouts are interleaved step by step (A/B/C/A/B/C) and the ratios are medians of
per-step ratios. On a CUDA machine the same runs again under bf16 autocast (as the trainer
does on GPUs); without one those rows say "no GPU".

    .venv/bin/python benchmarks/bench_train.py --threads 2            # tiny + full size
    .venv/bin/python benchmarks/bench_train.py --sizes tiny --steps 5
    .venv/bin/python benchmarks/bench_train.py --sizes embedded --stages sft --batch 32
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import logging
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

logger = logging.getLogger('bench_train')

STAGES = ('connector_alignment', 'refiner_alignment', 'sft')
LAYOUTS = ('shared+fit', 'own+fit', 'shared+pad512')
MAX_LENGTH = 512


SIZES = ('tiny', 'embedded', 'full')
# the shipped embedded model's dims (random weights here): what `make embedded-model` trains
REPO = Path(__file__).resolve().parents[1]
EMBEDDED_CONFIG = REPO / 'models' / 'smolrgpt-tiny-synthetic' / 'config.json'


def model_config(size: str) -> Any:
    from smolrgpt_core import testing
    from smolrgpt_core.config import SmolRGPTConfig

    if size == 'tiny':
        return testing.tiny_config()
    return SmolRGPTConfig.from_json(EMBEDDED_CONFIG) if size == 'embedded' else SmolRGPTConfig()


def make_items(cfg: Any, batch: int, regions: bool, seed: int) -> list[dict[str, Any]]:
    """``ExampleDataset`` items: two samples per image (keys and tensors shared), prompts of
    the real layout with 40-80 text tokens and a 12-24 token answer."""
    g = torch.Generator().manual_seed(seed)
    S, vocab = cfg.vit_img_size, cfg.lm_base_vocab_size
    items = []
    for b in range(batch):
        n_masks = 1 + b % 2 if regions else 0
        words = torch.randint(3, vocab, (40 + int(torch.randint(0, 40, (1,), generator=g)),))
        answer = torch.randint(3, vocab, (12 + int(torch.randint(0, 12, (1,), generator=g)),))
        pairs = [cfg.mask_rgb_token_id, cfg.mask_depth_token_id] * n_masks
        prompt = [1, 30, *[cfg.image_token_id] * cfg.mp_image_token_length, *pairs]
        prompt += [*words.tolist(), 2, 1, 40]
        ids = prompt + answer.tolist() + [2]
        target = [0] * len(prompt) + [1] * (len(answer) + 1)
        image = b // 2  # samples 2k and 2k+1 look at the same image
        g_img = torch.Generator().manual_seed(seed * 1000 + image)
        item: dict[str, Any] = {
            'input_ids': ids,
            'target': target,
            'image_key': f'image{image}',
            'image': torch.rand(3, S, S, generator=g_img) * 2 - 1,
        }
        if regions:
            item['depth'] = torch.rand(3, S, S, generator=g_img) * 2 - 1
            masks = torch.zeros(n_masks, 72, 128)
            for m in range(n_masks):
                masks[m, 10 + 20 * m : 40 + 20 * m, 20 + 30 * m : 70 + 30 * m] = 1
            item['masks'] = masks
        items.append(item)
    return items


def collate(items: list[dict[str, Any]], layout: str, pad_id: int) -> dict[str, Any]:
    from smolrgpt_core.modeling.smolrgpt import IGNORE_INDEX
    from training.collate import Collator

    if layout == 'own+fit':  # every sample its own image: no image shared in the batch
        items = [{**it, 'image_key': f'own{b}'} for b, it in enumerate(items)]
    batch = Collator(pad_id)(items)
    if layout == 'shared+pad512':
        pad = MAX_LENGTH - batch['input_ids'].shape[1]
        fills = {'input_ids': pad_id, 'attention_mask': 0, 'targets': IGNORE_INDEX}
        for key, value in fills.items():
            batch[key] = torch.nn.functional.pad(batch[key], (pad, 0), value=value)
    return batch


def measure(size: str, stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """Step times of every layout for one stage and size, in this process."""
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT
    from training.config import TrainConfig
    from training.model_setup import apply_freeze
    from training.optim import build_optimizer
    from training.stages import STAGES as SPECS
    from training.stages import Stage
    from training.trainer import loss_sum

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = model_config(size)
    cfg.stage = stage
    device = torch.device('cuda' if args.autocast else 'cpu')
    model = SmolRGPT(cfg).train().to(device)
    spec = SPECS[Stage(stage)]
    trainable = apply_freeze(model, spec)
    optimizer = build_optimizer(model, TrainConfig(stage=stage))
    items = make_items(cfg, args.batch, spec.uses_regions, seed=1)
    batches = {layout: collate(items, layout, pad_id=0) for layout in LAYOUTS}
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    times: dict[str, dict[str, list[float]]] = {
        layout: {'forward': [], 'backward': [], 'optimizer': [], 'step': []} for layout in LAYOUTS
    }

    def step(batch: dict[str, Any]) -> tuple[float, float, float]:
        batch = {
            k: [t.to(device) for t in v] if isinstance(v, list) else v.to(device)
            for k, v in batch.items()
        }
        sync()
        t0 = time.perf_counter()
        loss, n = loss_sum(model, batch, autocast=args.autocast)
        sync()
        t1 = time.perf_counter()
        (loss / max(n, 1)).backward()
        sync()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    for layout in LAYOUTS:  # warm-up: allocator, AdamW state, kernels
        step(batches[layout])
    for _ in range(args.steps):
        for layout in LAYOUTS:
            forward, backward, opt = step(batches[layout])
            for key, value in zip(
                ('forward', 'backward', 'optimizer', 'step'),
                (forward, backward, opt, forward + backward + opt),
            ):
                times[layout][key].append(value)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_backends import peak_rss_mb

    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == 'cuda' else peak_rss_mb()
    return {
        'size': size,
        'stage': stage,
        'params': sum(p.numel() for p in model.parameters()),
        'trainable': sum(p.numel() for n, p in model.named_parameters() if n in set(trainable)),
        'tokens': {layout: list(batches[layout]['input_ids'].shape) for layout in LAYOUTS},
        'images': {layout: batches[layout]['images'].shape[0] for layout in LAYOUTS},
        'times': times,
        'peak_mb': peak,
        'memory': 'cuda allocated' if device.type == 'cuda' else 'process RSS',
    }


def run_isolated(size: str, stage: str, args: argparse.Namespace, autocast: bool) -> dict:
    command = [
        sys.executable,
        __file__,
        '--measure',
        f'{size}:{stage}',
        '--threads',
        str(args.threads),
        '--steps',
        str(args.steps),
        '--batch',
        str(args.batch),
        *(['--autocast'] if autocast else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ['?'])[-1]
        return {'size': size, 'stage': stage, 'error': tail}
    return json.loads(done.stdout.strip().splitlines()[-1])


def count(n: int) -> str:
    return f'{n / 1e6:.1f}M' if n >= 1e6 else f'{n / 1e3:.0f}K'


def print_rows(results: list[dict], args: argparse.Namespace, title: str) -> None:
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    print(
        f'\n{title}: batch {args.batch}, {args.steps} steps per layout after 1 warm-up, '
        f'layouts interleaved; {args.threads} CPU threads, torch {torch.__version__}; '
        f'{os.cpu_count()} cores, load average {load}'
    )
    head = (
        'size',
        'stage',
        'trainable',
        'layout',
        'batch tokens',
        'images',
        'forward ms',
        'backward ms',
        'optimizer ms',
        'step ms',
        'samples/s',
        'time / shared+fit',
        'peak MB',
    )
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '|'.join('---' for _ in head) + '|')
    for r in results:
        if 'error' in r:
            print(f'| {r["size"]} | {r["stage"]} | failed: {r["error"]} |')
            continue
        ref = r['times']['shared+fit']['step']
        for layout in LAYOUTS:
            t = r['times'][layout]
            step = statistics.median(t['step'])
            ratio = statistics.median(a / b for a, b in zip(t['step'], ref))
            B, T = r['tokens'][layout]
            cells = [
                r['size'],
                r['stage'],
                f'{count(r["trainable"])} / {count(r["params"])}',
                layout,
                f'{B} x {T}',
                str(r['images'][layout]),
                *(f'{statistics.median(t[k]) * 1e3:.0f}' for k in ('forward', 'backward')),
                f'{statistics.median(t["optimizer"]) * 1e3:.0f}',
                f'{step * 1e3:.0f}',
                f'{B / step:.2f}',
                f'{ratio:.2f}' if layout != 'shared+fit' else '1.00',
                f'{r["peak_mb"]:.0f}',
            ]
            print('| ' + ' | '.join(cells) + ' |')
    memory = sorted({r['memory'] for r in results if 'memory' in r})
    print(
        f'(time / shared+fit: step time over shared images + right-sized padding, median of '
        f'per-step ratios; peak MB: {", ".join(memory)}, whole process)'
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', default=['tiny', 'full'], choices=SIZES)
    parser.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES)
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--steps', type=int, default=3, help='timed steps per layout')
    parser.add_argument('--batch', type=int, default=4, help='samples per step (even)')
    parser.add_argument('--in-process', action='store_true', help='no subprocess per run')
    parser.add_argument('--measure', help=argparse.SUPPRESS)  # child: SIZE:STAGE, JSON out
    parser.add_argument('--autocast', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if args.batch < 2 or args.batch % 2:
        parser.error('--batch must be an even number >= 2 (two samples per image)')

    if args.measure:
        size, stage = args.measure.split(':')
        print(json.dumps(measure(size, stage, args)))
        return 0
    results = []
    for size in args.sizes:
        for stage in args.stages:
            logger.info('measuring %s %s', size, stage)
            if args.in_process:
                results.append(measure(size, stage, args))
            else:
                results.append(run_isolated(size, stage, args, autocast=False))
    print_rows(results, args, 'SmolRGPT training steps on CPU, fp32, random weights')
    if torch.cuda.is_available():
        gpu = [run_isolated(s, st, args, autocast=True) for s in args.sizes for st in args.stages]
        print_rows(gpu, args, f'the same on {torch.cuda.get_device_name()}, bf16 autocast')
    else:
        print('\nbf16 autocast on a GPU: no GPU on this machine (torch sees no CUDA device)')
    return 0 if all('error' not in r for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
