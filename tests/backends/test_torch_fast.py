"""Faster torch paths: int8 decoder weights on CPU, and the static-cache decoder (eager and
compiled on CPU here; captured in a CUDA graph by the gpu-marked tests)."""

from __future__ import annotations

from pathlib import Path

from backend_fixtures import frame_inputs, question_set
import pytest
import torch

from smolrgpt_core.inference.backends import BackendError, load_backend
from smolrgpt_core.inference.backends.torch_fast import (
    FastTorchBackend,
    cpu_compiler_present,
    greedy_agreement,
)

MAX_NEW = 12


def _answers(backend, checkpoint_cfg, n=6):
    image, depth, masks = frame_inputs(checkpoint_cfg)
    frame = backend.encode_frame(image, depth, masks)
    return backend.answer(
        frame, question_set(checkpoint_cfg, n), eos_token_id=2, max_new_tokens=MAX_NEW
    )


def test_int8_decoder_on_cpu(tiny_checkpoint: Path) -> None:
    reference = load_backend('torch', tiny_checkpoint)
    int8 = load_backend('torch', tiny_checkpoint, dtype='int8')
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    linears = [m for m in int8.decoder.modules() if isinstance(m, torch.nn.Linear | Int8Linear)]
    # per block (2 blocks): q/k/v as one layer, out, gate/up as one layer, down; + the head
    assert len(linears) == 4 * 2 + 1
    assert all(isinstance(m, Int8Linear) for m in linears)
    assert type(int8.MP.proj) is torch.nn.Linear  # the vision side stays fp32
    image, depth, masks = frame_inputs(reference.cfg)
    stats = greedy_agreement(
        reference,
        int8,
        image,
        depth,
        masks,
        question_set(reference.cfg),
        eos_token_id=2,
        max_new_tokens=MAX_NEW,
    )
    # the tiny model's wide random weights give near-tied logits: a loose floor, the real
    # numbers (full size, embedded model) are in the benchmark report
    assert stats['teacher_forced'] >= 0.7
    with pytest.raises(BackendError, match='cpu only'):
        load_backend('torch', tiny_checkpoint, dtype='int8', device='cuda')


def test_static_cache_decoding_equals_eager_on_cpu(tiny_checkpoint: Path) -> None:
    model = load_backend('torch', tiny_checkpoint)
    fast = FastTorchBackend(model, max_len=128, graph=False)
    assert _answers(fast, model.cfg) == _answers(model, model.cfg)
    with pytest.raises(ValueError, match='max_len=16'):
        FastTorchBackend(model, max_len=16, graph=False).answer(
            model.encode_frame(*frame_inputs(model.cfg)),
            question_set(model.cfg, 1),
            eos_token_id=2,
            max_new_tokens=MAX_NEW,
        )


@pytest.mark.skipif(
    not cpu_compiler_present(),
    reason='torch.compile builds CPU kernels with a C++ compiler; none on this machine',
)
def test_compiled_static_step_equals_eager_on_cpu(tiny_checkpoint: Path) -> None:
    model = load_backend('torch', tiny_checkpoint)
    compiled = FastTorchBackend(model, max_len=128, graph=False, compiled=True)
    batched = _answers(compiled, model.cfg)  # compiles the step for 6 rows
    assert batched == _answers(model, model.cfg)
    assert compiled._states[6]._compiled is not None
    alone = _answers(compiled, model.cfg, n=1)  # a second graph, for 1 row
    assert alone == [batched[0]]


def test_the_compiled_step_needs_a_cpu_and_a_compiler(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = load_backend('torch-fast', tiny_checkpoint)
    assert backend.compiled is False  # the loader's CPU path is the eager static step
    assert _answers(backend, backend.cfg, n=2) == _answers(
        load_backend('torch', tiny_checkpoint), backend.cfg, n=2
    )
    monkeypatch.setenv('CXX', '/nonexistent/c++')
    assert not cpu_compiler_present()
    with pytest.raises(BackendError, match='needs a C\\+\\+ compiler'):
        FastTorchBackend(backend.model, compiled=True)
    with pytest.raises(BackendError, match='CPU path'):
        FastTorchBackend(backend.model.to('meta'), compiled=True)


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', ['float32', 'float16', 'bfloat16'])
def test_cuda_graph_decoding_equals_eager(tiny_checkpoint: Path, dtype: str) -> None:
    model = load_backend('torch', tiny_checkpoint, device='cuda', dtype=dtype)
    eager = _answers(model, model.cfg)
    static = _answers(FastTorchBackend(model, max_len=128, graph=False), model.cfg)
    graphed_backend = FastTorchBackend(model, max_len=128, graph=True)
    graphed = _answers(graphed_backend, model.cfg)
    again = _answers(graphed_backend, model.cfg)  # replaying the captured graph again
    assert static == eager
    assert graphed == eager and again == eager
    assert graphed_backend._states[6].graph is not None


@pytest.mark.gpu
def test_torch_fast_loader_on_gpu(tiny_checkpoint: Path) -> None:
    backend = load_backend('torch-fast', tiny_checkpoint, device='cuda', dtype='float16')
    reference = load_backend('torch', tiny_checkpoint, device='cuda', dtype='float16')
    assert _answers(backend, backend.cfg) == _answers(reference, reference.cfg)
