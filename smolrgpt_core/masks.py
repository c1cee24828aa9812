"""Region masks in COCO run-length encoding (RLE), the format of every SmolRGPT dataset.

A mask is stored as ``{'size': [H, W], 'counts': str}``: run lengths over the pixels in
column-major (Fortran) order, alternating background/foreground and starting with background,
compressed into printable characters (pycocotools' ``rleToString`` scheme: each count, minus
the count two places earlier from the fourth on, is written in 5-bit groups with a
continuation bit, offset by 48).

pycocotools is used when importable (it is fast C); otherwise the pure numpy codec below
gives byte-identical strings. Both are exercised by the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
import importlib.util
from typing import Any

import numpy as np

_HAVE_PYCOCOTOOLS = importlib.util.find_spec('pycocotools') is not None

RLE = dict[str, Any]


class MaskFormatError(ValueError):
    """An RLE or mask array that cannot be what it claims to be."""


def _check_rle(rle: RLE) -> tuple[int, int, str | bytes]:
    if not isinstance(rle, dict) or 'size' not in rle or 'counts' not in rle:
        raise MaskFormatError(f"an RLE must be a dict with 'size' and 'counts', got {rle!r:.80}")
    size = rle['size']
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise MaskFormatError(f'RLE size must be [H, W] with positive values, got {size!r}')
    counts = rle['counts']
    if isinstance(counts, list):
        raise MaskFormatError(
            'uncompressed RLE (counts as a list) is not supported here; '
            'compress it with rle_encode(rle_decode_uncompressed(...))'
        )
    return int(size[0]), int(size[1]), counts


def counts_to_string(counts: Sequence[int]) -> str:
    """Compress run lengths into the COCO RLE string."""
    out = []
    for i, count in enumerate(counts):
        x = int(count)
        if i > 2:  # delta coding against the run of the same colour two places earlier
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative deltas end at -1, positive ones at 0
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return ''.join(out)


def string_to_counts(text: str | bytes) -> list[int]:
    """Expand a COCO RLE string into run lengths."""
    data = text.encode('ascii') if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    pos = 0
    while pos < len(data):
        x = 0
        shift = 0
        more = True
        while more:
            if pos >= len(data):
                raise MaskFormatError('RLE string ends in the middle of a count')
            c = data[pos] - 48
            if c < 0 or c > 63:
                raise MaskFormatError(f'invalid character {chr(data[pos])!r} in RLE string')
            x |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                x |= -1 << shift  # sign-extend
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of a [H, W] mask in column-major order, starting with background."""
    flat = np.asarray(mask, dtype=bool).ravel(order='F')
    # indices where the value changes, bracketed by the ends; an initial 1 gives a 0-length run
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    return runs


def counts_to_mask(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    total = height * width
    if any(c < 0 for c in counts) or sum(counts) != total:
        raise MaskFormatError(
            f'RLE run lengths sum to {sum(counts)} (or are negative) but size '
            f'{height}x{width} needs {total} pixels'
        )
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64))
    return flat.reshape(width, height).T  # column-major runs: [W, H] -> [H, W]


def rle_encode(mask: np.ndarray) -> RLE:
    """bool/uint8 mask [H, W] (non-zero = inside) -> ``{'size': [H, W], 'counts': str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise MaskFormatError(f'a mask must be 2-D [H, W], got shape {mask.shape}')
    height, width = mask.shape
    if _HAVE_PYCOCOTOOLS:
        from pycocotools import mask as coco_mask

        encoded = coco_mask.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
        return {'size': [int(height), int(width)], 'counts': encoded['counts'].decode('ascii')}
    return {'size': [int(height), int(width)], 'counts': counts_to_string(mask_to_counts(mask))}


def rle_decode(rle: RLE) -> np.ndarray:
    """COCO RLE dict -> bool mask [H, W]."""
    height, width, counts = _check_rle(rle)
    return counts_to_mask(string_to_counts(counts), height, width)


def rles_decode(rles: Sequence[RLE]) -> np.ndarray:
    """A list of M RLEs of one image -> bool masks [M, H, W] (all sizes must agree)."""
    if not rles:
        raise MaskFormatError('no RLEs given; an image with no regions has no masks to decode')
    sizes = {tuple(int(v) for v in _check_rle(r)[:2]) for r in rles}
    if len(sizes) != 1:
        raise MaskFormatError(f'RLEs of one image have different sizes: {sorted(sizes)}')
    return np.stack([rle_decode(r) for r in rles])


def rle_area(rle: RLE) -> int:
    """Number of foreground pixels, without decoding to an array."""
    _, _, counts = _check_rle(rle)
    return int(sum(string_to_counts(counts)[1::2]))
