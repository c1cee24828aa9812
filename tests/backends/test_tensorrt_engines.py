"""TensorRT for real: build engines from the tiny exports and compare with torch. Runs only
where TensorRT and a CUDA GPU exist (the ``tensorrt`` marker skips it elsewhere)."""

from __future__ import annotations

from pathlib import Path

from backend_fixtures import frame_inputs, question_set
import pytest

from smolrgpt_core.export.tensorrt_build import BuildSettings, build_engines
from smolrgpt_core.inference.backends import load_backend

pytestmark = pytest.mark.tensorrt


@pytest.mark.parametrize('fixture,dtype', [('onnx_fp32', 'float32'), ('onnx_fp16', 'float16')])
def test_tensorrt_greedy_tokens_equal_torch(
    fixture: str, dtype: str, tiny_checkpoint: Path, request: pytest.FixtureRequest
) -> None:
    import torch

    onnx_dir = request.getfixturevalue(fixture)
    settings = BuildSettings(
        max_batch=8, max_prompt=128, max_context=256, max_regions=8, workspace_mib=1024
    )
    index = build_engines(onnx_dir, onnx_dir, settings)
    assert all(e['built_now'] for e in index['engines'].values())
    again = build_engines(onnx_dir, onnx_dir, settings)  # cached: same key, no rebuild
    assert not any(e['built_now'] for e in again['engines'].values())
    trt_backend = load_backend(
        'tensorrt', tiny_checkpoint, device='cuda', dtype=dtype, engine_dir=onnx_dir
    )
    reference = load_backend('torch', tiny_checkpoint)
    image, depth, masks = frame_inputs(reference.cfg)
    want_frame = reference.encode_frame(image, depth, masks)
    got_frame = trt_backend.encode_frame(image.cuda(), depth.cuda(), masks.cuda())
    tol = 1e-3 if dtype == 'float32' else 3e-2
    torch.testing.assert_close(
        got_frame.rgb_regions.float().cpu(), want_frame.rgb_regions, atol=tol, rtol=tol
    )
    prompts = question_set(reference.cfg)
    want = reference.answer(want_frame, prompts, eos_token_id=2, max_new_tokens=12)
    got = trt_backend.answer(got_frame, prompts, eos_token_id=2, max_new_tokens=12)
    assert got == want
