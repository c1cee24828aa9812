"""DDP on 2 CPU processes (gloo) gives the gradients of one process on the same global batch."""

from __future__ import annotations

import os
from pathlib import Path
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from training_helpers import tiny_config

from training.datasets import load_examples
from training.trainer import Trainer

GLOBAL_BATCH = 4


def _grads(trainer: Trainer, indices: list[int]) -> dict[str, torch.Tensor]:
    window = [trainer.collate([trainer.train_set[i] for i in indices])]
    trainer.accumulate(window)
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def _worker(rank: int, port: int, tiny_dir: str, synth_root: str, out: str) -> None:
    os.environ.update(
        {
            'MASTER_ADDR': '127.0.0.1',
            'MASTER_PORT': str(port),
            'RANK': str(rank),
            'WORLD_SIZE': '2',
            'LOCAL_RANK': str(rank),
        }
    )
    torch.set_num_threads(1)
    examples = load_examples('warehouse', Path(synth_root), 'train')[:GLOBAL_BATCH]
    cfg = tiny_config('sft', Path(tiny_dir), Path(out) / 'run', device='cpu')
    trainer = Trainer(cfg, examples={'train': examples, 'val': []})
    half = GLOBAL_BATCH // 2
    grads = _grads(trainer, list(range(rank * half, (rank + 1) * half)))
    if rank == 0:
        torch.save(grads, Path(out) / 'ddp.pt')
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tiny_dir: Path, synth_root: Path, tmp_path: Path) -> None:
    mp.spawn(
        _worker,
        args=(_free_port(), str(tiny_dir), str(synth_root), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    ddp = torch.load(tmp_path / 'ddp.pt')
    examples = load_examples('warehouse', synth_root, 'train')[:GLOBAL_BATCH]
    single = Trainer(
        tiny_config('sft', tiny_dir, tmp_path / 'single'), examples={'train': examples, 'val': []}
    )
    ref = _grads(single, list(range(GLOBAL_BATCH)))
    assert ddp.keys() == ref.keys()
    for name in ref:
        torch.testing.assert_close(ddp[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)


_LEAVES_AT_EXIT = """
import atexit, os, sys
import torch.distributed as dist
from training.distributed import join_process_group
# registered first, so it runs last: after join_process_group's own exit handler
atexit.register(lambda: print('initialized at exit:', dist.is_initialized(), flush=True))
os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=sys.argv[1], RANK='0', WORLD_SIZE='1')
join_process_group('gloo')
join_process_group('gloo')  # a second call keeps the group it joined
print('initialized:', dist.is_initialized(), flush=True)
"""


def test_a_joined_process_group_is_left_when_the_interpreter_exits() -> None:
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, '-c', _LEAVES_AT_EXIT, str(port)],
        cwd=repo,
        env={**os.environ, 'PYTHONPATH': str(repo), 'OMP_NUM_THREADS': '1'},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split('\n')[:2] == ['initialized: True', 'initialized at exit: False']
