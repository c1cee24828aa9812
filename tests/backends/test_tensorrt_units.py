"""The TensorRT backend without TensorRT: profile shapes, cache keys and rebuild-on-mismatch,
the guarded import, and the backend's host logic driven by a stand-in engine that runs the
same ONNX graphs through ONNX Runtime."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from backend_fixtures import frame_inputs, question_set
import numpy as np
import pytest
import torch

from smolrgpt_cli.main import main
from smolrgpt_core.export.manifest import ManifestError, read_manifest
from smolrgpt_core.export.tensorrt_build import (
    DECODE,
    PREFILL,
    BuildSettings,
    check_shapes,
    decoder_profile_index,
    decoder_profiles,
    engine_key,
    ensure_engine,
    key_digest,
    plan_paths,
    uses_strong_typing,
    version_tuple,
    vision_profiles,
)
from smolrgpt_core.inference.backends import BackendError, load_backend
from smolrgpt_core.inference.backends.tensorrt_backend import TensorRTBackend
from smolrgpt_core.testing import tiny_config

NO_TENSORRT = importlib.util.find_spec('tensorrt') is None
SETTINGS = BuildSettings(
    max_batch=4,
    max_prompt=64,
    max_context=128,
    max_regions=8,
    opt_prompt=32,
    opt_context=48,
    opt_regions=3,
    workspace_mib=512,
)


def test_profiles_cover_prefill_and_decode() -> None:
    cfg = tiny_config()  # L=2, Hkv=2, Dh=8, D=32, mask grid 16
    (vision,) = vision_profiles(cfg, SETTINGS)
    assert vision['masks'] == ((1, 16, 16), (3, 16, 16), (8, 16, 16))
    prefill, decode = decoder_profiles(cfg, SETTINGS)
    assert prefill['inputs_embeds'] == ((1, 1, 32), (1, 32, 32), (4, 64, 32))
    assert prefill['past_key'] == ((2, 1, 2, 0, 8), (2, 1, 2, 0, 8), (2, 4, 2, 64, 8))
    assert prefill['attention_bias'][2] == (4, 1, 64, 128)
    assert decode['inputs_embeds'] == ((1, 1, 32), (1, 1, 32), (4, 1, 32))
    assert decode['past_value'][2] == (2, 4, 2, 127, 8)
    assert decode['attention_bias'] == ((1, 1, 1, 1), (1, 1, 1, 48), (4, 1, 1, 128))
    for profile in (prefill, decode):  # every min <= opt <= max, dimension by dimension
        for low, opt, high in profile.values():
            assert all(a <= b <= c for a, b, c in zip(low, opt, high))
    assert decoder_profile_index(1) == DECODE and decoder_profile_index(7) == PREFILL


def test_shapes_outside_a_profile_are_refused() -> None:
    prefill, decode = decoder_profiles(tiny_config(), SETTINGS)
    check_shapes(decode, {'past_key': (2, 3, 2, 100, 8)}, 'decoder')
    with pytest.raises(ValueError, match=r'dim 3 = 128 is outside .* \[0, 127\]'):
        check_shapes(decode, {'past_key': (2, 3, 2, 128, 8)}, 'decoder')
    with pytest.raises(ValueError, match='dim 0 = 5'):
        check_shapes(prefill, {'inputs_embeds': (5, 10, 32)}, 'decoder')
    with pytest.raises(ValueError, match='rank 2'):
        check_shapes(prefill, {'inputs_embeds': (5, 10)}, 'decoder')
    with pytest.raises(ValueError, match='opt_prompt'):
        BuildSettings(max_prompt=16, opt_prompt=32)


def test_strong_typing_by_version() -> None:
    assert version_tuple('10.3.0.30') == (10, 3, 0)
    assert version_tuple('11.4.0.106') == (11, 4, 0)
    assert not uses_strong_typing('10.3.0')  # JetPack 6: weakly typed + FP16 flag
    assert uses_strong_typing('10.13.3') and uses_strong_typing('11.0.0.114')


def _key(
    trt: str = '10.13.3',
    gpu: str = 'NVIDIA H100',
    onnx: str = 'a' * 64,
    settings: BuildSettings = SETTINGS,
) -> dict:
    cfg = tiny_config()
    return engine_key(
        'decoder', onnx, 'float16', trt, gpu, (9, 0), settings, decoder_profiles(cfg, settings)
    )


def test_cache_key_changes_with_tensorrt_gpu_graph_and_settings() -> None:
    base = key_digest(_key())
    assert key_digest(_key()) == base  # deterministic
    assert json.loads(json.dumps(_key())) == _key()  # the sidecar round-trips
    others = {
        key_digest(_key(trt='11.4.0.106')),
        key_digest(_key(gpu='Orin')),
        key_digest(_key(onnx='b' * 64)),
        key_digest(_key(settings=BuildSettings(max_context=2048))),
    }
    assert base not in others and len(others) == 4


def test_engine_cache_reuses_and_rebuilds_on_mismatch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    builds = []

    def build() -> bytes:
        builds.append(1)
        return b'plan-%d' % len(builds)

    old_key = _key(trt='10.3.0')
    plan, built = ensure_engine(tmp_path, 'decoder', old_key, build)
    assert built and plan.read_bytes() == b'plan-1'
    assert ensure_engine(tmp_path, 'decoder', old_key, build) == (plan, False)
    assert len(builds) == 1
    # a TensorRT upgrade: the old engine is not loaded, it is rebuilt and replaced
    new_key = _key(trt='10.13.3')
    new_plan, built = ensure_engine(tmp_path, 'decoder', new_key, build)
    assert built and new_plan != plan and not plan.exists()
    assert 'TensorRT version 10.3.0 -> 10.13.3' in caplog.text
    sidecar = json.loads(plan_paths(tmp_path, 'decoder', new_key)[1].read_text())
    assert sidecar['key'] == new_key
    # a tampered sidecar does not pass for a match
    path = plan_paths(tmp_path, 'decoder', new_key)[1]
    path.write_text(json.dumps({'key': old_key}))
    assert ensure_engine(tmp_path, 'decoder', new_key, build)[1]
    with pytest.raises(RuntimeError, match='no decoder engine'):
        ensure_engine(tmp_path / 'empty', 'decoder', new_key, build, allow_build=False)


def test_manifest_checks(onnx_fp32: Path, tmp_path: Path) -> None:
    manifest = read_manifest(onnx_fp32)
    assert manifest['graphs']['decoder']['sha256']
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'manifest.json').write_text(json.dumps({**manifest, 'format_version': 99}))
    with pytest.raises(ManifestError, match='format_version 99'):
        read_manifest(broken)
    (broken / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r'vision\.onnx is missing'):
        read_manifest(broken)


@pytest.mark.skipif(not NO_TENSORRT, reason='TensorRT is installed here')
def test_selecting_tensorrt_without_it_fails_with_one_line(
    tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # without a GPU the device is refused first; with one, the missing TensorRT
    reason = 'TensorRT is not installed|torch sees no CUDA GPU'
    with pytest.raises(BackendError, match=reason) as info:
        load_backend('tensorrt', tiny_checkpoint, device='cuda', dtype='float16')
    assert '\n' not in str(info.value)
    assert main(['export', 'tensorrt', '--onnx', str(tiny_checkpoint)]) == 2
    assert 'TensorRT is not installed' in capsys.readouterr().err
    assert main(['info']) == 0
    assert 'tensorrt: not installed' in capsys.readouterr().out


class OrtStandIn:
    """An ``EngineRunner`` that runs the ONNX graph with ONNX Runtime on CPU tensors."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        self.profiles_used: list[int] = []

    def run(
        self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor], profile: int
    ) -> None:
        self.profiles_used.append(profile)
        results = self.session.run(list(outputs), {k: v.numpy() for k, v in inputs.items()})
        for (name, buffer), value in zip(outputs.items(), results):
            assert tuple(buffer.shape) == value.shape, name  # the backend sized it right
            buffer.copy_(torch.from_numpy(np.asarray(value)))


def test_tensorrt_backend_host_logic_with_stand_in_engines(
    onnx_fp32: Path, tiny_checkpoint: Path
) -> None:
    pytest.importorskip('onnxruntime')
    engines = {
        'vision': OrtStandIn(onnx_fp32 / 'vision.onnx'),
        'decoder': OrtStandIn(onnx_fp32 / 'decoder.onnx'),
    }
    backend = TensorRTBackend(onnx_fp32, settings=SETTINGS, engines=engines, device='cpu')
    reference = load_backend('torch', tiny_checkpoint)
    image, depth, masks = frame_inputs(reference.cfg)
    prompts = question_set(reference.cfg, n=4)
    want = reference.answer(
        reference.encode_frame(image, depth, masks), prompts, eos_token_id=2, max_new_tokens=10
    )
    got = backend.answer(
        backend.encode_frame(image, depth, masks), prompts, eos_token_id=2, max_new_tokens=10
    )
    assert got == want
    used = engines['decoder'].profiles_used
    assert used[0] == PREFILL and used[-1] == DECODE
    with pytest.raises(ValueError, match='outside the engine profile'):
        backend.encode_frame(image, depth, torch.ones(9, 24, 40))  # max_regions = 8
