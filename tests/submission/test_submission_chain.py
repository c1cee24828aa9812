"""smolrgpt submission generate -> normalize -> score, from the CLI, on a synthetic split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from smolrgpt_cli.main import main
from smolrgpt_core.warehouse_metric import score_warehouse
from training.submission.raw_csv import RAW_COLUMNS


def _generate(root: Path, ckpt: Path, out: Path, *extra: str, split: str = 'val') -> int:
    return main(
        [
            'submission',
            'generate',
            '--checkpoint',
            str(ckpt),
            '--data-root',
            str(root),
            '--split',
            split,
            '--out',
            str(out),
            '--device',
            'cpu',
            '--batch',
            '2',
            '--max-new-tokens',
            '12',
            '--no-progress',
            *extra,
        ]
    )


def _rows(path: Path) -> list[list[str]]:
    with open(path, encoding='utf-8', newline='') as f:
        return list(csv.reader(f, delimiter=';'))


def test_chain_generate_normalize_score(
    warehouse_root: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw, sub = tmp_path / 'raw_output.csv', tmp_path / 'submission.json'
    assert _generate(warehouse_root, tiny_checkpoint, raw) == 0
    rows = _rows(raw)
    val = json.loads((warehouse_root / 'val.json').read_text())
    assert rows[0] == list(RAW_COLUMNS)
    assert [r[0] for r in rows[1:]] == [r['id'] for r in val]
    assert [r[1] for r in rows[1:]] == [r['image'] for r in val]

    assert (
        main(
            [
                'submission',
                'normalize',
                '--raw',
                str(raw),
                '--questions',
                str(warehouse_root / 'val.json'),
                '--out',
                str(sub),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert 'needed a fallback' in out
    submission = json.loads(sub.read_text())
    assert [s['id'] for s in submission] == [r['id'] for r in val]
    assert all(set(s) == {'id', 'normalized_answer'} for s in submission)
    for record, answer in zip(val, submission):
        value = answer['normalized_answer']
        assert isinstance(value, str)
        if record['category'] in ('count', 'distance', 'mcq'):
            float(value)  # numeric strings: the official scorer calls float() on them
        else:
            assert value in ('left', 'right')
    stats = json.loads((tmp_path / 'submission.stats.json').read_text())
    assert stats['total'] == len(val)

    assert (
        main(
            [
                'score',
                'warehouse',
                '--gt',
                str(warehouse_root / 'val.json'),
                '--pred',
                str(sub),
                '--no-chart',
            ]
        )
        == 0
    )
    assert 'final score' in capsys.readouterr().out
    score_warehouse(val, submission)  # the official rule: same id set, parsable values


def test_generate_resumes_to_the_same_file(
    warehouse_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Stopped after k answers, then killed in the middle of a write, then resumed: the final
    file equals an uninterrupted run's, byte for byte."""
    full, part = tmp_path / 'full.csv', tmp_path / 'part.csv'
    assert _generate(warehouse_root, tiny_checkpoint, full, split='train') == 0
    assert len(_rows(full)) - 1 == len(json.loads((warehouse_root / 'train.json').read_text()))
    assert (
        _generate(warehouse_root, tiny_checkpoint, part, '--max-samples', '3', split='train') == 0
    )
    first = len(_rows(part)) - 1
    assert 3 <= first <= 4  # whole batches of <= 2: stops after the one reaching 3
    # a kill during the next write: half of the next row reached the disk
    next_row = full.read_bytes().splitlines(keepends=True)[first + 1]
    with open(part, 'ab') as f:
        f.write(next_row[:25])
    assert _generate(warehouse_root, tiny_checkpoint, part, split='train') == 0
    assert part.read_bytes() == full.read_bytes()


def test_generate_refuses_a_foreign_csv(
    warehouse_root: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = tmp_path / 'other.csv'
    other.write_text('id,answer\n1,left\n')
    assert _generate(warehouse_root, tiny_checkpoint, other) == 2
    assert 'header' in capsys.readouterr().err
    assert other.read_text() == 'id,answer\n1,left\n'  # untouched


def test_reference_depth_quirk(
    warehouse_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The quirk sends depth through the RGB pipeline: a different vision input, still runs."""
    from smolrgpt_core.inference.engine import SpatialQueryEngine
    from smolrgpt_core.settings import InferenceSettings
    from training.data.image_groups import group_by_image
    from training.data.warehouse_json import WarehouseJsonReader
    from training.submission.answering import load_frame

    group = group_by_image(WarehouseJsonReader(warehouse_root, 'val'))[0]
    frame = load_frame(group, stamp_ns=0)
    default = SpatialQueryEngine.from_checkpoint(tiny_checkpoint)
    quirk = SpatialQueryEngine.from_checkpoint(
        tiny_checkpoint, InferenceSettings.from_flat({'depth.pipeline': 'rgb'})
    )
    assert default.depth_pipeline == 'train' and quirk.depth_pipeline == 'rgb'
    a, b = default.encode(frame), quirk.encode(frame)
    assert (a.image_embeds == b.image_embeds).all()  # RGB untouched
    assert not (a.depth_regions == b.depth_regions).all()
    assert (
        _generate(warehouse_root, tiny_checkpoint, tmp_path / 'q.csv', '--reference-depth-quirk')
        == 0
    )
