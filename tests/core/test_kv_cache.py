"""One decoder block, three caches: the eager cache (torch backend), the static cache (the
torch-fast CUDA-graph step, eager on CPU here) and the exported graph's past/present form
(``DecoderGraph``, run in torch) must reproduce plain full-sequence recomputation, and agree
with each other logit by logit at every decode step."""

from __future__ import annotations

from core_fixtures import random_frame
import pytest
import torch
import torch.nn.functional as F

from smolrgpt_core.export.graphs import DECODER_INPUTS, DECODER_OUTPUTS, DecoderGraph
from smolrgpt_core.generation import EagerSteps, decode
from smolrgpt_core.inference.backends.graph_runtime import GraphSteps, PingPongKV
from smolrgpt_core.inference.backends.torch_fast import FastTorchBackend, StaticSteps
from smolrgpt_core.inference.types import Prompt
from smolrgpt_core.modeling.decoder import (
    Decoder,
    DecoderBlock,
    attention_bias,
    explicit_attention,
)
from smolrgpt_core.modeling.kv_cache import EagerCache, ExportCache, StaticCache
from smolrgpt_core.modeling.smolrgpt import SmolRGPT

NEVER = -1  # an EOS id no step can pick: every path runs the whole budget


def full_hidden(decoder: Decoder, x: torch.Tensor) -> torch.Tensor:
    """Oracle: [B, T, D] -> hidden states of an uncached, plain causal forward."""
    positions = torch.arange(x.shape[1]).expand(x.shape[0], -1)  # [B, T]
    return decoder(x, positions, None)


def cached_hidden(decoder: Decoder, x: torch.Tensor, prefill: int, kind: str) -> torch.Tensor:
    """The same hidden states from a ``prefill``-token chunk, then one token per call."""
    B, T, _ = x.shape
    valid = torch.ones(B, T, dtype=torch.bool)
    positions = torch.arange(T).expand(B, T)  # [B, T]
    shape = decoder.cache_shape(B, T)
    chunk = attention_bias(valid[:, :prefill], 0, prefill, x.dtype)  # [B, 1, P, P]
    if kind == 'export':
        no_past = torch.zeros(decoder.cache_shape(B, 0))  # [L, B, Hkv, 0, Dh]
        cache = ExportCache(no_past, no_past)
    elif kind == 'static':
        cache = StaticCache.zeros(shape, x.dtype, x.device)
    else:
        cache = EagerCache.empty(shape, x.dtype, x.device)
    # the static path prefills eagerly into its own buffers, as StaticSteps does
    first = EagerCache(cache.k, cache.v) if kind == 'static' else cache
    out = [decoder(x[:, :prefill], positions[:, :prefill], chunk, first)]
    for t in range(prefill, T):
        if kind == 'export':
            cache = ExportCache(*cache.present())  # present becomes the next past
            bias = attention_bias(valid[:, : t + 1], t, 1, x.dtype)  # [B, 1, 1, t + 1]
        elif kind == 'static':
            cache.slot.fill_(t)
            bias = torch.full((B, 1, 1, T), float('-inf'))
            bias[..., : t + 1] = 0  # every slot up to this one is filled
        else:
            cache, bias = cache.at(t), None
        out.append(decoder(x[:, t : t + 1], positions[:, t : t + 1], bias, cache))
    return torch.cat(out, dim=1)  # [B, T, D]


@pytest.mark.parametrize('kind', ['eager', 'static', 'export'])
def test_every_cache_reproduces_the_full_forward(tiny_model: SmolRGPT, kind: str) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 9, tiny_model.cfg.lm_hidden_dim)
    with torch.no_grad():
        want = full_hidden(tiny_model.decoder, x)
        got = cached_hidden(tiny_model.decoder, x, prefill=4, kind=kind)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_explicit_attention_equals_sdpa() -> None:
    torch.manual_seed(2)
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 8)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1, :2] = False  # a left-padded row
    bias = attention_bias(valid, 4, 3, torch.float32)  # [2, 1, 3, 7]
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=True)
    torch.testing.assert_close(explicit_attention(q, k, v, bias), want, atol=1e-6, rtol=1e-5)


def test_export_cache_is_filled_layer_by_layer() -> None:
    cache = ExportCache(torch.zeros(2, 1, 2, 0, 8), torch.zeros(2, 1, 2, 0, 8))
    with pytest.raises(ValueError, match='got layer 1 after 0 layers'):
        cache.update(torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8), 1)


class TorchGraphRunner(PingPongKV):
    """``KVRunner`` that runs ``DecoderGraph`` in torch: the exported form without exporter."""

    def __init__(self, model: SmolRGPT) -> None:
        weight = model.decoder.token_embedding.weight
        super().__init__(model.cfg, weight.dtype, weight.device)
        self.graph = DecoderGraph(model.decoder)

    def _execute(self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> None:
        results = self.graph(*(inputs[name] for name in DECODER_INPUTS))
        for name, value in zip(DECODER_OUTPUTS, results):
            outputs[name].copy_(value)


class Recorder:
    """``DecodeSteps`` that passes every call on and keeps the logits of each step."""

    def __init__(self, steps: EagerSteps | StaticSteps | GraphSteps) -> None:
        self.steps = steps
        self.dtype, self.device, self.width = steps.dtype, steps.device, steps.width
        self.logits: list[torch.Tensor] = []

    def begin(self, rows: int, total: int) -> None:
        self.steps.begin(rows, total)

    def prefix(self, x: torch.Tensor, positions: torch.Tensor, bias: torch.Tensor) -> None:
        self.steps.prefix(x, positions, bias)

    def suffix(self, *args: object) -> torch.Tensor:
        self.logits.append(self.steps.suffix(*args).float().clone())
        return self.logits[-1]

    def token(self, *args: object) -> torch.Tensor:
        self.logits.append(self.steps.token(*args).float().clone())
        return self.logits[-1]


def test_three_paths_share_the_block_and_agree_step_by_step(
    tiny_model: SmolRGPT, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 2, seed=4)
    frame = tiny_model.encode_frame(image, depth, masks)
    cfg = tiny_model.cfg
    head = [1, 17, *[cfg.image_token_id] * cfg.mp_image_token_length]
    region = [cfg.mask_rgb_token_id, cfg.mask_depth_token_id]
    prompts = [  # a shared prefix, then suffixes of different lengths (left padding)
        Prompt((*head, 50, *region, 2, 1), (1,)),
        Prompt((*head, 51, 52, 53, *region, 60, *region, 2, 1), (0, 1)),
    ]
    embeds = tiny_model.prompt_embeddings(frame, prompts)

    seen: list[str] = []
    block_forward = DecoderBlock.forward

    def spy(self: DecoderBlock, x: torch.Tensor, cos, sin, bias, cache=None) -> torch.Tensor:
        seen.append(type(cache).__name__)
        return block_forward(self, x, cos, sin, bias, cache)

    monkeypatch.setattr(DecoderBlock, 'forward', spy)
    table = tiny_model.decoder.token_embedding.weight
    paths = {
        'eager': EagerSteps(tiny_model.decoder),
        'static': StaticSteps(FastTorchBackend(tiny_model, max_len=64, graph=False)),
        'export': GraphSteps(TorchGraphRunner(tiny_model), table),
    }
    logits, tokens, calls = {}, {}, {}
    for name, steps in paths.items():
        recorder = Recorder(steps)
        seen.clear()
        tokens[name] = decode(recorder, embeds, eos_token_id=NEVER, max_new_tokens=6)
        logits[name] = recorder.logits
        calls[name] = {kind: seen.count(kind) // cfg.lm_n_blocks for kind in set(seen)}
    # decoder calls: the shared prefix, the suffixes, then 5 single tokens, every one through
    # DecoderBlock.forward (the static path prefills on an eager view of its buffers)
    assert calls == {
        'eager': {'EagerCache': 7},
        'static': {'EagerCache': 2, 'StaticCache': 5},
        'export': {'ExportCache': 7},
    }

    assert tokens['static'] == tokens['eager'] == tokens['export']
    assert len({tuple(t) for t in tokens['eager']}) == 2  # two real, different answers
    for name in ('static', 'export'):
        assert len(logits[name]) == len(logits['eager']) == 6
        for step, (got, want) in enumerate(zip(logits[name], logits['eager'])):
            torch.testing.assert_close(
                got, want, atol=1e-4, rtol=1e-4, msg=lambda m, s=step, n=name: f'{n} {s}: {m}'
            )

    # and the eager path equals recomputing each row from scratch (KV-cache consistency)
    monkeypatch.setattr(DecoderBlock, 'forward', block_forward)
    for row, (emb, answer) in enumerate(zip(embeds, tokens['eager'])):
        with torch.no_grad():
            sequence = torch.cat((emb, table[answer[:-1]]))[None]  # [1, T + 5, D]
            hidden = full_hidden(tiny_model.decoder, sequence)[0, emb.shape[0] - 1 :]  # [6, D]
            want = tiny_model.decoder.head(hidden)  # [6, V]
        got = torch.stack([step[row] for step in logits['eager']])  # [6, V]
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
