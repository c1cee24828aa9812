"""The training sampler: a seeded shuffle per epoch, image-grouped runs, rank shards,
mid-epoch starts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import math

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A seeded shuffle per epoch, sharded by rank, that can start mid-epoch (resume).

    With ``groups`` (one key per example, e.g. its image) and ``group_size`` K > 1, each
    epoch cuts every key's shuffled examples into runs of up to K and shuffles the runs, so a
    batch holds about B/K images with K questions each and the vision side (shared per image
    in a batch, see the collator) runs B/K times instead of B.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        rank: int,
        world: int,
        seed: int,
        groups: Sequence[str] | None = None,
        group_size: int = 1,
    ) -> None:
        if groups is not None and len(groups) != n:
            raise ValueError(f'{len(groups)} group keys for {n} examples')
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world
        self.groups, self.group_size = groups, group_size
        self.epoch = 0
        self.start_batch = 0
        # whole global batches only, as DistributedSampler + drop_last would do
        per_rank = n // world
        self.per_rank = per_rank // batch_size * batch_size if per_rank >= batch_size else per_rank

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        if self.groups is None or self.group_size <= 1:
            return order
        by_key: dict[str, list[int]] = {}
        for i in order:
            by_key.setdefault(self.groups[i], []).append(i)
        runs = [
            same[j : j + self.group_size]
            for same in by_key.values()
            for j in range(0, len(same), self.group_size)
        ]
        return [i for r in torch.randperm(len(runs), generator=g).tolist() for i in runs[r]]

    def __iter__(self) -> Iterator[int]:
        order = self._order()
        if self.world > 1:  # rank r takes the r-th slice of every global batch
            b = min(self.batch_size, self.per_rank)  # one rank's batch
            order = [
                order[start + self.rank * b + j]
                for start in range(0, self.per_rank * self.world, b * self.world)
                for j in range(b)
            ]
        mine = order[: self.per_rank]
        return iter(mine[self.start_batch * self.batch_size :])

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start_batch * self.batch_size)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.per_rank / self.batch_size)
