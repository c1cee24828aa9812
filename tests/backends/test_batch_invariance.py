"""int8 answers do not depend on the batch: a question asked alone gets the same answer as
inside any batch of other questions about the same frame."""

from __future__ import annotations

from pathlib import Path
import warnings

from backend_fixtures import frame_inputs, question_set
import pytest
import torch
from torch import nn

from smolrgpt_core.inference.backends import load_backend
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
    assert isinstance(int8.decoder.blocks[0].attn.q_proj, RowwiseInt8Linear)
    seen = _answers_by_question(int8, int8.cfg)
    for i, answers in seen.items():
        assert len(answers[0]) == MAX_NEW
        assert all(a == answers[0] for a in answers), f'question {i}: {answers}'
    assert len({tuple(a[0]) for a in seen.values()}) > 1  # real, different answers
