"""A record's file names stay inside the folder the reader joins them with: absolute names,
``../`` escapes and symlinks leading out are bad records, reported with their id."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import numpy as np
from PIL import Image
import pytest

from training.data.parquet import ParquetReader, write_parquet
from training.data.spatialrgpt_bench import SpatialRGPTBenchReader
from training.data.validation import RecordError
from training.data.warehouse_json import WarehouseJsonReader


def _outside(tmp_path: Path) -> Path:
    """A real image outside the dataset: only the confinement can refuse it."""
    secret = tmp_path / 'outside' / 'secret.png'
    secret.parent.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(secret)
    shutil.copyfile(secret, secret.with_name('secret_depth.png'))
    return secret


@pytest.mark.parametrize('check_files', [True, False])
def test_warehouse_json_escapes_are_bad_records(
    synth_root: Path, tmp_path: Path, check_files: bool
) -> None:
    root = tmp_path / 'ds'
    shutil.copytree(synth_root / 'val', root / 'val')
    records = json.loads((synth_root / 'val.json').read_text())
    assert len(records) >= 4
    secret = _outside(tmp_path)
    images = root / 'val' / 'images'
    (images / 'link.png').symlink_to(secret)
    # a symlink that stays inside the dataset is fine
    inside = records[3]['image']
    (images / 'alias.png').symlink_to(images / inside)
    (root / 'val' / 'depths' / 'alias_depth.png').symlink_to(
        root / 'val' / 'depths' / inside.replace('.png', '_depth.png')
    )
    records[0]['image'] = str(secret)
    records[1]['image'] = '../../../outside/secret.png'
    records[2]['image'] = 'link.png'
    records[3]['image'] = 'alias.png'
    (root / 'val.json').write_text(json.dumps(records))

    reader = WarehouseJsonReader(root, 'val', check_files=check_files)
    samples = list(reader)
    assert reader.report.skipped == 3 and len(samples) == len(records) - 3
    problems = dict(reader.report.problems)
    assert 'must be relative' in problems[records[0]['id']]
    assert 'leads outside' in problems[records[1]['id']]
    assert 'leads outside' in problems[records[2]['id']]
    assert any(s.rgb_path.name == 'alias.png' for s in samples)
    with pytest.raises(RecordError, match=records[0]['id']):
        list(WarehouseJsonReader(root, 'val', strict=True, check_files=check_files))


def test_parquet_escapes_are_bad_records(tmp_path: Path) -> None:
    root = tmp_path / 'ds'
    (root / 'images').mkdir(parents=True)
    (root / 'depths').mkdir()
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(root / 'images' / 'a.png')
    Image.fromarray(np.zeros((8, 12), np.uint8)).save(root / 'depths' / 'a_depth.png')
    secret = _outside(tmp_path)
    (root / 'images' / 'link.png').symlink_to(secret)
    base = {
        'id_db': '1',
        'rgb_image': 'a.png',
        'depth_image': 'a_depth.png',
        'rle': None,
        'texts': {'user': 'Describe the image.', 'assistant': 'Dark.'},
        'category': None,
        'normalized_answer': None,
        'dataset_name': root.name,
    }
    rows = [
        {**base, 'id': 'ok'},
        {**base, 'id': 'absolute', 'rgb_image': str(secret)},
        {**base, 'id': 'dotdot', 'rgb_image': '../../outside/secret.png'},
        {**base, 'id': 'symlink', 'rgb_image': 'link.png'},
        {**base, 'id': 'depth', 'depth_image': '../../outside/secret_depth.png'},
    ]
    write_parquet(root / 'data' / 'train-0.parquet', rows)
    reader = ParquetReader(root)
    assert [s.id for s in reader] == ['ok']
    problems = dict(reader.report.problems)
    assert set(problems) == {'absolute', 'dotdot', 'symlink', 'depth'}
    assert 'RGB image' in problems['symlink'] and 'depth image' in problems['depth']


def test_bench_escapes_are_bad_records(tmp_path: Path) -> None:
    secret = _outside(tmp_path)
    bench = tmp_path / 'bench'
    bench.mkdir()
    record = {
        'id': 'escape',
        'image_info': {'file_path': '../outside/secret.png', 'height': 4, 'width': 4},
        'qa_info': {'type': 'qualitative', 'category': 'below_choice'},
        'conversations': [
            {'from': 'human', 'value': '<image>\nIs <mask> below <mask>?'},
            {'from': 'gpt', 'value': 'Region [1] is below.'},
        ],
        'bbox': [[0, 0, 2, 2], [1, 1, 3, 3]],
    }
    (bench / 'SpatialRGPT-Bench_v1.json').write_text(json.dumps([record]))
    assert secret.is_file()
    reader = SpatialRGPTBenchReader(bench)
    assert list(reader) == []
    assert reader.report.problems == [
        ('escape', f"RGB image path '../outside/secret.png' leads outside {bench}")
    ]
