"""AdamW over the stage's parameter groups, and the learning-rate schedule (§4.4)."""

from __future__ import annotations

import math

import torch
from torch import nn

from training.config import TrainConfig
from training.stages import GROUPS, group_of


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """One AdamW group per reference group that has trainable parameters, in table order."""
    grouped: dict[str, list[nn.Parameter]] = {g: [] for g in GROUPS}
    for name, p in model.named_parameters():
        if p.requires_grad:
            grouped[group_of(name)].append(p)
    groups = [
        {'params': ps, 'lr': cfg.lr[g], 'peak_lr': cfg.lr[g], 'name': g}
        for g, ps in grouped.items()
        if ps
    ]
    if not groups:
        raise ValueError(f'stage {cfg.stage} leaves no trainable parameters')
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total: int, warmup_ratio: float, min_ratio: float) -> float:
    """Linear warmup, cosine to ``min_ratio`` x peak, then flat (§4.4)."""
    warmup = int(warmup_ratio * total)
    if step < warmup:
        return (step + 1) / warmup
    if step > total:
        return min_ratio
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + 0.5 * (1 - min_ratio) * (1 + math.cos(math.pi * progress))
