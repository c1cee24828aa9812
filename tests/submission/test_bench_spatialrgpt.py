"""smolrgpt bench spatialrgpt on a five-item bench the fixture writes (tiny checkpoint)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
import shutil

import pytest

from smolrgpt_cli.main import main


def _bench(root: Path, ckpt: Path, out: Path, *extra: str) -> int:
    return main(
        [
            'bench',
            'spatialrgpt',
            '--checkpoint',
            str(ckpt),
            '--data-root',
            str(root),
            '--out',
            str(out),
            '--device',
            'cpu',
            '--max-new-tokens',
            '8',
            '--no-progress',
            *extra,
        ]
    )


def test_bench_runs_scores_and_reports(
    bench_root: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / 'bench'
    assert _bench(bench_root, tiny_checkpoint, out) == 0
    printed = capsys.readouterr().out
    assert 'qualitative accuracy' in printed and 'quantitative accuracy' in printed
    for group in ('left_right', 'tall_short', 'direct_distance', 'width', 'direction'):
        assert group in printed  # one table row per category group
    with open(out / 'answers.csv', encoding='utf-8', newline='') as f:
        rows = list(csv.reader(f, delimiter=';'))
    records = json.loads((bench_root / 'SpatialRGPT-Bench_v1.json').read_text())
    assert rows[0] == ['id', 'output']
    assert sorted(r[0] for r in rows[1:]) == sorted(r['id'] for r in records)
    report = json.loads((out / 'score.json').read_text())
    assert report['complete'] is True
    assert set(report['per_category']) == {
        'left_right',
        'tall_short',
        'direct_distance',
        'width',
        'direction',
    }
    assert (out / 'score.png').stat().st_size > 0
    # a rerun finds every answer done and only re-scores
    assert _bench(bench_root, tiny_checkpoint, out, '--no-chart') == 0
    assert '0 answered' in capsys.readouterr().out


def test_bench_without_depth(
    bench_root: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    shutil.rmtree(bench_root / 'depths')
    assert _bench(bench_root, tiny_checkpoint, tmp_path / 'a') == 2
    assert '--flat-depth' in capsys.readouterr().err
    assert _bench(bench_root, tiny_checkpoint, tmp_path / 'b', '--flat-depth', '--no-chart') == 0
    assert json.loads((tmp_path / 'b' / 'score.json').read_text())['depth'] == 'flat (none)'
