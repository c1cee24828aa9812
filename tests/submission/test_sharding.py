"""Evaluation under torchrun: each rank answers a shard of the images, rank 0 merges. Two CPU
processes (gloo) must write the same bytes as one process, for ``submission generate``,
``generate`` and ``bench spatialrgpt``; an interrupted sharded run resumes per shard."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from smolrgpt_cli.main import main
from training.sharding import Shard, assign, merge_csv
from training.submission.raw_csv import RAW_COLUMNS, append_rows, open_for_resume

REPO = Path(__file__).resolve().parents[2]


def test_assign_balances_whole_items_deterministically() -> None:
    sizes = [5, 1, 1, 3, 2, 2, 4, 1]
    owner = assign(sizes, 3)
    assert owner == assign(sizes, 3)
    loads = [sum(s for s, r in zip(sizes, owner) if r == rank) for rank in range(3)]
    assert sorted(loads) == [6, 6, 7]
    items = list('abcdefgh')
    shards = [Shard(r, 3).take(items, sizes) for r in range(3)]
    assert sorted(x for s in shards for x in s) == items  # every item once
    assert all(s == sorted(s) for s in shards)  # original order within a shard
    assert assign([], 4) == []
    assert set(assign([1] * 3, 8)) == {0, 1, 2}  # more ranks than items: some idle


def test_merge_orders_like_one_process_and_keeps_earlier_rows(tmp_path: Path) -> None:
    out = tmp_path / 'raw.csv'
    open_for_resume(out, RAW_COLUMNS)
    append_rows(out, [['q3', 'img1', 'from an earlier run']])
    parts = [tmp_path / 'raw.rank0-of-2.csv', tmp_path / 'raw.rank1-of-2.csv']
    for part, rows in zip(parts, ([['q1', 'img0', 'a; b']], [['q2', 'img1', 'two\nlines']])):
        open_for_resume(part, RAW_COLUMNS)
        append_rows(part, rows)
    merge_csv(out, parts, RAW_COLUMNS, ['q1', 'q2', 'q3'])
    assert out.read_text().splitlines() == [
        'id;image_id;output',
        'q1;img0;"a; b"',
        'q2;img1;two lines',
        'q3;img1;from an earlier run',
    ]
    assert not any(p.exists() for p in parts)


def _torchrun(nproc: int, *argv: str) -> None:
    """``torchrun --nproc-per-node=N -m smolrgpt_cli ARGV`` (gloo on CPU)."""
    command = [
        sys.executable,
        '-m',
        'torch.distributed.run',
        '--standalone',
        f'--nproc-per-node={nproc}',
        '-m',
        'smolrgpt_cli',
        *argv,
    ]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _submission(root: Path, ckpt: Path, out: Path, *extra: str) -> list[str]:
    return [
        'submission',
        'generate',
        '--checkpoint',
        str(ckpt),
        '--data-root',
        str(root),
        '--split',
        'train',
        '--out',
        str(out),
        '--device',
        'cpu',
        '--batch',
        '2',
        '--max-new-tokens',
        '8',
        '--no-progress',
        *extra,
    ]


def test_two_processes_write_the_bytes_of_one(
    warehouse_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    one, two = tmp_path / 'one.csv', tmp_path / 'two.csv'
    assert main(_submission(warehouse_root, tiny_checkpoint, one)) == 0
    _torchrun(2, *_submission(warehouse_root, tiny_checkpoint, two))
    assert two.read_bytes() == one.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['one.csv', 'two.csv']  # parts merged

    # resumed per shard: stop each rank after its first batch, then run to the end
    resumed = tmp_path / 'resumed.csv'
    _torchrun(2, *_submission(warehouse_root, tiny_checkpoint, resumed, '--max-samples', '1'))
    partial = resumed.read_bytes().count(b'\n') - 1
    assert 3 <= partial < one.read_bytes().count(b'\n') - 1  # a batch per rank
    _torchrun(2, *_submission(warehouse_root, tiny_checkpoint, resumed))
    assert resumed.read_bytes() == one.read_bytes()


def test_generate_and_bench_shard_like_one_process(
    warehouse_root: Path, bench_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    generate = [
        'generate',
        '--checkpoint',
        str(tiny_checkpoint),
        '--stage',
        'sft',
        '--data-root',
        str(warehouse_root),
        '--split',
        'train',
        '--max-new-tokens',
        '6',
        '--device',
        'cpu',
    ]
    assert main([*generate, '--out', str(tmp_path / 'one.jsonl')]) == 0
    _torchrun(2, *generate, '--out', str(tmp_path / 'two.jsonl'))
    one = (tmp_path / 'one.jsonl').read_bytes()
    assert (tmp_path / 'two.jsonl').read_bytes() == one
    assert one.count(b'\n') > 2

    bench = [
        'bench',
        'spatialrgpt',
        '--checkpoint',
        str(tiny_checkpoint),
        '--data-root',
        str(bench_root),
        '--device',
        'cpu',
        '--max-new-tokens',
        '6',
        '--no-progress',
        '--no-chart',
    ]
    assert main([*bench, '--out', str(tmp_path / 'bench1')]) == 0
    _torchrun(2, *bench, '--out', str(tmp_path / 'bench2'))
    answers = [(tmp_path / b / 'answers.csv').read_bytes() for b in ('bench1', 'bench2')]
    assert answers[1] == answers[0]
    scores = [json.loads((tmp_path / b / 'score.json').read_text()) for b in ('bench1', 'bench2')]
    for score in scores:
        score.pop('answers')  # the path of the answer file
    assert scores[1] == scores[0]


def test_a_bad_torchrun_environment_is_a_one_line_error(
    warehouse_root: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '5')
    assert main(_submission(warehouse_root, tiny_checkpoint, tmp_path / 'x.csv')) == 2
    assert 'RANK=5 / WORLD_SIZE=2' in capsys.readouterr().err
