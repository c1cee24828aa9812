"""Inference backends side by side: backend x device x dtype on one frame and five questions.

Random weights at the full official size by default (``--tiny``: the tiny test config, a smoke
run). Each configuration runs in its own process, so the peak memory column is that
configuration's own (CPU: peak RSS; CUDA: peak allocated by torch). Ratios are against torch
eager fp32 on the same device, measured in the same run. EOS is disabled, so every answer is
exactly ``--new-tokens`` long. ONNX graphs are exported into ``--work-dir`` (reused if present).

    .venv/bin/python benchmarks/bench_backends.py --threads 2
    .venv/bin/python benchmarks/bench_backends.py --specs torch:cuda:float32 \\
        torch:cuda:float16 torch-fast:cuda:float16 torch-fast:cuda:bfloat16
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
import contextlib
import json
import logging
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

import torch

logger = logging.getLogger('bench_backends')

NO_EOS = -1  # never produced, so decoding always runs the full budget
CPU_SPECS = (
    'torch:cpu:float32',
    'torch:cpu:int8',
    'onnxruntime:cpu:float32',
    'onnxruntime:cpu:int8',
)
GPU_SPECS = (
    'torch:cuda:float32',
    'torch:cuda:float16',
    'torch-fast:cuda:float16',
    'torch-fast:cuda:bfloat16',
)
COLUMNS = ('encode', 'prefill', 'per_token', 'answer', 'five')


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, it does not include the
    parent's memory before exec, so a child started by a big parent reports its own)."""
    with open('/proc/self/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def make_prompts(cfg: object, n: int, seed: int = 0) -> list:
    """n questions of 18-26 text tokens about one of two regions (the real prompt layout)."""
    from smolrgpt_core.inference.types import Prompt

    g = torch.Generator().manual_seed(seed)
    prompts = []
    for i in range(n):
        words = torch.randint(100, 250, (18 + 2 * i,), generator=g).tolist()
        ids = [
            1,
            30,
            10,
            *[cfg.image_token_id] * cfg.mp_image_token_length,
            *words[:6],
            cfg.mask_rgb_token_id,
            cfg.mask_depth_token_id,
            *words[6:],
            2,
            10,
            1,
            40,
            10,
        ]
        prompts.append(Prompt(tuple(ids), (i % 2,)))
    return prompts


def frame_tensors(cfg: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    size = cfg.vit_img_size
    image = torch.rand(3, size, size, generator=g) * 2 - 1
    depth = torch.rand(3, size, size, generator=g) * 2 - 1
    masks = torch.zeros(2, 480, 640)
    masks[0, 100:300, 50:250] = 1
    masks[1, 200:400, 300:600] = 1
    return image, depth, masks


def timed(fn: Callable[[], object], warmup: int, repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time in milliseconds."""
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def measure(
    spec: str, checkpoint: Path, engine_dir: Path | None, args: argparse.Namespace
) -> dict[str, float | str]:
    """Times one backend configuration (in this process)."""
    from smolrgpt_core.inference.backends import load_backend

    name, device, dtype = spec.split(':')
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    backend = load_backend(name, checkpoint, device=device, dtype=dtype, engine_dir=engine_dir)
    load_s = time.perf_counter() - start
    cuda = device.startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    image, depth, masks = (t.to(device) for t in frame_tensors(backend.cfg))
    prompts = make_prompts(backend.cfg, args.questions)
    n = args.new_tokens
    frame = backend.encode_frame(image, depth, masks)

    def answer(batch: list, tokens: int) -> list[list[int]]:
        return backend.answer(frame, batch, eos_token_id=NO_EOS, max_new_tokens=tokens)

    def questions(count: int) -> None:
        f = backend.encode_frame(image, depth, masks)
        out = backend.answer(f, prompts[:count], eos_token_id=NO_EOS, max_new_tokens=n)
        assert all(len(t) == n for t in out)

    w, r = args.warmup, args.repeats
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result: dict[str, float | str] = {'spec': spec, 'load_s': load_s}
    result['encode'] = timed(lambda: backend.encode_frame(image, depth, masks), w, r, sync)
    result['prefill'] = timed(lambda: answer(prompts[:1], 1), w, r, sync)
    answer_lm = timed(lambda: answer(prompts[:1], n), w, r, sync)
    result['per_token'] = (answer_lm - result['prefill']) / max(n - 1, 1)
    result['answer'] = timed(lambda: questions(1), w, r, sync)
    result['five'] = timed(lambda: questions(len(prompts)), w, r, sync)
    if cuda:
        result['peak_mb'] = torch.cuda.max_memory_allocated() / 2**20
        result['memory'] = 'cuda allocated'
    else:
        result['peak_mb'] = peak_rss_mb()
        result['memory'] = 'process RSS'
    return result


def prepare(args: argparse.Namespace, work: Path, specs: Sequence[str]) -> Path:
    """A checkpoint with random weights (and its ONNX exports when needed) in ``work``."""
    from smolrgpt_core.config import SmolRGPTConfig
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT
    from smolrgpt_core.testing import make_tiny_checkpoint

    checkpoint = work / ('tiny' if args.tiny else 'full')
    if not (checkpoint / 'model.safetensors').is_file():
        start = time.perf_counter()
        if args.tiny:
            make_tiny_checkpoint(checkpoint)
        else:
            torch.manual_seed(0)
            SmolRGPT(SmolRGPTConfig()).save_pretrained(checkpoint)
        logger.info(
            'random-weight checkpoint %s in %.1f s', checkpoint, time.perf_counter() - start
        )
    for dtype in sorted(
        {s.split(':')[2] for s in specs if s.startswith(('onnxruntime', 'tensorrt'))}
    ):
        out = checkpoint / f'onnx_{dtype}'
        if not (out / 'manifest.json').is_file():
            from smolrgpt_core.export.onnx_export import export_onnx

            start = time.perf_counter()
            export_onnx(checkpoint, out, dtype=dtype, verify=False)
            logger.info('exported %s graphs in %.1f s', dtype, time.perf_counter() - start)
    return checkpoint


def engine_dir_for(checkpoint: Path, spec: str) -> Path | None:
    name, _, dtype = spec.split(':')
    return checkpoint / f'onnx_{dtype}' if name in ('onnxruntime', 'tensorrt') else None


def run_isolated(spec: str, checkpoint: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        '--measure',
        spec,
        '--checkpoint',
        str(checkpoint),
        '--threads',
        str(args.threads),
        '--warmup',
        str(args.warmup),
        '--repeats',
        str(args.repeats),
        '--new-tokens',
        str(args.new_tokens),
        '--questions',
        str(args.questions),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ['?'])[-1]
        return {'spec': spec, 'error': tail}
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def forced(reference: list[list[int]], picks: list[list[int]]) -> Iterator[None]:
    """Teacher forcing through any backend's decode loop: at step t every row is fed the
    reference token t (whatever it would have picked), and its own argmax is recorded."""
    from smolrgpt_core import generation

    select = generation.select_next
    step = [0]

    def pick(logits: torch.Tensor, *_: object) -> torch.Tensor:
        t = step[0]
        step[0] += 1
        picks.append(logits.argmax(-1).tolist())
        return torch.tensor([row[t] for row in reference], device=logits.device)

    generation.select_next = pick
    try:
        yield
    finally:
        generation.select_next = select


def agreement(checkpoint: Path, specs: Sequence[str], args: argparse.Namespace) -> None:
    """Each candidate against torch fp32 on one frame's questions: identical answers, greedy
    tokens matched position by position when each decodes freely, and the step-logit top-1
    agreement along the fp32 path (teacher forced: both read the fp32 answer so far)."""
    from smolrgpt_core.inference.backends import load_backend

    torch.set_num_threads(args.threads)
    reference = load_backend('torch', checkpoint)
    image, depth, masks = frame_tensors(reference.cfg)
    prompts = make_prompts(reference.cfg, args.questions)
    n = args.new_tokens
    want = reference.answer(
        reference.encode_frame(image, depth, masks), prompts, eos_token_id=NO_EOS, max_new_tokens=n
    )
    del reference
    print(f'\nagreement with torch fp32 ({args.questions} questions x {n} tokens):')
    for spec in specs:
        name, device, dtype = spec.split(':')
        if (name, dtype) == ('torch', 'float32') or device != 'cpu':
            continue
        candidate = load_backend(
            name, checkpoint, dtype=dtype, engine_dir=engine_dir_for(checkpoint, spec)
        )
        frame = candidate.encode_frame(image, depth, masks)
        got = candidate.answer(frame, prompts, eos_token_id=NO_EOS, max_new_tokens=n)
        picks: list[list[int]] = []
        with forced(want, picks):
            candidate.answer(frame, prompts, eos_token_id=NO_EOS, max_new_tokens=n)
        total = sum(len(w) for w in want)
        free = sum(a == b for w, g in zip(want, got) for a, b in zip(w, g)) / total
        teacher = (
            sum(picks[t][row] == want[row][t] for row in range(len(want)) for t in range(n))
            / total
        )
        exact = sum(w == g for w, g in zip(want, got)) / len(want)
        print(
            f'  {spec}: identical answers {exact:.0%}, free-running tokens {free:.1%}, '
            f'teacher-forced top-1 {teacher:.1%}'
        )
        del candidate


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    print(
        f'\nSmolRGPT backends, {"tiny" if args.tiny else "full-size"} random weights, '
        f'{args.threads} CPU threads, torch {torch.__version__} (median of {args.repeats}, '
        f'{args.warmup} warm-up; {os.cpu_count()} cores, load average {load})'
    )
    n, q = args.new_tokens, args.questions
    head = (
        'backend:device:dtype',
        'encode ms',
        'prefill ms',
        'ms/token',
        f'{n}-tok answer ms',
        f'{q} questions ms',
        'peak MB',
        'x answer',
        f'x {q}q',
    )
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '|'.join('---' for _ in head) + '|')
    baselines = {
        r['spec'].split(':')[1]: r
        for r in rows
        if r['spec'].startswith('torch:') and r['spec'].endswith(':float32') and 'error' not in r
    }
    for r in rows:
        if 'error' in r:
            print(f'| {r["spec"]} | failed: {r["error"]} |')
            continue
        base = baselines.get(r['spec'].split(':')[1])
        ratios = (
            (f'{base["answer"] / r["answer"]:.2f}', f'{base["five"] / r["five"]:.2f}')
            if base
            else ('-', '-')
        )
        cells = [r['spec'], *(f'{r[c]:.1f}' for c in COLUMNS), f'{r["peak_mb"]:.0f}', *ratios]
        print('| ' + ' | '.join(cells) + ' |')
    print(
        '(x = speed-up over torch eager fp32 on the same device; peak MB: '
        + ', '.join(sorted({r['memory'] for r in rows if 'memory' in r}))
        + ')'
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--specs',
        nargs='+',
        help='backend:device:dtype (default: the CPU '
        'set, plus the GPU set when CUDA is available)',
    )
    parser.add_argument('--threads', type=int, default=2, help='torch / ORT CPU threads')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per measurement')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs (median reported)')
    parser.add_argument('--new-tokens', type=int, default=16, help='tokens per answer')
    parser.add_argument('--questions', type=int, default=5, help='questions on one frame')
    parser.add_argument('--tiny', action='store_true', help='tiny config smoke run')
    parser.add_argument('--work-dir', help='checkpoint + exports (default: a temp dir)')
    parser.add_argument(
        '--in-process',
        action='store_true',
        help='no subprocess per configuration (peak memory is then shared)',
    )
    parser.add_argument(
        '--agreement',
        action='store_true',
        help="also print each CPU candidate's token agreement with torch fp32",
    )
    parser.add_argument('--measure', help=argparse.SUPPRESS)  # child mode: one spec, JSON out
    parser.add_argument('--checkpoint', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')

    if args.measure:
        checkpoint = Path(args.checkpoint)
        result = measure(args.measure, checkpoint, engine_dir_for(checkpoint, args.measure), args)
        print(json.dumps(result))
        return 0
    specs = args.specs or list(CPU_SPECS) + (list(GPU_SPECS) if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        checkpoint = prepare(args, work, specs)
        rows = []
        for spec in specs:
            logger.info('measuring %s', spec)
            if args.in_process:
                rows.append(measure(spec, checkpoint, engine_dir_for(checkpoint, spec), args))
            else:
                rows.append(run_isolated(spec, checkpoint, args))
        print_table(rows, args)
        if args.agreement:
            agreement(checkpoint, specs, args)
    return 0 if all('error' not in r for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
