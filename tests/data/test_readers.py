"""Readers on generated fixture trees: NVIDIA JSON, SmolRGPT parquet, SpatialRGPT-Bench."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import numpy as np
from PIL import Image
import pytest

from smolrgpt_core.masks import rle_encode
from training.data.parquet import ParquetReader, write_parquet
from training.data.spatialrgpt_bench import SpatialRGPTBenchReader
from training.data.validation import RecordError
from training.data.warehouse_json import WarehouseJsonReader


def test_warehouse_json_reads_every_split(synth_root: Path) -> None:
    for split in ('train', 'val'):
        samples = list(WarehouseJsonReader(synth_root, split, strict=True))
        assert samples
        for s in samples:
            assert s.question.count('<mask>') == s.n_regions
            assert s.rgb_path.is_file() and s.depth_path.name.endswith('_depth.png')
            assert s.category in ('left_right', 'count', 'distance', 'mcq')
            assert s.normalized_answer is not None and s.answer
    test = list(WarehouseJsonReader(synth_root, 'test', strict=True))
    assert test and all(s.answer is None and s.category is None for s in test)
    sample = test[0]
    masks = sample.masks()
    assert masks.shape[1:] == sample.load_rgb().shape[:2] == sample.load_depth().shape
    assert masks.any(axis=(1, 2)).all()  # every region is visible


def test_parquet_matches_the_json(synth_root: Path) -> None:
    by_id = {s.id: s for s in WarehouseJsonReader(synth_root, 'val')}
    samples = list(ParquetReader(synth_root, 'val', strict=True))
    assert {s.id for s in samples} == set(by_id)
    for s in samples:
        ref = by_id[s.id]
        assert s.question == ref.question.replace('<image>', '').replace(
            '<mask>', '<mask_rgb><mask_depth>'
        )
        assert s.rle == ref.rle and s.answer == ref.answer
        assert s.normalized_answer == ref.normalized_answer
        assert s.rgb_path == ref.rgb_path


def _copy_val(synth_root: Path, tmp_path: Path) -> tuple[Path, list[dict]]:
    root = tmp_path / 'ds'
    shutil.copytree(synth_root / 'val', root / 'val')
    records = json.loads((synth_root / 'val.json').read_text())
    return root, records


def test_bad_records_are_skipped_and_counted_or_raise(synth_root: Path, tmp_path: Path) -> None:
    root, records = _copy_val(synth_root, tmp_path)
    assert len(records) >= 3
    records[0]['image'] = 'missing.png'
    records[1]['rle'] = records[1]['rle'][:-1]
    records[2]['rle'][0] = {'size': [10, 10], 'counts': rle_encode(np.ones((10, 10)))['counts']}
    (root / 'val.json').write_text(json.dumps(records))
    reader = WarehouseJsonReader(root, 'val')
    assert len(list(reader)) == len(records) - 3
    assert reader.report.skipped == 3
    problems = dict(reader.report.problems)
    assert 'file missing' in problems[records[0]['id']]
    assert 'placeholders but' in problems[records[1]['id']]
    assert 'differs from the image size' in problems[records[2]['id']]
    with pytest.raises(RecordError, match=records[0]['id']):
        list(WarehouseJsonReader(root, 'val', strict=True))


def test_parquet_caption_layout_multi_turn_and_null_rle(tmp_path: Path) -> None:
    root = tmp_path / 'llava-cc3m-smolRGPT'
    (root / 'images').mkdir(parents=True)
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(root / 'images' / 'a.png')
    row = {
        'id_db': '1',
        'id': 'cap1',
        'rgb_image': 'a.png',
        'depth_image': None,
        'rle': None,
        'texts': {'user': 'Describe the image.', 'assistant': 'A dark square.'},
        'category': None,
        'normalized_answer': None,
        'dataset_name': root.name,
    }
    write_parquet(root / 'data' / 'train-0.parquet', [row])
    samples = list(ParquetReader(root, strict=True))
    assert samples[0].rle is None and samples[0].depth_path is None
    assert samples[0].answer == 'A dark square.'
    # a multi-turn row (texts as a list), as the stage-1 loader also accepts
    reader = ParquetReader(root)
    multi = reader.parse(
        {**row, 'texts': [{'user': 'Q1', 'assistant': 'A1'}, {'user': 'Q2', 'assistant': 'A2'}]}
    )
    assert [t.user for t in multi.turns] == ['Q1', 'Q2']
    with pytest.raises(RecordError, match='placeholders'):
        reader.parse(
            {**row, 'texts': {'user': 'Is <mask_rgb><mask_depth> big?', 'assistant': 'yes'}}
        )


def _bench_record(rle: list[dict] | None, bbox: list | None) -> dict:
    return {
        'id': 'qualitative_1g1lvedTvh',
        'image_info': {'file_path': 'SUNRGBD/kv2/image/0000035.jpg', 'height': 20, 'width': 30},
        'text_q': 'Who is lower down, Region [0] or Region [1]?',
        'qa_info': {'type': 'qualitative', 'category': 'below_choice'},
        'conversations': [
            {'from': 'human', 'value': '<image>\nWho is lower down, <mask> or <mask>?'},
            {'from': 'gpt', 'value': 'Region [1] is below.'},
        ],
        'rle': rle,
        'bbox': bbox,
    }


def test_spatialrgpt_bench_reader(tmp_path: Path) -> None:
    image = tmp_path / 'SUNRGBD/kv2/image/0000035.jpg'
    image.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(image)
    mask = np.zeros((20, 30), bool)
    mask[2:5, 3:9] = True
    boxes = [[3, 2, 9, 5], [10, 10, 20, 15]]
    records = [
        _bench_record([rle_encode(mask), rle_encode(~mask)], boxes),
        _bench_record(None, boxes),  # boxes only: filled rectangles
        {**_bench_record([rle_encode(mask)], None), 'id': 'bad'},
    ]
    (tmp_path / 'SpatialRGPT-Bench_v1.json').write_text(json.dumps(records))
    reader = SpatialRGPTBenchReader(tmp_path)
    samples = list(reader)
    assert len(samples) == 2 and reader.report.problems[0][0] == 'bad'
    assert samples[0].normalized_answer == 1 and samples[0].meta['qa_type'] == 'qualitative'
    assert (samples[1].masks()[0] == mask).all()
