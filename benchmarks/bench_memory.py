"""Decode against the memory-bandwidth bound: ms/token per backend as a fraction of the bound.

A decode step reads every decoder weight once (1.45 GB in fp32 at full size), so its floor on
a CPU is bytes-per-token / memory bandwidth. This benchmark measures the bandwidth in the same
run (a streaming reduction over a buffer far larger than the caches, the access pattern of a
weight read) and, interleaved with it (bandwidth, backend A, backend B, ..., repeated), the
per-token time of each backend's decode steps; the table gives

    fraction of bound = (bytes read per token / bandwidth) / measured ms per token

(1.0 = at the bandwidth limit), plus each backend's speed-up over torch fp32 and, with
``--baseline``, over the decode path before this revision (unfused projections and the old
``linear``, restored in-process) -- all as medians of per-repetition ratios, so a load spike
hits both sides of a ratio alike. Bytes per token count the weights only (the KV cache of a
100-token prompt adds < 1 %). Random weights at the full official size by default (``--tiny``:
a smoke run); prompts are random embeddings of the real prompt length, so no vision pass runs.

    .venv/bin/python benchmarks/bench_memory.py --threads 2 --baseline
    .venv/bin/python benchmarks/bench_memory.py --backends torch:float32 torch:int8 \\
        onnxruntime:float32 onnxruntime:int8 --work-dir build/bench   # exports once, reused
    .venv/bin/python benchmarks/bench_memory.py --profile   # where a torch fp32 step goes
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
import contextlib
from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any

import torch
from torch import nn

logger = logging.getLogger('bench_memory')

NO_EOS = -1  # never produced, so decoding always runs the full budget
DEFAULT_BACKENDS = ('torch:float32', 'torch:int8')
BASELINE = 'torch:float32:baseline'


# --- the decode path before this revision, for --baseline --------------------------------
def legacy_linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``smolrgpt_core.modeling.decoder.linear`` as of 0.2.0 (one call per projection)."""
    if x.device.type != 'cpu' or layer.bias is not None or torch.compiler.is_compiling():
        return layer(x)
    rows = x.numel() // x.shape[-1]
    if rows > 8:
        return layer(x)
    flat = x.reshape(rows, x.shape[-1])
    if rows == 1:
        flat = flat.repeat(2, 1)
    out = (layer.weight @ flat.T)[:, :rows]
    return out.T.contiguous().view(*x.shape[:-1], -1)


@contextlib.contextmanager
def legacy_path() -> Iterator[None]:
    """The old ``linear`` wherever the decode loop looks it up (the baseline model is loaded
    unfused, so every projection goes through it)."""
    from smolrgpt_core import generation
    from smolrgpt_core.modeling import decoder

    saved = decoder.linear, generation.linear
    decoder.linear = generation.linear = legacy_linear
    try:
        yield
    finally:
        decoder.linear, generation.linear = saved


# --- what is measured ----------------------------------------------------------------------
class TimedSteps:
    """A ``DecodeSteps`` proxy that times the per-token steps (prefill is not counted)."""

    def __init__(self, steps: Any) -> None:
        self.steps = steps
        self.dtype, self.device, self.width = steps.dtype, steps.device, steps.width
        self.seconds, self.count = 0.0, 0
        self.logits: list[torch.Tensor] = []  # the first logits and every step's, fp32

    def begin(self, rows: int, total: int) -> None:
        self.steps.begin(rows, total)

    def prefix(self, *args: Any) -> None:
        self.steps.prefix(*args)

    def suffix(self, *args: Any) -> torch.Tensor:
        logits = self.steps.suffix(*args)
        self.logits.append(logits.float().clone())
        return logits

    def token(self, *args: Any) -> torch.Tensor:
        start = time.perf_counter()
        logits = self.steps.token(*args)
        self.seconds += time.perf_counter() - start
        self.count += 1
        self.logits.append(logits.float().clone())
        return logits


@dataclass
class Subject:
    name: str
    make_steps: Callable[[], Any]
    bytes_per_token: int
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    per_token: list[float] = field(default_factory=list)  # seconds, one per repetition
    answer: list[float] = field(default_factory=list)  # prefill + all steps, seconds
    tokens: list[list[int]] | None = None
    logits: list[torch.Tensor] = field(default_factory=list)  # of the last answer
    forced: float | None = None  # step-logit top-1 agreement along the fp32 path


def decode_once(subject: Subject, embeds: list[torch.Tensor], new_tokens: int) -> None:
    from smolrgpt_core.generation import decode

    steps = TimedSteps(subject.make_steps())
    with subject.context():
        start = time.perf_counter()
        subject.tokens = decode(steps, embeds, eos_token_id=NO_EOS, max_new_tokens=new_tokens)
        subject.answer.append(time.perf_counter() - start)
    subject.per_token.append(steps.seconds / max(steps.count, 1))
    subject.logits = steps.logits


def read_bandwidth(buffer: torch.Tensor) -> float:
    """Bytes per second of one streaming reduction over ``buffer``."""
    start = time.perf_counter()
    buffer.sum()
    return buffer.numel() * buffer.element_size() / (time.perf_counter() - start)


# --- bytes each backend reads per token ----------------------------------------------------
def torch_bytes(decoder: nn.Module) -> int:
    """Every unique tensor the step reads in full: parameters (the tied embedding/head once)
    and, for int8 layers, their packed weights and scales. The embedding table of an int8
    decoder is read one row per token (its head is a separate int8 layer), so it is left out."""
    from smolrgpt_core.inference.backends.torch_fast import RowwiseInt8Linear

    total, seen = 0, set()
    int8 = any(isinstance(m, RowwiseInt8Linear) for m in decoder.modules())
    for name, p in decoder.named_parameters():
        if int8 and name == 'token_embedding.weight':
            continue
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    for module in decoder.modules():
        if isinstance(module, RowwiseInt8Linear):
            weight = module.weight()
            total += weight.numel() + weight.q_per_channel_scales().numel() * 4
    return total


def graph_bytes(directory: Path) -> int:
    """The decoder graph's files (weights are nearly all of it)."""
    from smolrgpt_core.export.manifest import read_manifest

    files = read_manifest(directory)['graphs']['decoder']['files']
    return sum((directory / f).stat().st_size for f in files)


def load_subjects(
    checkpoint: Path, names: Sequence[str], work: Path, max_len: int
) -> list[Subject]:
    from smolrgpt_core.generation import EagerSteps
    from smolrgpt_core.inference.backends import load_backend
    from smolrgpt_core.inference.backends.graph_runtime import GraphSteps
    from smolrgpt_core.inference.backends.torch_fast import FastTorchBackend, StaticSteps
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT

    subjects = []
    for name in names:
        start = time.perf_counter()
        if name == BASELINE:
            decoder = SmolRGPT.from_pretrained(checkpoint).eval().decoder  # unfused
            subject = Subject(
                name,
                lambda d=decoder: EagerSteps(d),
                torch_bytes(decoder),
                context=legacy_path,
            )
        elif name.startswith('torch-fast:'):
            # the compiled static step (opt-in), with a cache sized to the answer: the static
            # step attends over all max_len slots
            model = load_backend('torch-fast', checkpoint, dtype=name.split(':')[1]).model
            backend = FastTorchBackend(model, max_len=max_len, compiled=True)
            subject = Subject(
                name, lambda b=backend: StaticSteps(b), torch_bytes(backend.model.decoder)
            )
        elif name.startswith('torch:'):
            decoder = load_backend('torch', checkpoint, dtype=name.split(':')[1]).decoder
            subject = Subject(name, lambda d=decoder: EagerSteps(d), torch_bytes(decoder))
        elif name.startswith('onnxruntime:'):
            dtype = name.split(':')[1]
            directory = export_graphs(checkpoint, dtype)
            backend = load_backend('onnxruntime', checkpoint, dtype=dtype, engine_dir=directory)
            subject = Subject(
                name,
                lambda b=backend: GraphSteps(b._runner(), b.table),
                graph_bytes(directory),
            )
        else:
            raise SystemExit(
                f'unknown backend {name!r}: torch:DTYPE, torch-fast:DTYPE or onnxruntime:DTYPE'
            )
        logger.info('loaded %s in %.1f s', name, time.perf_counter() - start)
        subjects.append(subject)
    return subjects


def export_graphs(checkpoint: Path, dtype: str) -> Path:
    """``CHECKPOINT/onnx_DTYPE`` (where bench_backends puts them too), exported once."""
    from smolrgpt_core.export.onnx_export import export_onnx

    out = checkpoint / f'onnx_{dtype}'
    if not (out / 'manifest.json').is_file():
        start = time.perf_counter()
        export_onnx(checkpoint, out, dtype=dtype, verify=False)
        logger.info('exported %s graphs in %.1f s', dtype, time.perf_counter() - start)
    return out


def make_checkpoint(work: Path, tiny: bool) -> Path:
    from smolrgpt_core.config import SmolRGPTConfig
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT
    from smolrgpt_core.testing import make_tiny_checkpoint

    checkpoint = work / ('tiny' if tiny else 'full')
    if not (checkpoint / 'model.safetensors').is_file():
        if tiny:
            make_tiny_checkpoint(checkpoint)
        else:
            torch.manual_seed(0)
            SmolRGPT(SmolRGPTConfig()).save_pretrained(checkpoint)
    return checkpoint


def teacher_forced(subjects: list[Subject], embeds: list[torch.Tensor], new_tokens: int) -> None:
    """Each subject's argmax at every step while it reads torch fp32's answer so far."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_backends import forced

    ref = next((s for s in subjects if s.name == 'torch:float32'), None)
    if ref is None or ref.tokens is None:
        return
    for s in subjects:
        if s is ref:
            continue
        picks: list[list[int]] = []
        with forced(ref.tokens, picks), s.context():
            from smolrgpt_core.generation import decode

            decode(s.make_steps(), embeds, eos_token_id=NO_EOS, max_new_tokens=new_tokens)
        rows = range(len(ref.tokens))
        hits = sum(picks[t][r] == ref.tokens[r][t] for r in rows for t in range(new_tokens))
        s.forced = hits / (len(ref.tokens) * new_tokens)


def profile_step(subject: Subject, embeds: list[torch.Tensor], rows: int = 25) -> None:
    """Self CPU time per op over a few torch decode steps (where a step's time goes)."""
    from torch.profiler import ProfilerActivity, profile

    decode_once(subject, embeds, 2)  # warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        decode_once(subject, embeds, 9)
    print(f'\nprofile of {subject.name}: prefill + 8 decode steps')
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows))


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over repetitions of a[i] / b[i]."""
    return statistics.median(x / y for x, y in zip(a, b))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backends', nargs='+', default=list(DEFAULT_BACKENDS))
    parser.add_argument(
        '--baseline',
        action='store_true',
        help='also the decode path before this revision (torch fp32, unfused, old linear)',
    )
    parser.add_argument('--threads', type=int, default=2, help='torch / ORT CPU threads')
    parser.add_argument('--reps', type=int, default=5, help='interleaved repetitions')
    parser.add_argument('--new-tokens', type=int, default=16, help='tokens per answer')
    parser.add_argument('--rows', type=int, default=1, help='questions decoded together')
    parser.add_argument('--prompt', type=int, default=92, help='prompt tokens per question')
    parser.add_argument(
        '--max-len',
        type=int,
        default=0,
        help='torch-fast cache slots (default: prompt + new tokens, rounded up to 64)',
    )
    parser.add_argument('--buffer-mb', type=int, default=1024, help='bandwidth probe size')
    parser.add_argument('--tiny', action='store_true', help='tiny config smoke run')
    parser.add_argument('--work-dir', help='checkpoint + exports (default: a temp dir)')
    parser.add_argument('--profile', action='store_true', help='profile the torch fp32 step')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    torch.set_num_threads(args.threads)

    names = list(args.backends) + ([BASELINE] if args.baseline else [])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        checkpoint = make_checkpoint(work, args.tiny)
        max_len = args.max_len or -(-(args.prompt + args.new_tokens) // 64) * 64
        subjects = load_subjects(checkpoint, names, work, max_len)
        width = subjects[0].make_steps().width
        g = torch.Generator().manual_seed(0)
        embeds = [torch.randn(args.prompt, width, generator=g) * 0.5 for _ in range(args.rows)]
        buffer = torch.ones(args.buffer_mb * 2**20 // 4)
        bandwidth: list[float] = []
        for subject in subjects:  # warm-up: allocator, kernels, ORT arenas, compilation
            start = time.perf_counter()
            decode_once(subject, embeds, 3)
            logger.info('warmed %s in %.1f s', subject.name, time.perf_counter() - start)
            subject.per_token.clear()
            subject.answer.clear()
        read_bandwidth(buffer)
        for rep in range(args.reps):
            for subject in subjects:
                bandwidth.append(read_bandwidth(buffer))
                decode_once(subject, embeds, args.new_tokens)
            logger.info('repetition %d/%d done', rep + 1, args.reps)
        teacher_forced(subjects, embeds, args.new_tokens)
        print_table(subjects, bandwidth, args)
        if args.profile:
            profile_step(next(s for s in subjects if s.name == 'torch:float32'), embeds)
    return 0


def print_table(subjects: list[Subject], bandwidth: list[float], args: argparse.Namespace) -> None:
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    bw = statistics.median(bandwidth)
    print(
        f'\nDecode vs the memory-bandwidth bound: {"tiny" if args.tiny else "full-size"} random '
        f'weights, {args.rows} question(s) x {args.new_tokens} tokens, {args.prompt}-token '
        f'prompts, {args.threads} threads, torch {torch.__version__}; {args.reps} interleaved '
        f'repetitions (medians); {os.cpu_count()} cores, load average {load}'
    )
    print(
        f'measured read bandwidth: median {bw / 1e9:.1f} GB/s (min {min(bandwidth) / 1e9:.1f}, '
        f'max {max(bandwidth) / 1e9:.1f}; {len(bandwidth)} samples of a {args.buffer_mb} MB sum)'
    )
    head = (
        'backend',
        'MB/token',
        'ms/token',
        'bound ms',
        'fraction of bound',
        'x torch fp32 (token)',
        'answer ms',
        'x torch fp32 (answer)',
    )
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '|'.join('---' for _ in head) + '|')
    ref = next((s for s in subjects if s.name == 'torch:float32'), subjects[0])
    for s in subjects:
        per_token = statistics.median(s.per_token)
        bound = s.bytes_per_token / bw
        fraction = bound / per_token  # both medians: the same bandwidth for every backend
        cells = [
            s.name,
            f'{s.bytes_per_token / 1e6:.0f}',
            f'{per_token * 1e3:.1f}',
            f'{bound * 1e3:.1f}',
            f'{fraction:.2f}',
            f'{median_ratio(ref.per_token, s.per_token):.2f}',
            f'{statistics.median(s.answer) * 1e3:.0f}',
            f'{median_ratio(ref.answer, s.answer):.2f}',
        ]
        print('| ' + ' | '.join(cells) + ' |')
    print(
        '(ms/token: the decode steps alone; answer: prefill + every step of one '
        f'{args.new_tokens}-token answer; x = speed-up, median of per-repetition ratios)'
    )
    base = next((s for s in subjects if s.name == BASELINE), None)
    if base is not None:
        same = 'identical' if ref.tokens == base.tokens else 'DIFFERENT'
        token = median_ratio(base.per_token, ref.per_token)
        answer = median_ratio(base.answer, ref.answer)
        diff = max(float((a - b).abs().max()) for a, b in zip(ref.logits, base.logits))
        print(
            f'torch fp32 vs the previous decode path: {token:.2f}x per token, {answer:.2f}x '
            f'per answer; greedy ids {same}, max |logit difference| {diff:.2e} over '
            f'{len(ref.logits)} steps'
        )
    for s in subjects:
        if s is not ref and s.tokens is not None and ref.tokens is not None:
            agree = sum(a == b for x, y in zip(s.tokens, ref.tokens) for a, b in zip(x, y))
            total = sum(len(x) for x in ref.tokens)
            line = f'{s.name}: {agree}/{total} greedy tokens equal torch fp32 (free-running)'
            if s.forced is not None:
                line += f', teacher-forced top-1 {s.forced:.1%}'
            print(line)


if __name__ == '__main__':
    sys.exit(main())
