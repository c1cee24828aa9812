"""The realistic perturbation preset: noise grows with range, holes, quantisation, masks."""

from __future__ import annotations

import numpy as np
import pytest

from training.perturb import Perturbation, frame_rng, perturb_depth_mm, perturb_masks


def test_depth_noise_grows_with_range_and_holes_appear() -> None:
    p = Perturbation()
    near = np.full((200, 200), 1000, np.uint16)
    far = np.full((200, 200), 8000, np.uint16)
    noisy_near = perturb_depth_mm(near, p, frame_rng(0, 0)).astype(float)
    noisy_far = perturb_depth_mm(far, p, frame_rng(0, 1)).astype(float)
    holes = (noisy_near == 0).mean()
    assert 0.03 < holes < 0.07
    std_near = noisy_near[noisy_near > 0].std() / 1000
    std_far = noisy_far[noisy_far > 0].std() / 1000
    assert std_near == pytest.approx(0.001 + 0.0015, rel=0.15)
    assert std_far == pytest.approx(0.008 + 0.0015 * 64, rel=0.15)
    assert perturb_depth_mm(near, p, frame_rng(0, 0)).tolist() == noisy_near.tolist()


def test_depth_edges_lose_their_pixels() -> None:
    depth = np.full((20, 20), 2000, np.uint16)
    depth[:, 10:] = 6000
    out = perturb_depth_mm(depth, Perturbation(hole_fraction=0.0), frame_rng(1, 0))
    assert (out[:, 9:11] == 0).all() and (out[:, :8] > 0).all()


def test_masks_change_by_a_few_pixels_and_one_may_be_missed() -> None:
    masks = np.zeros((3, 40, 40), bool)
    masks[0, 10:20, 10:20] = masks[1, 22:30, 5:35] = masks[2, 1:3, 1:3] = True
    out = perturb_masks(masks, Perturbation(miss_probability=0.0), frame_rng(2, 0))
    for before, after in zip(masks, out):
        assert after.any() and abs(int(after.sum()) - int(before.sum())) <= 4 * 40 * 3
    missed = perturb_masks(masks, Perturbation(miss_probability=1.0), frame_rng(2, 0))
    assert sum(not m.any() for m in missed) == 1
