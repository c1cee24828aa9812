"""Fixtures and helpers for the backend tests: exported tiny graphs shared by the session
(each export takes ~10 s), and a frame and question set to compare backends on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.inference.types import Prompt


def export_dir(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, dtype: str) -> Path:
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    from smolrgpt_cli.main import main

    out = tmp_path_factory.mktemp(f'onnx_{dtype}')
    assert (
        main(
            [
                'export',
                'onnx',
                '--checkpoint',
                str(checkpoint),
                '--out',
                str(out),
                '--dtype',
                dtype,
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope='session')
def onnx_fp32(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    return export_dir(tmp_path_factory, tiny_checkpoint, 'fp32')


@pytest.fixture(scope='session')
def onnx_fp16(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    return export_dir(tmp_path_factory, tiny_checkpoint, 'fp16')


def frame_inputs(
    cfg: SmolRGPTConfig, n_masks: int = 3, seed: int = 0, hw: tuple[int, int] = (24, 40)
) -> tuple[torch.Tensor, ...]:
    """image, depth [3, S, S] and masks [M, Hi, Wi] (non-empty boxes)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, cfg.vit_img_size, cfg.vit_img_size, generator=g) * 2 - 1
    depth = torch.rand(3, cfg.vit_img_size, cfg.vit_img_size, generator=g) * 2 - 1
    masks = torch.zeros(n_masks, *hw)
    for m in range(n_masks):
        y0, x0 = (int(v) for v in torch.randint(0, hw[0] // 2, (2,), generator=g))
        masks[m, y0 : y0 + hw[0] // 2, x0 : x0 + hw[1] // 2] = 1.0
    return image, depth, masks


def question_set(cfg: SmolRGPTConfig, n: int = 6, seed: int = 0) -> list[Prompt]:
    """n prompts of the real layout (header, image tokens, text with one region pair, the
    generation prompt), of different lengths and regions."""
    g = torch.Generator().manual_seed(seed)
    prompts = []
    for i in range(n):
        words = torch.randint(3, 300, (5 + 3 * i,), generator=g).tolist()
        ids = [
            1,
            30,
            *[cfg.image_token_id] * cfg.mp_image_token_length,
            *words[:3],
            cfg.mask_rgb_token_id,
            cfg.mask_depth_token_id,
            *words[3:],
            2,
            1,
            40,
        ]
        prompts.append(Prompt(tuple(ids), (i % 3,)))
    return prompts
