"""Atomic checkpoints: the official model files plus the trainer state needed to resume.

A checkpoint directory holds ``config.json`` + ``model.safetensors`` (``save_pretrained``),
the tokenizer files (so the directory alone is loadable by the engine), ``train_config.json``
and ``trainer_state.pt`` (optimizer, step, data position, RNG states). Everything is written
into a hidden temporary sibling and renamed into place, so a crash never leaves a
half-written checkpoint under the final name.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import os
from pathlib import Path
import random
import shutil
from typing import Any

import numpy as np
import torch

from smolrgpt_core.modeling.smolrgpt import SmolRGPT

log = logging.getLogger(__name__)
STATE_FILE = 'trainer_state.pt'
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json')


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of `epoch` already consumed (this rank)
    samples_seen: int = 0  # over all ranks
    best_val_loss: float = float('inf')


def rng_state() -> dict[str, Any]:
    state = {
        'torch': torch.get_rng_state(),
        'numpy': np.random.get_state(),
        'python': random.getstate(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def save_checkpoint(
    path: str | Path,
    model: SmolRGPT,
    *,
    tokenizer_dir: str | Path | None,
    optimizer: torch.optim.Optimizer | None = None,
    state: TrainerState | None = None,
    train_config: Any = None,
) -> Path:
    """Write the checkpoint to ``path`` atomically (a temp dir renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f'.{path.name}.tmp-{os.getpid()}'
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            source = Path(tokenizer_dir) / name if tokenizer_dir else None
            if source is not None and source.is_file():
                shutil.copyfile(source, tmp / name)
        if train_config is not None:
            train_config.to_json(tmp / 'train_config.json')
        if optimizer is not None and state is not None:
            torch.save(
                {'trainer': vars(state), 'optimizer': optimizer.state_dict(), 'rng': rng_state()},
                tmp / STATE_FILE,
            )
        old = path.parent / f'.{path.name}.old-{os.getpid()}'
        if path.exists():
            path.rename(old)  # two renames: the final name never points at a partial dir
        tmp.rename(path)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_trainer_state(path: str | Path) -> tuple[TrainerState, dict[str, Any], dict[str, Any]]:
    """-> (trainer state, optimizer state dict, RNG states) of a checkpoint directory."""
    file = Path(path) / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(f'{file} not found: not a resumable training checkpoint')
    blob = torch.load(file, map_location='cpu', weights_only=False)
    return TrainerState(**blob['trainer']), blob['optimizer'], blob['rng']


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    found = sorted(output_dir.glob('checkpoint-*'), key=lambda p: int(p.name.split('-')[-1]))
    for old in found[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
