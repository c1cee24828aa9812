"""Region masks in COCO run-length encoding (RLE), the format of every SmolRGPT dataset.

A mask is stored as ``{'size': [H, W], 'counts': str}``: run lengths over the pixels in
column-major (Fortran) order, alternating background/foreground and starting with background,
compressed into printable characters (pycocotools' ``rleToString`` scheme: each count, minus
the count two places earlier from the fourth on, is written in 5-bit groups with a
continuation bit, offset by 48).

Uncompressed RLEs (``counts`` as a list of run lengths) decode too.

Encoding uses pycocotools when importable (it is fast C); otherwise the pure numpy codec below
gives byte-identical strings. Both are exercised by the tests. Decoding is always the checked
numpy path: an RLE comes from a file, so its size is bounded (``max_pixels``) and its run
lengths must be non-negative and cover exactly H x W pixels before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
import importlib.util
import numbers
from typing import Any

import numpy as np

from smolrgpt_core.limits import MAX_RLE_PIXELS

_HAVE_PYCOCOTOOLS = importlib.util.find_spec('pycocotools') is not None
# characters one run length may take: 13 x 5 bits > 64 bits, more than any real count needs
_MAX_COUNT_CHARS = 13

RLE = dict[str, Any]
Counts = str | bytes | list[int]


class MaskFormatError(ValueError):
    """An RLE or mask array that cannot be what it claims to be."""


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_rle(rle: RLE, max_pixels: int = MAX_RLE_PIXELS) -> tuple[int, int, Counts]:
    """(H, W, counts) of a well-formed RLE whose size is within ``max_pixels``."""
    if not isinstance(rle, dict) or 'size' not in rle or 'counts' not in rle:
        raise MaskFormatError(f"an RLE must be a dict with 'size' and 'counts', got {rle!r:.80}")
    size = rle['size']
    if not (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(_is_int(v) and v > 0 for v in size)
    ):
        raise MaskFormatError(f'RLE size must be [H, W], two positive integers, got {size!r:.80}')
    height, width = int(size[0]), int(size[1])
    if height * width > max_pixels:
        raise MaskFormatError(
            f'RLE size {height}x{width} is {height * width} pixels, more than the '
            f'{max_pixels} allowed'
        )
    counts = rle['counts']
    if isinstance(counts, list):
        if not all(_is_int(c) and c >= 0 for c in counts):
            raise MaskFormatError(
                'uncompressed RLE counts must be non-negative integers, got '
                f'{next(c for c in counts if not (_is_int(c) and c >= 0))!r:.40}'
            )
        return height, width, [int(c) for c in counts]
    if not isinstance(counts, (str, bytes)):
        raise MaskFormatError(
            'RLE counts must be a string or a list of non-negative integers, got '
            f'{type(counts).__name__}'
        )
    return height, width, counts


def _runs(counts: Counts, height: int, width: int) -> list[int]:
    """Run lengths of checked counts; they must cover exactly ``height * width`` pixels."""
    total = height * width
    runs = counts if isinstance(counts, list) else string_to_counts(counts, max_runs=total + 1)
    negative = next((c for c in runs if c < 0), None)
    if negative is not None:
        raise MaskFormatError(f'RLE run length {negative} is negative')
    if sum(runs) != total:
        raise MaskFormatError(
            f'RLE run lengths sum to {sum(runs)} but size {height}x{width} needs {total} pixels'
        )
    return runs


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


def string_to_counts(text: str | bytes, max_runs: int | None = None) -> list[int]:
    """Expand a COCO RLE string into run lengths (at most ``max_runs`` of them)."""
    try:
        data = text.encode('ascii') if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as exc:
        raise MaskFormatError(f'invalid character {text[exc.start]!r} in RLE string') from exc
    counts: list[int] = []
    pos = 0
    while pos < len(data):
        if max_runs is not None and len(counts) >= max_runs:
            raise MaskFormatError(
                f'RLE string holds more than the {max_runs} runs its size allows'
            )
        x = 0
        shift = 0
        more = True
        while more:
            if pos >= len(data):
                raise MaskFormatError('RLE string ends in the middle of a count')
            if shift >= 5 * _MAX_COUNT_CHARS:
                raise MaskFormatError(
                    f'RLE string has a count longer than {_MAX_COUNT_CHARS} characters'
                )
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
    """Run lengths (column-major, background first) -> bool mask [H, W]; checked first."""
    counts = _runs(list(counts), height, width)
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


def rle_decode(rle: RLE, max_pixels: int = MAX_RLE_PIXELS) -> np.ndarray:
    """COCO RLE dict (compressed or not) -> bool mask [H, W], at most ``max_pixels`` pixels."""
    height, width, counts = _check_rle(rle, max_pixels)
    return counts_to_mask(_runs(counts, height, width), height, width)


def rles_decode(rles: Sequence[RLE], max_pixels: int = MAX_RLE_PIXELS) -> np.ndarray:
    """A list of M RLEs of one image -> bool masks [M, H, W] (all sizes must agree)."""
    if not isinstance(rles, (list, tuple)):
        raise MaskFormatError(f'expected a list of RLEs, got {type(rles).__name__}')
    if not rles:
        raise MaskFormatError('no RLEs given; an image with no regions has no masks to decode')
    sizes = {_check_rle(r, max_pixels)[:2] for r in rles}
    if len(sizes) != 1:
        raise MaskFormatError(f'RLEs of one image have different sizes: {sorted(sizes)}')
    return np.stack([rle_decode(r, max_pixels) for r in rles])


def rle_area(rle: RLE, max_pixels: int = MAX_RLE_PIXELS) -> int:
    """Number of foreground pixels, without decoding to an array."""
    height, width, counts = _check_rle(rle, max_pixels)
    return int(sum(_runs(counts, height, width)[1::2]))
