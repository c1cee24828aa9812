"""COCO RLE codec: byte-identical to pycocotools, exact round trips, clear errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from smolrgpt_core import masks

HAVE_COCO = importlib.util.find_spec('pycocotools') is not None


def _random_masks(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(1, 40, size=2))
        if i % 3 == 0:  # blocky, like real region masks
            m = np.zeros((h, w), dtype=bool)
            m[rng.integers(0, h) :, rng.integers(0, w) :] = True
        else:
            m = rng.random((h, w)) < rng.random()
        out.append(m)
    out.append(np.ones((3, 4), dtype=bool))  # starts with foreground: leading 0-length run
    out.append(np.zeros((3, 4), dtype=bool))
    return out


def test_hand_computed_counts_and_string() -> None:
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:5] = True  # columns 2..4, rows 1..2
    mask[4, 6] = True
    # column-major runs: 11 background, then (2 fg, 3 bg) x3, then 9 bg, 1 fg
    assert masks.mask_to_counts(mask) == [11, 2, 3, 2, 3, 2, 11, 1]
    # value pinned from pycocotools.mask.encode on the same array
    assert masks.counts_to_string([11, 2, 3, 2, 3, 2, 11, 1]) == ';230008O'
    assert masks.rle_area({'size': [5, 7], 'counts': ';230008O'}) == 7


def test_full_frame_mask_string() -> None:
    # a 1080x1920 all-foreground mask, as pycocotools writes it
    rle = {'size': [1080, 1920], 'counts': '0PPYo1'}
    assert masks.rle_area(rle) == 1080 * 1920
    assert masks.rle_decode(rle).all()


@pytest.mark.parametrize('mask', _random_masks(60))
def test_own_codec_round_trip(mask: np.ndarray) -> None:
    text = masks.counts_to_string(masks.mask_to_counts(mask))
    decoded = masks.rle_decode({'size': list(mask.shape), 'counts': text})
    assert decoded.dtype == bool and decoded.shape == mask.shape
    assert np.array_equal(decoded, mask)


@pytest.mark.skipif(not HAVE_COCO, reason='pycocotools not installed: nothing to compare with')
def test_own_codec_equals_pycocotools() -> None:
    from pycocotools import mask as coco

    for mask in _random_masks(200):
        expected = coco.encode(np.asfortranarray(mask.astype(np.uint8)))['counts'].decode()
        assert masks.counts_to_string(masks.mask_to_counts(mask)) == expected
        assert np.array_equal(
            coco.decode({'size': list(mask.shape), 'counts': expected}),
            masks.rle_decode({'size': list(mask.shape), 'counts': expected}),
        )


def test_rle_encode_accepts_uint8_and_decodes_back() -> None:
    mask = np.zeros((1080, 1920), dtype=np.uint8)
    mask[100:300, 200:900] = 255
    rle = masks.rle_encode(mask)
    assert rle['size'] == [1080, 1920] and isinstance(rle['counts'], str)
    assert masks.rle_area(rle) == 200 * 700
    assert np.array_equal(masks.rle_decode(rle), mask > 0)


def test_rles_decode_stacks_in_order() -> None:
    a = np.eye(4, dtype=bool)
    b = ~a
    stacked = masks.rles_decode([masks.rle_encode(a), masks.rle_encode(b)])
    assert stacked.shape == (2, 4, 4)
    assert np.array_equal(stacked[0], a) and np.array_equal(stacked[1], b)


@pytest.mark.parametrize(
    ('rle', 'message'),
    [
        ({'counts': 'abc'}, "'size' and 'counts'"),
        ('not a dict', "'size' and 'counts'"),
        ({'size': [0, 4], 'counts': '0'}, 'two positive integers'),
        ({'size': 35, 'counts': '0'}, 'two positive integers'),
        ({'size': [5, 7, 1], 'counts': '0'}, 'two positive integers'),
        ({'size': [5.0, 7], 'counts': '0'}, 'two positive integers'),
        ({'size': [True, 7], 'counts': '0'}, 'two positive integers'),
        ({'size': ['5', '7'], 'counts': '0'}, 'two positive integers'),
        ({'size': [100_000, 100_000], 'counts': '0'}, 'more than the 67108864 allowed'),
        ({'size': [5, 7], 'counts': None}, 'a string or a list'),
        ({'size': [5, 7], 'counts': 35}, 'a string or a list'),
        ({'size': [2, 2], 'counts': [1, -3]}, 'non-negative integers'),
        ({'size': [2, 2], 'counts': [1, None]}, 'non-negative integers'),
        ({'size': [2, 2], 'counts': [1, 2]}, 'needs 4 pixels'),
        ({'size': [5, 7], 'counts': ';23'}, 'needs 35 pixels'),
        ({'size': [1, 2], 'counts': masks.counts_to_string([3, -1])}, 'run length -1 is negative'),
        ({'size': [5, 7], 'counts': ' 23'}, 'invalid character'),
        ({'size': [5, 7], 'counts': '\u00e923'}, 'invalid character'),
        ({'size': [5, 7], 'counts': 'o'}, 'ends in the middle'),
        ({'size': [5, 7], 'counts': 'o' * 40 + '0'}, 'longer than 13 characters'),
        ({'size': [1, 1], 'counts': '000'}, 'more than the 2 runs'),
    ],
)
def test_bad_rle_errors_name_the_problem(rle: dict, message: str) -> None:
    with pytest.raises(masks.MaskFormatError, match=message):
        masks.rle_decode(rle)
    with pytest.raises(masks.MaskFormatError, match=message):
        masks.rle_area(rle)


def test_the_pixel_bound_is_an_argument() -> None:
    rle = masks.rle_encode(np.ones((40, 50), dtype=bool))
    assert masks.rle_decode(rle, max_pixels=2000).all()
    with pytest.raises(masks.MaskFormatError, match='2000 pixels, more than the 1999 allowed'):
        masks.rle_decode(rle, max_pixels=1999)
    with pytest.raises(masks.MaskFormatError, match='more than the 1999 allowed'):
        masks.rles_decode([rle], max_pixels=1999)


def test_uncompressed_rle_decodes_column_major() -> None:
    decoded = masks.rle_decode({'size': [2, 3], 'counts': [1, 2, 3]})
    # column-major: (0,0) background, (1,0) and (0,1) foreground, the rest background
    assert decoded.tolist() == [[False, True, False], [True, False, False]]
    assert masks.rle_area({'size': [2, 3], 'counts': [1, 2, 3]}) == 2


def test_rles_of_one_image_must_agree_in_size() -> None:
    with pytest.raises(masks.MaskFormatError, match='different sizes'):
        masks.rles_decode([masks.rle_encode(np.ones((2, 2))), masks.rle_encode(np.ones((3, 2)))])
    with pytest.raises(masks.MaskFormatError, match='no RLEs'):
        masks.rles_decode([])
    with pytest.raises(masks.MaskFormatError, match='a list of RLEs, got dict'):
        masks.rles_decode({'size': [2, 2], 'counts': '04'})


def test_encode_rejects_non_2d() -> None:
    with pytest.raises(masks.MaskFormatError, match='2-D'):
        masks.rle_encode(np.ones((2, 2, 2)))
