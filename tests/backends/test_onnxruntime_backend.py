"""ONNX export + ONNX Runtime backend on the tiny checkpoint: manifest, vision parity, greedy
token parity with torch (fp32 and fp16 graphs), engine integration and load errors."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from backend_fixtures import frame_inputs, question_set
import numpy as np
import pytest
import torch

from smolrgpt_core.inference.backends import BackendError, load_backend
from smolrgpt_core.inference.engine import EngineError, Frame, Query, SpatialQueryEngine
from smolrgpt_core.settings import InferenceSettings

pytest.importorskip('onnxruntime')

MAX_NEW = 12
EOS = 2


@pytest.fixture(scope='module')
def torch_backend(tiny_checkpoint: Path):
    return load_backend('torch', tiny_checkpoint)


def test_manifest_describes_graphs(onnx_fp32: Path, tiny_checkpoint: Path) -> None:
    import hashlib

    manifest = json.loads((onnx_fp32 / 'manifest.json').read_text())
    assert manifest['dtype'] == 'float32' and manifest['opset'] == 20
    weights = (tiny_checkpoint / 'model.safetensors').read_bytes()
    assert manifest['checkpoint']['sha256'] == hashlib.sha256(weights).hexdigest()
    assert {'torch', 'onnx', 'onnxscript', 'onnxruntime'} <= set(manifest['versions'])
    vision = {t['name']: t for t in manifest['graphs']['vision']['inputs']}
    assert vision['image']['shape'] == [1, 3, 32, 32]
    assert vision['masks']['shape'] == ['regions', 16, 16]
    decoder = {t['name']: t for t in manifest['graphs']['decoder']['inputs']}
    assert decoder['past_key']['shape'] == [2, 'batch', 2, 'past', 8]
    assert decoder['attention_bias']['shape'] == ['batch', 1, 'seq', 'total']
    assert decoder['position_ids']['dtype'] == 'int64'
    outputs = {t['name']: t for t in manifest['graphs']['decoder']['outputs']}
    assert outputs['logits']['shape'] == ['batch', 323]
    assert outputs['logits']['dtype'] == 'float32'
    for diffs in manifest['verification'].values():
        if isinstance(diffs, dict):
            assert max(diffs.values()) < 1e-4


def test_vision_outputs_match_torch(onnx_fp32: Path, tiny_checkpoint: Path, torch_backend) -> None:
    ort_backend = load_backend('onnxruntime', tiny_checkpoint, engine_dir=onnx_fp32)
    for n_masks in (3, 1, 0):
        image, depth, masks = frame_inputs(torch_backend.cfg, n_masks)
        want = torch_backend.encode_frame(image, depth, masks)
        got = ort_backend.encode_frame(image, depth, masks)
        for name in ('image_embeds', 'rgb_regions', 'depth_regions'):
            a, b = getattr(want, name), getattr(got, name)
            assert a.shape == b.shape, name
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_mask_vanishing_on_the_grid_pools_to_zero(
    onnx_fp32: Path, tiny_checkpoint: Path, torch_backend
) -> None:
    # one pixel between the bilinear sample points of a 160 -> 16 resize: weight sum 0. The
    # exporter's optimizer once dropped the pooling's `+ 1e-8` and made this NaN.
    ort_backend = load_backend('onnxruntime', tiny_checkpoint, engine_dir=onnx_fp32)
    image, depth, _ = frame_inputs(torch_backend.cfg)
    masks = torch.zeros(2, 160, 160)
    masks[0, 0, 0] = 1
    masks[1, 40:90, 30:120] = 1
    want = torch_backend.encode_frame(image, depth, masks)
    got = ort_backend.encode_frame(image, depth, masks)
    assert not got.rgb_regions.isnan().any() and not got.depth_regions[0].any()
    torch.testing.assert_close(got.rgb_regions, want.rgb_regions, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('fixture', ['onnx_fp32', 'onnx_fp16'])
def test_greedy_tokens_equal_torch(
    fixture: str, request: pytest.FixtureRequest, tiny_checkpoint: Path, torch_backend
) -> None:
    directory = request.getfixturevalue(fixture)
    dtype = 'float32' if fixture == 'onnx_fp32' else 'float16'
    ort_backend = load_backend('onnxruntime', tiny_checkpoint, dtype=dtype, engine_dir=directory)
    image, depth, masks = frame_inputs(torch_backend.cfg)
    prompts = question_set(torch_backend.cfg)
    want = torch_backend.answer(
        torch_backend.encode_frame(image, depth, masks),
        prompts,
        eos_token_id=EOS,
        max_new_tokens=MAX_NEW,
    )
    frame = ort_backend.encode_frame(image, depth, masks)
    batched = ort_backend.answer(frame, prompts, eos_token_id=EOS, max_new_tokens=MAX_NEW)
    one_by_one = [
        ort_backend.answer(frame, [p], eos_token_id=EOS, max_new_tokens=MAX_NEW)[0]
        for p in prompts
    ]
    assert sum(len(t) for t in want) > 3 * len(prompts)  # answers of real length compared
    assert batched == want
    assert one_by_one == want


def test_eos_stops_like_torch(onnx_fp32: Path, tiny_checkpoint: Path, torch_backend) -> None:
    # use the first greedy token of question 0 as "EOS": both must stop at once there
    ort_backend = load_backend('onnxruntime', tiny_checkpoint, engine_dir=onnx_fp32)
    image, depth, masks = frame_inputs(torch_backend.cfg)
    prompts = question_set(torch_backend.cfg)
    frame = torch_backend.encode_frame(image, depth, masks)
    eos = torch_backend.answer(frame, prompts[:1], eos_token_id=EOS, max_new_tokens=1)[0][0]
    want = torch_backend.answer(frame, prompts, eos_token_id=eos, max_new_tokens=MAX_NEW)
    got = ort_backend.answer(
        ort_backend.encode_frame(image, depth, masks),
        prompts,
        eos_token_id=eos,
        max_new_tokens=MAX_NEW,
    )
    assert got == want and got[0] == []


def test_engine_runs_on_onnxruntime(onnx_fp32: Path, tiny_checkpoint: Path) -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((2, 40, 56), dtype=bool)
    masks[0, 5:20, 5:25] = True
    masks[1, 18:38, 30:50] = True
    frame = Frame(
        rgb=rng.integers(0, 256, (40, 56, 3), dtype=np.uint8),
        depth=rng.integers(0, 256, (40, 56), dtype=np.uint8),
        masks=masks,
        region_ids=[4, 9],
    )
    queries = [
        Query('How far is the pallet <mask> from the pallet <mask>?', [4, 9]),
        Query('Is the pallet <region9> to the left of the pallet <region4>?'),
    ]
    answers = {}
    for backend in ('torch', 'onnxruntime'):
        settings = InferenceSettings.from_flat(
            {
                'model.backend': backend,
                'model.engine_dir': str(onnx_fp32) if backend == 'onnxruntime' else '',
                'generation.max_new_tokens': 10,
            }
        )
        engine = SpatialQueryEngine.from_checkpoint(tiny_checkpoint, settings)
        answers[backend] = [a.text for a in engine.ask_many(frame, queries)]
    assert answers['onnxruntime'] == answers['torch']


def test_load_errors_are_one_line(onnx_fp32: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r'holds no manifest\.json') as info:
        SpatialQueryEngine.from_checkpoint(
            tiny_checkpoint,
            InferenceSettings.from_flat(
                {'model.backend': 'onnxruntime', 'model.engine_dir': str(tmp_path)}
            ),
        )
    assert '\n' not in str(info.value)
    with pytest.raises(BackendError, match='are float32, not float16'):
        load_backend('onnxruntime', tiny_checkpoint, dtype='float16', engine_dir=onnx_fp32)
    # graphs from another checkpoint (same config, other weights) are refused
    other = tmp_path / 'other'
    shutil.copytree(tiny_checkpoint, other)
    weights = other / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:-1] + b' ')
    with pytest.raises(BackendError, match='not the file the graphs were exported from'):
        load_backend('onnxruntime', other, engine_dir=onnx_fp32)
