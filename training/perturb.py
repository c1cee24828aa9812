"""Realistic sensor perturbations for evaluation: clean synthetic renders are an upper bound.

The ``realistic`` preset follows what RGB-D cameras and instance segmenters actually deliver
(../shared/reference/geometry.md §3):

* depth noise growing with range, sigma(z) = 0.001 z + 0.0015 z^2 (metres), per pixel;
* 5 % random holes, plus holes along depth edges (flying pixels removed, as drivers do);
* 16-bit millimetre quantisation (the noisy metres are written back as 16UC1);
* every mask eroded or dilated by 1-3 px (chosen per region);
* with probability 0.2 per frame, one region is missed by the detector (its mask is empty, so
  questions about it cannot be answered by any path).

Frames are perturbed deterministically from a seed and the frame's index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRESETS = ('none', 'realistic')


@dataclass(frozen=True)
class Perturbation:
    sigma_linear: float = 0.001  # sigma(z) = sigma_linear * z + sigma_quadratic * z^2
    sigma_quadratic: float = 0.0015
    hole_fraction: float = 0.05
    edge_jump_m: float = 0.25  # neighbour depth jump that marks a depth edge
    mask_px: tuple[int, int] = (1, 3)  # erode or dilate by this many pixels
    miss_probability: float = 0.2

    @classmethod
    def preset(cls, name: str) -> Perturbation | None:
        if name not in PRESETS:
            raise ValueError(f'perturbation preset must be one of {", ".join(PRESETS)}')
        return None if name == 'none' else cls()


def perturb_depth_mm(
    depth_mm: np.ndarray, p: Perturbation, rng: np.random.Generator
) -> np.ndarray:
    """uint16 millimetres (0 = no reading) -> a noisy, holed, re-quantised copy."""
    valid = depth_mm > 0
    z = depth_mm.astype(np.float64) / 1000.0
    sigma = p.sigma_linear * z + p.sigma_quadratic * z**2
    noisy = z + rng.standard_normal(z.shape) * sigma
    holes = rng.random(z.shape) < p.hole_fraction
    # depth edges: a large jump to a 4-neighbour (drivers drop these "flying pixels")
    edges = np.zeros_like(valid)
    jump_x = np.abs(np.diff(z, axis=1)) > p.edge_jump_m
    jump_y = np.abs(np.diff(z, axis=0)) > p.edge_jump_m
    edges[:, 1:] |= jump_x
    edges[:, :-1] |= jump_x
    edges[1:, :] |= jump_y
    edges[:-1, :] |= jump_y
    keep = valid & ~holes & ~edges & (noisy > 0)
    mm = np.rint(np.where(keep, noisy, 0.0) * 1000.0)
    return np.clip(mm, 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _morph(mask: np.ndarray, px: int, grow: bool) -> np.ndarray:
    import cv2

    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    op = cv2.dilate if grow else cv2.erode
    return op(mask.astype(np.uint8), kernel).astype(bool)


def perturb_masks(masks: np.ndarray, p: Perturbation, rng: np.random.Generator) -> np.ndarray:
    """bool [M, H, W] -> each mask eroded or dilated by 1-3 px; maybe one mask missed."""
    out = np.empty_like(masks, dtype=bool)
    for k, mask in enumerate(masks):
        px = int(rng.integers(p.mask_px[0], p.mask_px[1] + 1))
        grown = _morph(mask, px, grow=bool(rng.random() < 0.5))
        out[k] = grown if grown.any() else mask  # erosion never deletes a small region
    if len(out) and rng.random() < p.miss_probability:
        out[int(rng.integers(len(out)))] = False
    return out


def frame_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])
