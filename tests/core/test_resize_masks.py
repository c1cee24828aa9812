"""Masks go to the model grid a few at a time: same numbers as one float call, bool in."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from smolrgpt_core.modeling import region


def test_chunked_resize_equals_one_call_and_takes_bool_and_uint8(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(5, 90, 160, generator=g) > 0.6
    whole = F.interpolate(
        masks[None].float(), size=(16, 16), mode='bilinear', align_corners=False
    )[0].flatten(1)
    monkeypatch.setattr(region, '_FLOAT_CHUNK_BYTES', 4 * 90 * 160 * 2)  # 2 masks per chunk
    assert torch.equal(region.resize_masks(masks, 16), whole)
    assert torch.equal(region.resize_masks(masks.to(torch.uint8), 16), whole)
    assert region.resize_masks(masks[:0], 16).shape == (0, 256)
