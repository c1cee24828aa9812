"""1080x1920 RLE strings decode to the expected masks through the shared codec.

The NVIDIA card's two RLE strings are not in our reference notes and cannot be fetched here,
so these strings were made with pycocotools.mask.encode from known rectangles (the counts
below are what we measured); they exercise the same size and format.
"""

from __future__ import annotations

import numpy as np

from smolrgpt_core.masks import rle_area, rle_encode, rles_decode

# rows 400:700, columns 300:900
RECTANGLE = {'size': [1080, 1920], 'counts': '`il9\\9\\h' + '0' * 1198 + '`\\cQ1'}
# rows 100:250 x columns 1500:1800, plus rows 800:1000 x columns 1000:1100
TWO_RECTANGLES = {
    'size': [1080, 1920],
    'counts': 'P_oP1X6`k' + '0' * 198 + 'TVU=^N^kjB' + '0' * 597 + 'l^n3',
}


def test_decode_to_1080x1920_with_known_pixel_counts() -> None:
    masks = rles_decode([RECTANGLE, TWO_RECTANGLES])
    assert masks.shape == (2, 1080, 1920)
    assert int(masks[0].sum()) == 180_000
    assert int(masks[1].sum()) == 65_000
    assert masks[0][400:700, 300:900].all()
    assert masks[1][100:250, 1500:1800].all() and masks[1][800:1000, 1000:1100].all()
    assert rle_area(RECTANGLE) == 180_000


def test_encode_gives_the_same_strings() -> None:
    mask = np.zeros((1080, 1920), dtype=bool)
    mask[400:700, 300:900] = True
    assert rle_encode(mask) == RECTANGLE
