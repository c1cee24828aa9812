"""torchrun process groups: which rank this is, on which device, and the one collective
the loop needs."""

from __future__ import annotations

import atexit
from dataclasses import dataclass, field
from datetime import timedelta
import os

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device('cpu'))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(value)
        return value


def init_distributed(device: str) -> Dist:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK: NCCL on GPUs, gloo on CPU."""
    cuda = device == 'cuda' or (device == 'auto' and torch.cuda.is_available())
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return Dist(device=torch.device('cuda' if cuda else 'cpu'))
    join_process_group('nccl' if cuda else 'gloo')
    local = int(os.environ.get('LOCAL_RANK', '0'))
    if cuda:
        torch.cuda.set_device(local)  # the local rank, so several nodes work too
    return Dist(
        dist.get_rank(), world, torch.device(f'cuda:{local}') if cuda else torch.device('cpu')
    )


def join_process_group(backend: str, timeout: timedelta | None = None) -> None:
    """Join torchrun's process group (once) and leave it when the interpreter exits: a
    group still alive at interpreter teardown can abort the process ('terminate called
    without an active exception', seen with gloo) after its work is done."""
    if dist.is_initialized():
        return
    dist.init_process_group(backend, timeout=timeout)  # None: the backend's default
    atexit.register(_leave_process_group)


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
