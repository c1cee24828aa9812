"""int8 answers do not depend on the batch: a question asked alone gets the same answer as
inside any batch of other questions about the same frame."""

from __future__ import annotations

from pathlib import Path
import warnings

from backend_fixtures import frame_inputs, question_set
import pytest
import torch
from torch import nn

from smolrgpt_core.inference.backends import BackendError, load_backend
from smolrgpt_core.inference.backends.torch_fast import RowwiseInt8Linear

NEVER = -1  # an EOS id no step picks: every answer runs the whole budget
MAX_NEW = 12
# batch compositions, as indices into a set of six questions
COMPOSITIONS = ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [0, 2, 4], [3, 1], [1, 1, 5], [2, 0])


def _quantize(layer: nn.Linear, mapping: type | None) -> nn.Module:
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return quantize_dynamic(
            nn.Sequential(layer),
            {nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            mapping={nn.Linear: mapping} if mapping else None,
        )[0]


def test_rowwise_int8_rows_do_not_see_each_other() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(96, 80, bias=False)
    rows = torch.randn(6, 96) * torch.tensor([0.1, 1.0, 10.0, 0.5, 3.0, 0.01])[:, None]
    rowwise = _quantize(layer, RowwiseInt8Linear)
    alone = torch.cat([rowwise(rows[i : i + 1]) for i in range(6)])
    assert torch.equal(rowwise(rows), alone)  # bit for bit
    assert torch.equal(rowwise(rows[[4, 0]]), alone[[4, 0]])
    with torch.no_grad():
        assert float((rowwise(rows) - layer(rows)).norm() / layer(rows).norm()) < 0.03
    # the stock dynamic layer scales the whole call by its widest row: not batch-invariant
    stock = _quantize(layer, None)
    stock_alone = torch.cat([stock(rows[i : i + 1]) for i in range(6)])
    assert not torch.equal(stock(rows), stock_alone)
    assert torch.equal(rowwise(torch.zeros(2, 96)), torch.zeros(2, 80))
    with pytest.raises(ValueError, match='bias-free'):
        _quantize(nn.Linear(4, 4), RowwiseInt8Linear)


def _answers_by_question(backend, cfg) -> dict[int, list[list[int]]]:
    image, depth, masks = frame_inputs(cfg)
    frame = backend.encode_frame(image, depth, masks)
    questions = question_set(cfg, 6)
    seen: dict[int, list[list[int]]] = {}
    for i, question in enumerate(questions):
        (answer,) = backend.answer(frame, [question], eos_token_id=NEVER, max_new_tokens=MAX_NEW)
        seen[i] = [answer]
    for batch in COMPOSITIONS:
        answers = backend.answer(
            frame, [questions[i] for i in batch], eos_token_id=NEVER, max_new_tokens=MAX_NEW
        )
        for i, answer in zip(batch, answers):
            seen[i].append(answer)
    return seen


def test_torch_int8_answer_is_the_same_alone_and_in_any_batch(tiny_checkpoint: Path) -> None:
    int8 = load_backend('torch', tiny_checkpoint, dtype='int8')
    block = int8.decoder.blocks[0]
    assert isinstance(block.attn.packed, RowwiseInt8Linear)  # q/k/v in one int8 layer
    assert isinstance(block.mlp.packed, RowwiseInt8Linear) and block.attn.q_proj is None
    seen = _answers_by_question(int8, int8.cfg)
    for i, answers in seen.items():
        assert len(answers[0]) == MAX_NEW
        assert all(a == answers[0] for a in answers), f'question {i}: {answers}'
    assert len({tuple(a[0]) for a in seen.values()}) > 1  # real, different answers


@pytest.fixture(scope='module')
def onnx_int8(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    from backend_fixtures import export_dir

    return export_dir(tmp_path_factory, tiny_checkpoint, 'int8')


def test_int8_export_quantises_every_decoder_matmul(onnx_int8: Path, tiny_checkpoint) -> None:
    import onnx

    from smolrgpt_core.export.manifest import read_manifest
    from smolrgpt_core.export.tensorrt_build import require_float_graphs

    manifest = read_manifest(onnx_int8)
    assert manifest['dtype'] == 'int8'
    assert manifest['quantization']['bits'] == 8
    cfg = load_backend('torch', tiny_checkpoint).cfg
    decoder = onnx.load(str(onnx_int8 / 'decoder.onnx'), load_external_data=False)
    ops = [node.op_type for node in decoder.graph.node]
    # 7 projections per block and the head; the attention matmuls (activations) stay fp32
    assert (
        ops.count('MatMulNBits') == 7 * cfg.lm_n_blocks + 1 == manifest['quantization']['matmuls']
    )
    assert 'Gemm' not in ops
    inputs = {t['name']: t['dtype'] for t in manifest['graphs']['decoder']['inputs']}
    assert inputs['inputs_embeds'] == inputs['past_key'] == 'float32'
    with pytest.raises(ValueError, match='TensorRT does not parse'):
        require_float_graphs(manifest, onnx_int8)


def test_onnxruntime_int8_answer_is_the_same_alone_and_in_any_batch(
    onnx_int8: Path, tiny_checkpoint: Path
) -> None:
    int8 = load_backend('onnxruntime', tiny_checkpoint, dtype='int8', engine_dir=onnx_int8)
    seen = _answers_by_question(int8, int8.cfg)
    for i, answers in seen.items():
        assert len(answers[0]) == MAX_NEW
        assert all(a == answers[0] for a in answers), f'question {i}: {answers}'
    assert len({tuple(a[0]) for a in seen.values()}) > 1
    # and it is a quantisation of the fp32 model: most greedy tokens agree with torch fp32
    reference = _answers_by_question(load_backend('torch', tiny_checkpoint), int8.cfg)
    same = sum(a == b for i in seen for a, b in zip(seen[i][0], reference[i][0]))
    assert same >= 0.5 * MAX_NEW * len(seen)
    with pytest.raises(BackendError, match='cpu only'):
        load_backend('onnxruntime', tiny_checkpoint, dtype='int8', device='cuda')


def test_fused_int8_layers_give_the_separate_layers_outputs_exactly() -> None:
    """One per-row activation scale for the shared input and per-channel weight scales: q/k/v
    (or gate/up) in one int8 layer compute the same numbers as three (two) int8 layers."""
    import warnings

    from torch import nn
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(0)
    parts = [nn.Linear(48, n, bias=False) for n in (48, 16, 16)]
    joined = nn.Linear(48, 80, bias=False)
    joined.weight = nn.Parameter(torch.cat([p.weight.detach() for p in parts]))
    model = nn.ModuleList([*parts, joined])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        quantize_dynamic(
            model,
            {nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            mapping={nn.Linear: RowwiseInt8Linear},
            inplace=True,
        )
    x = torch.randn(5, 3, 48)
    separate = torch.cat([model[i](x) for i in range(3)], dim=-1)
    assert torch.equal(model[3](x), separate)
