"""The annotated image for RViz: region outlines, their ids and the last answer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

_PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
    ],
    dtype=np.uint8,
)


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a bool mask [H, W] (inside, with an outside 4-neighbour)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def annotate(
    rgb: np.ndarray, masks: np.ndarray, region_ids: Sequence[int], caption: str = ''
) -> np.ndarray:
    """uint8 [H, W, 3] copy with each region outlined and labelled, caption at the bottom."""
    out = rgb.copy()
    centres = []
    for k, mask in enumerate(masks):
        mask = mask.astype(bool, copy=False)  # uint8 masks as received
        colour = _PALETTE[k % len(_PALETTE)]
        border = outline(mask)
        out[border] = colour
        ys, xs = np.nonzero(mask)
        centres.append((int(xs.mean()), int(ys.mean())) if xs.size else None)
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    for k, (rid, centre) in enumerate(zip(region_ids, centres)):
        if centre is not None:
            colour = tuple(int(c) for c in _PALETTE[k % len(_PALETTE)])
            draw.text(centre, str(rid), fill=colour)
    if caption:
        h = out.shape[0]
        draw.rectangle((0, h - 14, out.shape[1], h), fill=(0, 0, 0))
        draw.text((3, h - 13), caption[:200], fill=(255, 255, 255))
    return np.asarray(image)
