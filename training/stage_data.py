"""A stage's examples: its dataset kinds over every data root, sample limits and category
repeats."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from training.config import TrainConfig
from training.data.samples import Sample
from training.datasets import load_examples
from training.stages import StageSpec

log = logging.getLogger(__name__)


def stage_examples(cfg: TrainConfig, spec: StageSpec, split: str) -> list[Sample]:
    if not cfg.data_root:
        raise ValueError('--data-root is required')
    kinds = cfg.datasets or list(spec.default_data)
    roots = [Path(r) for r in cfg.data_root.split(os.pathsep)]
    examples: list[Sample] = []
    for root in roots:
        for kind in kinds:
            try:
                examples += load_examples(kind, root, split, cfg.seed)
            except FileNotFoundError:
                if split == 'train':
                    raise
                log.warning('no %s split of %s in %s', split, kind, root)
    limit = cfg.max_train_samples if split == 'train' else cfg.max_val_samples
    if limit and len(examples) > limit:
        g = torch.Generator().manual_seed(cfg.seed)
        examples = [
            examples[i]
            for i in sorted(torch.randperm(len(examples), generator=g)[:limit].tolist())
        ]
    if split == 'train' and cfg.category_repeats:
        examples = repeat_categories(examples, cfg.category_repeats)
    return examples


def repeat_categories(examples: list[Sample], repeats: dict[str, int]) -> list[Sample]:
    """Each example of a listed category ``repeats[category]`` times (the sampler shuffles)."""
    present = {ex.category for ex in examples}
    missing = sorted(set(repeats) - present)
    if missing:
        raise ValueError(
            f'category_repeats names {missing}, which no training example has '
            f'(categories: {sorted(c for c in present if c)})'
        )
    return [ex for ex in examples for _ in range(repeats.get(ex.category or '', 1))]
