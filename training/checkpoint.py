"""Atomic checkpoints: the official model files plus the trainer state needed to resume.

A checkpoint directory holds ``config.json`` + ``model.safetensors`` (``save_pretrained``),
the tokenizer files (so the directory alone is loadable by the engine), ``train_config.json``
and the trainer state: ``trainer_state.json`` (step, epoch, data position, best val loss, the
optimizer's hyper-parameters, the Python RNG) and ``trainer_state.safetensors`` (optimizer
moments, the torch/numpy/CUDA RNG states as tensors), tied together by ``training.tensor_json``.
Nothing is ever unpickled: an old ``trainer_state.pt`` is refused. Everything is written into
a hidden temporary sibling and renamed into place, so a crash never leaves a half-written
checkpoint under the final name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
import json
import logging
import math
import os
from pathlib import Path
import random
import shutil
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch

from smolrgpt_core.checkpoint import CheckpointError
from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer
from smolrgpt_core.weights import WEIGHTS_NAME
from training.tensor_json import StateFormatError, decode, encode

log = logging.getLogger(__name__)
STATE_JSON = 'trainer_state.json'
STATE_TENSORS = 'trainer_state.safetensors'
PICKLED_STATE = 'trainer_state.pt'  # what earlier versions wrote; refused, never opened
STATE_FORMAT = 'smolrgpt-trainer-state'
STATE_VERSION = 1
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json')


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of `epoch` already consumed (this rank)
    samples_seen: int = 0  # over all ranks
    best_val_loss: float = float('inf')

    @classmethod
    def from_dict(cls, data: Any, file: Path) -> TrainerState:
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            raise CheckpointError(f'{file}: the trainer entry must hold exactly {names}')
        for name in ('step', 'epoch', 'batch_in_epoch', 'samples_seen'):
            if type(data[name]) is not int or data[name] < 0:
                raise CheckpointError(f'{file}: {name} must be a non-negative integer')
        if not isinstance(data['best_val_loss'], int | float) or math.isnan(data['best_val_loss']):
            raise CheckpointError(f'{file}: best_val_loss must be a number')
        return cls(**data)


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


def save_trainer_state(
    directory: Path, state: TrainerState, optimizer: torch.optim.Optimizer
) -> None:
    skeleton, tensors = encode({'optimizer': optimizer.state_dict(), 'rng': rng_state()})
    save_file(tensors, directory / STATE_TENSORS)
    document = {
        'format': STATE_FORMAT,
        'version': STATE_VERSION,
        'trainer': asdict(state),
        **skeleton,
    }
    (directory / STATE_JSON).write_text(json.dumps(document, indent=1) + '\n', 'utf-8')


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
            save_trainer_state(tmp, state, optimizer)
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
    directory = Path(path)
    file, tensor_file = directory / STATE_JSON, directory / STATE_TENSORS
    if not file.is_file():
        if (directory / PICKLED_STATE).exists():
            raise CheckpointError(
                f'{directory / PICKLED_STATE} is a pickled trainer state from an earlier '
                f'version, which is never loaded because unpickling can run code; resume '
                f'from a checkpoint with {STATE_JSON}, or start from the model files with '
                f'--last-stage-checkpoint'
            )
        raise CheckpointError(f'{directory} has no {STATE_JSON}: not a resumable checkpoint')
    try:
        document = json.loads(file.read_text('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f'{file} is not a JSON trainer state ({exc})') from exc
    if not isinstance(document, dict) or document.get('format') != STATE_FORMAT:
        raise CheckpointError(f'{file} is not a SmolRGPT trainer state (no format field)')
    if document.get('version') != STATE_VERSION:
        raise CheckpointError(
            f'{file} has trainer-state version {document.get("version")!r}; '
            f'this version reads {STATE_VERSION}'
        )
    state = TrainerState.from_dict(document.get('trainer'), file)
    try:
        tensors = load_file(tensor_file)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f'{tensor_file} is not a readable safetensors file ({exc})') from exc
    try:
        rest = decode(
            {'optimizer': document.get('optimizer'), 'rng': document.get('rng')}, tensors
        )
    except (StateFormatError, RecursionError) as exc:
        raise CheckpointError(f'{file}: {exc}') from exc
    if not isinstance(rest['optimizer'], dict) or not isinstance(rest['rng'], dict):
        raise CheckpointError(f'{file} lacks the optimizer or RNG state')
    return state, rest['optimizer'], rest['rng']


def resume_state(path: str | Path, optimizer: torch.optim.Optimizer) -> TrainerState:
    """Load a checkpoint's trainer state into ``optimizer`` and the RNGs."""
    state, optimizer_state, rng = load_trainer_state(path)
    try:
        optimizer.load_state_dict(optimizer_state)
        set_rng_state(rng)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f'{Path(path) / STATE_JSON} does not fit this run ({type(exc).__name__}: {exc})'
        ) from exc
    return state


def load_model(path: str | Path) -> SmolRGPT:
    """``SmolRGPT.from_pretrained``: the core loader checks every file first and reports a
    damaged checkpoint as one CheckpointError naming the file."""
    try:
        return SmolRGPT.from_pretrained(Path(path))
    except (SafetensorError, OSError) as exc:  # e.g. a file that changed under us
        raise CheckpointError(f'{Path(path) / WEIGHTS_NAME} cannot be read ({exc})') from exc


def load_tokenizer(directory: str | Path, cfg: SmolRGPTConfig) -> SmolRGPTTokenizer:
    """``SmolRGPTTokenizer.from_dir`` (CheckpointError naming the file when it is damaged)."""
    return SmolRGPTTokenizer.from_dir(directory, cfg)


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    found = sorted(output_dir.glob('checkpoint-*'), key=lambda p: int(p.name.split('-')[-1]))
    for old in found[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
