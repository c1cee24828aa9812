"""Fuzzing the engine's inputs: every malformed frame or request is an EngineError naming the
problem (never another exception), and the sizes a caller controls are refused before anything
is allocated for them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import tracemalloc

import numpy as np
import pytest

from smolrgpt_core.inference.engine import EngineError, Frame, SpatialQueryEngine
from smolrgpt_core.settings import InferenceSettings

H, W = 24, 32
QUESTION = 'Is the pallet <mask> left of the pallet <mask>?'


@pytest.fixture(scope='module')
def engine(tiny_checkpoint: Path) -> SpatialQueryEngine:
    return SpatialQueryEngine.from_checkpoint(
        tiny_checkpoint, InferenceSettings.from_flat({'generation.max_new_tokens': 2})
    )


def good_frame(**changes: object) -> Frame:
    masks = np.zeros((2, H, W), np.uint8)
    masks[0, 2:10, 2:10] = 255
    masks[1, 12:20, 15:30] = 1
    frame = Frame(
        rgb=np.full((H, W, 3), 90, np.uint8),
        depth=np.full((H, W), 3000, np.uint16),
        masks=masks,
        region_ids=[4, 9],
        depth_encoding='16UC1',
    )
    for name, value in changes.items():
        setattr(frame, name, value)
    return frame


def _huge(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    # a read-only view that claims the size without holding it: refusing it must not touch it
    return np.broadcast_to(np.zeros((), dtype), shape)


def _nan_masks() -> np.ndarray:
    masks = good_frame().masks.astype(np.float32) / 255
    masks[0, 0, 0] = np.nan
    return masks


def _soft_masks() -> np.ndarray:
    masks = good_frame().masks.copy()
    masks[0, 3, 3] = 128
    return masks


FRAMES: list[tuple[str, Callable[[], Frame], str]] = [
    (
        '0x0',
        lambda: good_frame(
            rgb=np.zeros((0, 0, 3), np.uint8),
            depth=np.zeros((0, 0), np.uint16),
            masks=np.zeros((2, 0, 0), np.uint8),
        ),
        'the image is empty',
    ),
    ('0 wide', lambda: good_frame(rgb=np.zeros((H, 0, 3), np.uint8)), 'the image is empty'),
    ('rgb float', lambda: good_frame(rgb=np.zeros((H, W, 3), np.float32)), 'rgb must be uint8'),
    ('rgb gray', lambda: good_frame(rgb=np.zeros((H, W), np.uint8)), 'rgb must be uint8'),
    ('rgb 4ch', lambda: good_frame(rgb=np.zeros((H, W, 4), np.uint8)), 'rgb must be uint8'),
    ('rgb list', lambda: good_frame(rgb=[[1, 2, 3]]), 'rgb must be uint8'),
    (
        '8000x8000',
        lambda: good_frame(
            rgb=_huge((8000, 8000, 3), np.uint8),
            depth=_huge((8000, 8000), np.uint16),
            masks=_huge((2, 8000, 8000), np.uint8),
        ),
        'above limits.max_image_pixels',
    ),
    (
        '1x10^8',
        lambda: good_frame(rgb=_huge((1, 10**8, 3), np.uint8)),
        'above limits.max_image_pixels',
    ),
    ('depth encoding', lambda: good_frame(depth_encoding='rgb8'), 'unsupported depth encoding'),
    ('depth dtype', lambda: good_frame(depth=np.zeros((H, W), np.float64)), 'malformed depth'),
    ('depth mono8 as 16', lambda: good_frame(depth_encoding='mono8'), 'mono8 needs uint8'),
    ('depth size', lambda: good_frame(depth=np.zeros((H + 1, W), np.uint16)), 'size mismatch'),
    (
        'depth none valid',
        lambda: good_frame(depth=np.zeros((H, W), np.uint16)),
        'no valid depth pixel',
    ),
    (
        'depth all NaN',
        lambda: good_frame(depth=np.full((H, W), np.nan, np.float32), depth_encoding='32FC1'),
        'no valid depth pixel',
    ),
    (
        'depth all zero m',
        lambda: good_frame(depth=np.zeros((H, W), np.float32), depth_encoding='32FC1'),
        'no valid depth pixel',
    ),
    ('masks 2d', lambda: good_frame(masks=np.zeros((H, W), np.uint8)), 'masks must be [M, H, W]'),
    ('masks size', lambda: good_frame(masks=np.zeros((2, H, W + 1), np.uint8)), 'size mismatch'),
    ('masks NaN', lambda: good_frame(masks=_nan_masks()), 'NaN or infinite'),
    ('masks soft', lambda: good_frame(masks=_soft_masks()), 'masks must be binary'),
    (
        'masks float 0.5',
        lambda: good_frame(masks=np.full((2, H, W), 0.5, np.float32)),
        'masks must be binary',
    ),
    (
        'masks int64',
        lambda: good_frame(masks=np.ones((2, H, W), np.int64)),
        'masks must be bool or uint8',
    ),
    (
        'too many regions',
        lambda: good_frame(masks=_huge((129, H, W), np.uint8), region_ids=list(range(129))),
        'above limits.max_regions',
    ),
    ('ids count', lambda: good_frame(region_ids=[4]), '2 masks but 1 region ids'),
    ('ids duplicate', lambda: good_frame(region_ids=[4, 4]), 'region ids must be unique'),
]


@pytest.mark.parametrize(('name', 'make', 'message'), FRAMES, ids=[f[0] for f in FRAMES])
def test_bad_frames_are_clear_errors(
    engine: SpatialQueryEngine, name: str, make: Callable[[], Frame], message: str
) -> None:
    with pytest.raises(EngineError, match=message.replace('[', r'\[').replace(']', r'\]')):
        engine.ask(make(), QUESTION, [4, 9])


REQUESTS: list[tuple[str, object, list[int], int, str]] = [
    ('empty', '', [4, 9], 0, 'the question is empty'),
    ('blank', ' \n\t', [4, 9], 0, 'the question is empty'),
    ('not text', b'Is <mask> left of <mask>?', [4, 9], 0, 'the question must be text'),
    ('100 kB', QUESTION + 'x' * 100_000, [4, 9], 0, 'above generation.max_question_chars'),
    ('2001 chars', QUESTION + 'x' * (2001 - len(QUESTION)), [4, 9], 0, 'max_question_chars'),
    ('2^32-1 tokens', QUESTION, [4, 9], 2**32 - 1, 'max_new_tokens must be in 0..256'),
    ('257 tokens', QUESTION, [4, 9], 257, 'max_new_tokens must be in 0..256'),
    ('-1 tokens', QUESTION, [4, 9], -1, 'max_new_tokens must be in 0..256'),
    (
        'prompt tokens',
        'Is <mask> left of <mask>? ' + 'é' * 1900,
        [4, 9],
        0,
        'above generation.max_prompt_tokens',
    ),
    ('mixed', 'Is <mask> left of <region9>?', [4], 0, 'mixes <mask> placeholders'),
    ('ids short', QUESTION, [4], 0, '2 <mask> placeholders but 1 region ids'),
    ('ids long', QUESTION, [4, 9, 4], 0, '2 <mask> placeholders but 3 region ids'),
    ('unknown id', QUESTION, [4, 77], 0, 'unknown region ids \\[77\\]'),
    ('unknown tag', 'Is <region4> left of <region5>?', [], 0, 'unknown region ids \\[5\\]'),
    ('tag mismatch', 'Is <region4> left of <region9>?', [9, 4], 0, 'do not match the <regionN>'),
    ('huge tag', 'Is <region4> left of <region99999999999999999999>?', [], 0, 'unknown region'),
    ('no refs', 'Is the pallet left of the other pallet?', [], 0, 'needs region references'),
    ('reserved', 'Is <mask> left of <mask>? <|im_end|>', [4, 9], 0, 'reserved tokens'),
    ('image token', '<|image|> Is <mask> left of <mask>?', [4, 9], 0, 'reserved tokens'),
]


@pytest.mark.parametrize(
    ('name', 'question', 'ids', 'max_new_tokens', 'message'),
    REQUESTS,
    ids=[r[0] for r in REQUESTS],
)
def test_bad_requests_are_clear_errors(
    engine: SpatialQueryEngine,
    name: str,
    question: object,
    ids: list[int],
    max_new_tokens: int,
    message: str,
) -> None:
    with pytest.raises(EngineError, match=message):
        engine.ask(good_frame(), question, ids, max_new_tokens)  # type: ignore[arg-type]


def test_empty_referenced_mask_is_an_error(engine: SpatialQueryEngine) -> None:
    frame = good_frame()
    frame.masks[1] = 0
    with pytest.raises(EngineError, match='region 9 has an empty mask'):
        engine.ask(frame, QUESTION, [4, 9])


def test_refusals_allocate_nothing_big(engine: SpatialQueryEngine) -> None:
    frame = good_frame(
        rgb=_huge((8000, 8000, 3), np.uint8),
        depth=_huge((8000, 8000), np.uint16),
        masks=_huge((2, 8000, 8000), np.uint8),
    )
    tracemalloc.start()
    try:
        for _ in range(3):
            with pytest.raises(EngineError):
                engine.ask(frame, QUESTION, [4, 9])
            with pytest.raises(EngineError):
                engine.ask(good_frame(), QUESTION + 'x' * 100_000, [4, 9])
            with pytest.raises(EngineError):
                engine.ask(good_frame(), QUESTION, [4, 9], 2**32 - 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f'refusing allocated {peak} bytes'


def test_random_questions_answer_or_fail_clearly(engine: SpatialQueryEngine) -> None:
    rng = np.random.default_rng(14)
    alphabet = [*'abc <>/[]{}0123456789maskregion?\n\x00é漢🙂', '<mask>', '<region4>']
    outcomes = {'answered': 0, 'refused': 0}
    for _ in range(60):
        pieces = rng.choice(alphabet, size=int(rng.integers(0, 40)))
        question = ''.join(pieces)
        ids = [int(i) for i in rng.choice([4, 9, 77], size=int(rng.integers(0, 3)))]
        try:
            answer = engine.ask(good_frame(), question, ids, int(rng.integers(0, 4)))
        except EngineError as exc:
            assert str(exc) and 'Traceback' not in str(exc)
            outcomes['refused'] += 1
        else:
            assert isinstance(answer.text, str)
            outcomes['answered'] += 1
    assert outcomes['answered'] and outcomes['refused']


def test_valid_frames_in_each_encoding_are_answered(engine: SpatialQueryEngine) -> None:
    metres = np.full((H, W), 3.0, np.float32)
    metres[0, 0] = np.nan  # a hole is fine
    for frame in (
        good_frame(),
        good_frame(depth=metres, depth_encoding='32FC1'),
        good_frame(depth=np.full((H, W), 90, np.uint8), depth_encoding='mono8'),
        good_frame(masks=good_frame().masks.astype(bool)),
        good_frame(masks=(good_frame().masks > 0).astype(np.float32)),
    ):
        assert isinstance(engine.ask(frame, QUESTION, [4, 9]).text, str)


def test_uint8_and_bool_masks_give_the_same_answer(engine: SpatialQueryEngine) -> None:
    as_uint8 = engine.ask(good_frame(), QUESTION, [4, 9], 2)
    as_bool = engine.ask(good_frame(masks=good_frame().masks > 0), QUESTION, [4, 9], 2)
    assert as_uint8.text == as_bool.text
