"""Latency of the model core on CPU: vision encode, prefill, decode, full answers.

Random weights at the full official size (475.7M parameters, fp32) by default; ``--tiny`` runs
the same code path on a tiny config as a smoke test. Prompts are synthetic token ids of the
real layout (chat header, 64 image tokens, a question with one region, generation prompt);
EOS is disabled so every answer is exactly ``--new-tokens`` long.

    .venv/bin/python benchmarks/bench_generate.py --threads 2
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import logging
import os
import statistics
import sys
import time

import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.inference.types import Prompt
from smolrgpt_core.modeling.smolrgpt import SmolRGPT

logger = logging.getLogger('bench_generate')

NO_EOS = -1  # never produced, so decoding always runs the full budget


def tiny_config() -> SmolRGPTConfig:
    return SmolRGPTConfig(
        vit_hidden_dim=32,
        vit_inter_dim=64,
        vit_patch_size=8,
        vit_img_size=32,
        vit_n_heads=4,
        vit_n_blocks=2,
        lm_hidden_dim=32,
        lm_inter_dim=64,
        lm_n_heads=4,
        lm_n_kv_heads=2,
        lm_n_blocks=2,
        lm_base_vocab_size=300,
        mp_image_token_length=4,
    )


def make_prompts(cfg: SmolRGPTConfig, n: int, seed: int = 0) -> list[Prompt]:
    """n questions of 18-26 text tokens, each about one of two regions."""
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


def timed(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time in seconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per measurement')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs (median reported)')
    parser.add_argument('--new-tokens', type=int, default=16, help='tokens per answer')
    parser.add_argument('--questions', type=int, default=5, help='questions on one frame')
    parser.add_argument('--tiny', action='store_true', help='tiny config smoke run')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = tiny_config() if args.tiny else SmolRGPTConfig()
    start = time.perf_counter()
    model = SmolRGPT(cfg).eval()
    logger.info(
        'built %s model (%.1fM params) in %.1f s',
        'tiny' if args.tiny else 'full-size',
        model.num_parameters() / 1e6,
        time.perf_counter() - start,
    )

    size = cfg.vit_img_size
    image = torch.rand(3, size, size) * 2 - 1
    depth = torch.rand(3, size, size)
    masks = torch.zeros(2, 480, 640)
    masks[0, 100:300, 50:250] = 1
    masks[1, 200:400, 300:600] = 1
    prompts = make_prompts(cfg, args.questions)
    frame = model.encode_frame(image, depth, masks)

    def answer(batch: list[Prompt], tokens: int) -> list[list[int]]:
        return model.answer(frame, batch, eos_token_id=NO_EOS, max_new_tokens=tokens)

    n = args.new_tokens
    t_encode = timed(lambda: model.encode_frame(image, depth, masks), args.warmup, args.repeats)
    t_prefill = timed(lambda: answer(prompts[:1], 1), args.warmup, args.repeats)
    t_answer_lm = timed(lambda: answer(prompts[:1], n), args.warmup, args.repeats)
    t_decode = (t_answer_lm - t_prefill) / max(n - 1, 1)

    def one_question() -> None:
        f = model.encode_frame(image, depth, masks)
        model.answer(f, prompts[:1], eos_token_id=NO_EOS, max_new_tokens=n)

    def many_questions() -> None:
        f = model.encode_frame(image, depth, masks)
        model.answer(f, prompts, eos_token_id=NO_EOS, max_new_tokens=n)

    t_one = timed(one_question, args.warmup, args.repeats)
    t_many = timed(many_questions, args.warmup, args.repeats)
    assert len(answer(prompts, n)[0]) == n

    rows = [
        ('encode_frame (ViT x2 batched, projectors, refiners, pooling)', t_encode),
        (f'prefill ({len(prompts[0].ids)}-token prompt, first token)', t_prefill),
        ('decode, per token', t_decode),
        (f'one {n}-token answer (encode + prefill + decode)', t_one),
        (f'{args.questions} questions on one frame ({n} tokens each)', t_many),
    ]
    # other processes on the cores make multi-threaded GEMMs stall: report the load
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    print(
        f'\nSmolRGPT core, {"tiny" if args.tiny else "full-size"} random weights, fp32, '
        f'CPU, {args.threads} threads, torch {torch.__version__} '
        f'(median of {args.repeats}, {args.warmup} warm-up; {os.cpu_count()} cores, '
        f'load average {load})'
    )
    print(f'| {"step":<64} | {"ms":>9} |')
    print(f'|{"-" * 66}|{"-" * 11}|')
    for name, seconds in rows:
        print(f'| {name:<64} | {seconds * 1e3:9.1f} |')
    ratio = t_many / t_one
    print(f'| {f"ratio {args.questions} questions / 1 question":<64} | {ratio:9.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
