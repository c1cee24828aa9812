"""SpatialQueryEngine on a tiny real model: answers, caching, batching, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smolrgpt_core.inference.engine import (
    EngineError,
    Frame,
    Query,
    SpatialQueryEngine,
    resolve_regions,
)
from smolrgpt_core.settings import InferenceSettings, SettingsError
from smolrgpt_core.tokens import parse_references

H, W = 48, 64


@pytest.fixture(scope='module')
def engine(tiny_checkpoint: Path) -> SpatialQueryEngine:
    return SpatialQueryEngine.from_checkpoint(
        tiny_checkpoint, InferenceSettings.from_flat({'generation.max_new_tokens': 8})
    )


def make_frame(stamp_ns: int = 0, encoding: str = '16UC1', seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    masks = np.zeros((3, H, W), dtype=bool)
    masks[0, 5:20, 5:20] = True
    masks[1, 20:40, 30:60] = True
    masks[2, 30:45, 2:12] = True
    metres = rng.uniform(1.0, 12.0, (H, W)).astype(np.float32)
    depth = {
        '16UC1': (metres * 1000).astype(np.uint16),
        '32FC1': metres,
        'mono8': rng.integers(0, 256, (H, W), dtype=np.uint8),
    }[encoding]
    return Frame(
        rgb=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        depth=depth,
        masks=masks,
        region_ids=[7, 3, 11],
        depth_encoding=encoding,
        stamp_ns=stamp_ns,
    )


def test_answer_fields(engine: SpatialQueryEngine) -> None:
    answer = engine.ask(
        make_frame(), 'How far is the pallet <mask> from the pallet <mask>?', [3, 7]
    )
    assert isinstance(answer.text, str)
    assert answer.category == 'distance'
    assert answer.question_region_ids == [3, 7]
    assert set(answer.timings_ms) == {'geometry', 'encode', 'generate', 'total'}
    assert answer.latency_ms >= answer.timings_ms['generate']


def test_region_tags_equal_mask_placeholders(engine: SpatialQueryEngine) -> None:
    frame = make_frame()
    by_mask = engine.ask(frame, 'Is the pallet <mask> left of the pallet <mask>?', [11, 3])
    by_tag = engine.ask(frame, 'Is the pallet <region11> left of the pallet <region3>?')
    assert by_mask.text == by_tag.text and by_tag.question_region_ids == [11, 3]


def test_batched_equals_one_by_one(engine: SpatialQueryEngine) -> None:
    frame = make_frame(stamp_ns=123)
    queries = [
        Query('Is the pallet <mask> left of the pallet <mask>?', [7, 3]),
        Query('How many pallets are in the buffer <mask>?', [11]),
        Query('Which is the leftmost: <region3>, <region7> or <region11>?'),
    ]
    batched = engine.ask_many(frame, queries)
    single = [engine.ask(frame, q.question, q.region_ids) for q in queries]
    assert [a.text for a in batched] == [a.text for a in single]


def test_vision_side_runs_once_per_stamp(
    engine: SpatialQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = engine.model.encode_frame

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine.model, 'encode_frame', counting)
    frame = make_frame(stamp_ns=999)
    for _ in range(3):
        engine.ask(frame, 'Is <region7> left of <region3>?')
    assert len(calls) == 1
    engine.ask(make_frame(stamp_ns=0), 'Is <region7> left of <region3>?')
    engine.ask(make_frame(stamp_ns=0), 'Is <region7> left of <region3>?')
    assert len(calls) == 3  # stamp 0 is never cached


def test_cache_is_bounded(tiny_checkpoint: Path) -> None:
    engine = SpatialQueryEngine.from_checkpoint(
        tiny_checkpoint,
        InferenceSettings.from_flat({'cache.frames': 2, 'generation.max_new_tokens': 2}),
    )
    for stamp in (1, 2, 3):
        engine.encode(make_frame(stamp_ns=stamp))
    assert list(engine._cache) == [2, 3]


def test_metric_encodings_agree(engine: SpatialQueryEngine) -> None:
    """The same metres as 16UC1 millimetres or 32FC1 give the same depth input."""
    mm = make_frame(encoding='16UC1')
    metres = make_frame(encoding='32FC1')
    metres.depth = mm.depth.astype(np.float32) / 1000.0
    a, b = engine._depth8(mm), engine._depth8(metres)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert a.min() == 0 and a.max() == 255  # per-frame range, as the dataset's PNGs


def test_fixed_metric_range(tiny_checkpoint: Path) -> None:
    engine = SpatialQueryEngine.from_checkpoint(
        tiny_checkpoint,
        InferenceSettings.from_flat(
            {'depth.range': 'fixed', 'depth.min_m': 0.0, 'depth.max_m': 20.0}
        ),
    )
    frame = make_frame(encoding='32FC1')
    frame.depth[:] = 10.0
    frame.depth[0, 0] = np.nan
    depth8 = engine._depth8(frame)
    assert depth8[1, 1] == 128 and depth8[0, 0] == engine.cfg.depth_invalid_value


def _frame_with(**changes: object) -> Frame:
    frame = make_frame()
    for key, value in changes.items():
        setattr(frame, key, value)
    return frame


@pytest.mark.parametrize(
    ('frame', 'question', 'ids', 'message'),
    [
        (make_frame(), 'Is <mask> left of <mask>?', [7, 5], r'unknown region ids \[5\]'),
        (make_frame(), 'Is <mask> left of <mask>?', [7], '2 <mask> placeholders but 1 region'),
        (make_frame(), 'Is <mask> left of <region3>?', [7], 'mixes <mask> placeholders'),
        (make_frame(), 'Is <region7> left of <region3>?', [3, 7], 'do not match the <regionN>'),
        (
            make_frame(),
            'Is the pallet to the left of the other pallet?',
            [],
            'left_right question needs region references',
        ),
        (make_frame(), '   ', [], 'the question is empty'),
        (
            _frame_with(masks=np.zeros((3, H, W), bool)),
            'Is <region7> left of <region3>?',
            [],
            'region 7 has an empty mask',
        ),
        (
            _frame_with(depth=np.zeros((H, W - 1), np.uint16)),
            'Is <region7> left?',
            [],
            'size mismatch: depth',
        ),
        (
            _frame_with(masks=np.ones((3, H + 1, W), bool)),
            'Is <region7> left?',
            [],
            'size mismatch: masks',
        ),
        (
            _frame_with(depth=np.zeros((H, W), np.float32)),
            'Is <region7> left?',
            [],
            'malformed depth: 16UC1 needs uint16',
        ),
        (
            _frame_with(depth=np.zeros((H, W), np.uint16)),
            'Is <region7> left?',
            [],
            'malformed depth: no valid depth pixel',
        ),
        (
            _frame_with(depth_encoding='bgr8'),
            'Is <region7> left?',
            [],
            'unsupported depth encoding',
        ),
        (_frame_with(region_ids=[1, 1, 2]), 'Is <region1> left?', [], 'must be unique'),
        (_frame_with(region_ids=[1, 2]), 'Is <region1> left?', [], '3 masks but 2 region ids'),
        (
            _frame_with(rgb=np.zeros((H, W), np.uint8)),
            'Is <region7> left?',
            [],
            r'rgb must be uint8 \[H, W, 3\]',
        ),
    ],
)
def test_bad_requests_raise_clear_errors(
    engine: SpatialQueryEngine, frame: Frame, question: str, ids: list[int], message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        engine.ask(frame, question, ids)


def test_engine_keeps_working_after_errors(engine: SpatialQueryEngine) -> None:
    with pytest.raises(EngineError):
        engine.ask(make_frame(), 'Is <mask> left of <mask>?', [1, 2])
    assert engine.ask(make_frame(), 'Is <region7> left of <region3>?').category == 'left_right'


def test_questions_without_regions_are_allowed_when_not_spatial(
    engine: SpatialQueryEngine,
) -> None:
    answer = engine.ask(make_frame(), 'Describe the scene.')
    assert answer.category == 'other' and answer.value != answer.value  # NaN


def test_resolve_regions_maps_ids_to_frame_indices() -> None:
    ids, indices = resolve_regions(parse_references('A <mask> and <mask>'), [11, 7], [7, 3, 11])
    assert ids == [11, 7] and indices == [2, 0]
    ids, indices = resolve_regions(parse_references('A <region3>'), [], [7, 3, 11])
    assert ids == [3] and indices == [1]


def test_finish_maps_answer_regions_to_ids() -> None:
    answer = SpatialQueryEngine._finish(
        'The pallet [Region 1] is 6.36 meters from the pallet [Region 0].',
        'How far is <mask> from <mask>?',
        [11, 7],
        'distance',
        5,
    )
    assert answer.normalized_answer == '6.36' and answer.value == pytest.approx(6.36)
    assert answer.region_ids == [7, 11] and answer.frame_stamp_ns == 5
    mcq = SpatialQueryEngine._finish(
        'The leftmost pallet is [Region 2].',
        'Which is leftmost: <mask>, <mask>, <mask>?',
        [4, 5, 6],
        'mcq',
        0,
    )
    assert mcq.normalized_answer == '2' and mcq.region_ids == [6]
    unreadable = SpatialQueryEngine._finish('no idea', 'How many <mask>?', [1], 'count', 0)
    assert unreadable.normalized_answer == '' and unreadable.value != unreadable.value


def test_backend_and_dtype_choices_are_checked_by_the_settings() -> None:
    with pytest.raises(SettingsError, match=r"model\.dtype: .*not 'int4'"):
        InferenceSettings.from_flat({'model.dtype': 'int4'})
    with pytest.raises(SettingsError, match=r"model\.backend: unknown backend 'openvino'"):
        InferenceSettings.from_flat({'model.backend': 'openvino'})
