"""An image with more distinct masks than one frame may hold is still answered."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from smolrgpt_core.inference.engine import SpatialQueryEngine
from smolrgpt_core.settings import InferenceSettings
from training.data.image_groups import group_by_image
from training.data.warehouse_json import WarehouseJsonReader
from training.submission.answering import answer_to_csv, fitting, load_frame
from training.submission.raw_csv import RAW_COLUMNS
from training.synth.generate import generate


@pytest.fixture(scope='module')
def crowded_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 scenes with 4 questions a category each: an image's questions name more distinct
    masks together than any one of them does."""
    out = tmp_path_factory.mktemp('crowded') / 'warehouse'
    generate(
        out, 3, seed=21, width=128, height=72, formats={'nvidia'}, per_category=4, progress=False
    )
    return out


def _answers(root: Path, ckpt: Path, out: Path, limit: int) -> tuple[list[list[str]], int]:
    settings = InferenceSettings.from_flat(
        {'generation.max_new_tokens': 6, 'limits.max_regions': limit}
    )
    engine = SpatialQueryEngine.from_checkpoint(ckpt, settings)
    groups = group_by_image(WarehouseJsonReader(root, 'train'))
    stats = answer_to_csv(
        engine,
        groups,
        out,
        columns=RAW_COLUMNS,
        row=lambda s, text: (s.id, s.rgb_path.name, text),
        batch=64,
        progress=False,
    )
    with open(out, encoding='utf-8', newline='') as f:
        return list(csv.reader(f, delimiter=';'))[1:], stats.failed


def test_a_crowded_image_is_answered_in_parts_as_in_one_frame(
    crowded_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    groups = group_by_image(WarehouseJsonReader(crowded_root, 'train'))
    widest = max(len(ids) for g in groups for ids in g.region_ids)
    crowded = max(groups, key=lambda g: len(g.rles))
    assert len(crowded.rles) > widest  # the limit below splits this image
    whole, failed_whole = _answers(crowded_root, tiny_checkpoint, tmp_path / 'a.csv', 128)
    parts, failed_parts = _answers(crowded_root, tiny_checkpoint, tmp_path / 'b.csv', widest)
    assert failed_whole == failed_parts == 0
    assert parts == whole  # same ids, same order, same texts

    frame = load_frame(crowded, stamp_ns=1)
    pieces = fitting(frame, list(zip(crowded.samples, crowded.region_ids)), widest)
    assert len(pieces) > 1
    for part_frame, questions in pieces:
        assert len(part_frame.region_ids) <= widest and part_frame.stamp_ns == 0
        named = {rid for _, ids in questions for rid in ids}
        assert set(part_frame.region_ids) == named
        for k, rid in enumerate(part_frame.region_ids):
            assert (part_frame.masks[k] == frame.masks[rid]).all()


def test_a_question_naming_more_masks_than_the_limit_is_refused_alone(
    crowded_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    groups = group_by_image(WarehouseJsonReader(crowded_root, 'train'))
    sizes = sorted({len(ids) for g in groups for ids in g.region_ids})
    limit = sizes[-2]  # the questions naming the most masks exceed it
    rows, failed = _answers(crowded_root, tiny_checkpoint, tmp_path / 'c.csv', limit)
    too_wide = {
        s.id for g in groups for s, ids in zip(g.samples, g.region_ids) if len(ids) > limit
    }
    assert failed == len(too_wide) > 0
    assert all(text == '' for sample_id, _, text in rows if sample_id in too_wide)
