"""Dataset-scale evaluation under ``torchrun --nproc-per-node=N``: one shard of images per rank.

``submission generate``, ``generate`` and ``bench spatialrgpt`` call ``current()`` before they
load the model (it joins the process group and, on a GPU machine, picks this rank's GPU), then
hand their work to the shard:

* images are split between ranks by ``assign`` (whole images, so every question is batched
  exactly as in one process; balanced by question count, deterministic);
* each rank writes its own part file next to the output (``raw_output.rank1-of-4.csv``), so a
  killed run resumes per shard: the part files (and an earlier merged file) hold what is done;
* after a barrier, rank 0 merges the parts in the order a single process would have written
  them, so N processes give the same bytes as one; the part files are then removed.

Without torchrun (``WORLD_SIZE`` unset or 1) everything runs as before, straight into the
output file. Ranks coordinate over gloo (CPU), also on GPU machines: only a barrier and a few
counters cross processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from training.data.image_groups import ImageGroup
    from training.submission.answering import RunStats

log = logging.getLogger(__name__)

T = TypeVar('T')
# ranks finish their shards at different times; the barrier must outwait the slowest
BARRIER_TIMEOUT = timedelta(hours=48)
MAX_WORLD = 4096


def assign(sizes: Sequence[int], world: int) -> list[int]:
    """The rank of each item: largest items first, each to the least-loaded rank (ties: the
    lower rank, then the earlier item). Depends only on ``sizes`` and ``world``."""
    loads = [0] * world
    owner = [0] * len(sizes)
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        rank = min(range(world), key=lambda r: (loads[r], r))
        owner[index] = rank
        loads[rank] += sizes[index]
    return owner


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def take(self, items: Sequence[T], sizes: Sequence[int]) -> list[T]:
        """This rank's items, in their original order."""
        owner = assign(sizes, self.world)
        return [item for item, rank in zip(items, owner) if rank == self.rank]

    def part(self, out: Path, rank: int | None = None) -> Path:
        """Rank ``rank``'s (default: this rank's) part file next to ``out``."""
        rank = self.rank if rank is None else rank
        return out.with_name(f'{out.stem}.rank{rank}-of-{self.world}{out.suffix}')

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks."""
        if self.world == 1:
            return list(values)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    # --- resumable CSV answers (submission generate, bench spatialrgpt) -------------------
    def answer_to_csv(
        self, engine: Any, groups: Sequence[ImageGroup], out: Path, **kwargs: Any
    ) -> RunStats:
        """``answering.answer_to_csv`` over this rank's images into its part file, then (rank
        0) the merged ``out``. Returns the run's totals over all ranks (on every rank)."""
        from training.submission.answering import answer_to_csv

        if self.world == 1:
            return answer_to_csv(engine, groups, out, **kwargs)
        columns = kwargs['columns']
        mine = self.take(groups, [len(g.samples) for g in groups])
        part = self.part(out)
        _seed_part(part, out, columns, {s.id for g in mine for s in g.samples})
        stats = answer_to_csv(engine, mine, part, **kwargs)
        stats.total = sum(len(g.samples) for g in groups)
        written, skipped, failed = self.sum([stats.written, stats.skipped, stats.failed])
        stats.written, stats.skipped, stats.failed = int(written), int(skipped), int(failed)
        self.barrier()  # every part is complete
        if self.main:
            order = [s.id for g in groups for s in g.samples]
            parts = [self.part(out, r) for r in range(self.world)]
            merge_csv(out, parts, columns, order)
        self.barrier()  # the merged file exists before any rank returns
        return stats

    # --- JSONL records (generate) -----------------------------------------------------------
    def run_jsonl(
        self,
        out: Path,
        items: Sequence[T],
        key: Callable[[T], str],
        produce: Callable[[list[T]], list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """``produce`` this rank's records into its part file, then (rank 0) all records into
        ``out``. Items are grouped by ``key`` (an image) and whole groups go to a rank;
        ``produce`` must return one record per item, group by group in first-seen order (as
        one call over all items would). A part file that exists is complete (it is written
        whole, then renamed) and is reused, so a rerun redoes only unfinished shards.
        Returns all records, in the order one process would have written them."""
        if self.world == 1:
            records = produce(list(items))
            write_jsonl(out, records)
            return records
        counts: dict[str, int] = {}
        for item in items:
            counts[key(item)] = counts.get(key(item), 0) + 1  # first-seen order
        owner = dict(zip(counts, assign(list(counts.values()), self.world)))
        part = self.part(out)
        if part.is_file():
            log.info('%s: complete from an earlier run, reused', part)
        else:
            write_jsonl(part, produce([i for i in items if owner[key(i)] == self.rank]))
        self.barrier()
        parts = [read_jsonl(self.part(out, r)) for r in range(self.world)]
        for rank, records in enumerate(parts):
            want = sum(n for k, n in counts.items() if owner[k] == rank)
            if len(records) != want:
                raise ValueError(
                    f'{self.part(out, rank)} holds {len(records)} records, its shard has '
                    f'{want}; remove it to redo that shard'
                )
        cursors = [iter(p) for p in parts]
        records = [next(cursors[owner[k]]) for k, n in counts.items() for _ in range(n)]
        self.barrier()  # every rank has read the parts
        if self.main:
            write_jsonl(out, records)
            for rank in range(self.world):
                self.part(out, rank).unlink()
        self.barrier()
        return records


def current() -> Shard:
    """This process's shard: torchrun's RANK/WORLD_SIZE (joining a gloo process group and, if
    CUDA is available, making LOCAL_RANK the current GPU), else the whole job."""
    world = int(os.environ.get('WORLD_SIZE', '1') or 1)
    if world <= 1:
        return Shard()
    rank = int(os.environ.get('RANK', '0'))
    if not (1 < world <= MAX_WORLD and 0 <= rank < world):
        raise ValueError(f'RANK={rank} / WORLD_SIZE={world} do not describe a torchrun job')
    import torch

    from training.distributed import join_process_group

    join_process_group('gloo', BARRIER_TIMEOUT)
    if torch.cuda.is_available():
        local = int(os.environ.get('LOCAL_RANK', '0'))
        torch.cuda.set_device(local % torch.cuda.device_count())  # 'cuda' = this rank's GPU
    log.info('rank %d of %d', rank, world)
    return Shard(rank, world)


def _seed_part(part: Path, out: Path, columns: Sequence[str], ids: set[str]) -> None:
    """A new part file starts with this shard's rows of an earlier merged ``out`` (a run that
    was merged before it was complete, or one process's partial run), so they are not redone."""
    from training.submission.raw_csv import append_rows, open_for_resume, read_rows

    if part.is_file() or not out.is_file():
        return
    open_for_resume(out, columns)  # a foreign or broken file is refused here, untouched
    rows = [r for r in read_rows(out) if r['id'] in ids]
    open_for_resume(part, columns)
    append_rows(part, [[r[c] for c in columns] for r in rows])


def merge_csv(out: Path, parts: Sequence[Path], columns: Sequence[str], order: list[str]) -> None:
    """``out`` = its own rows and the parts' rows, one per id, in ``order`` (ids not in it
    last, sorted); written to a temporary file and renamed, then the parts are removed."""
    from training.submission.raw_csv import append_rows, open_for_resume, read_rows

    rows: dict[str, list[str]] = {}
    for path in [out, *parts]:
        if path.is_file():
            for row in read_rows(path):
                rows.setdefault(row['id'], [row[c] for c in columns])
    rank = {id_: i for i, id_ in enumerate(order)}
    ids = sorted(rows, key=lambda i: (rank.get(i, len(rank)), i))
    tmp = out.with_name(out.name + '.merging')
    tmp.unlink(missing_ok=True)
    open_for_resume(tmp, columns)
    append_rows(tmp, [rows[i] for i in ids])
    os.replace(tmp, out)
    for path in parts:
        path.unlink(missing_ok=True)


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line, written to a temporary file and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.writing')
    with open(tmp, 'w', encoding='utf-8') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]
