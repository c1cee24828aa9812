"""Faster PyTorch paths: int8 decoder weights on CPU, and a static-cache decoder for GPUs.

**CPU int8** (``load_backend('torch', ..., dtype='int8')``). A decode step on a CPU is
memory-bound: every token reads all decoder weights (1.45 GB in fp32 at full size). The
decoder's linear layers (attention and MLP projections, and the LM head, which is untied from
the embedding table for it) are stored as int8 with one scale per output channel, so a step
reads about a quarter of the bytes; activations are quantised per row on a fixed grid
(``RowwiseInt8Linear``), so an answer does not depend on the batch it is asked in. The vision
side, the embeddings and the norms stay fp32. ``torch.ao.quantization`` is deprecated in
favour of torchao; it still ships in torch 2.13 and is what runs here (fbgemm kernels).

**GPU fast path** (``FastTorchBackend``; backend name ``torch-fast``). fp16/bf16 weights, a KV
cache preallocated for the whole answer at a fixed ``max_len``, and a decode step whose
tensors never change shape or address: ``Decoder.forward`` on a ``StaticCache``, which writes
the new key/value with ``index_copy_`` at a slot held in a device tensor, while attention
always spans all ``max_len`` slots with the unfilled ones masked by ``-inf``. That step is
captured once per batch size in a CUDA graph and replayed per token (``graph=True``). Prefill
stays eager (variable length): the same decoder on an ``EagerCache`` over the static buffers.

**Compiled step** (``FastTorchBackend(..., compiled=True)``, CPU, opt-in). The same
fixed-shape step through ``torch.compile`` (inductor), once per batch size. It was tried
because an eager step spends about a sixth of its time dispatching ~1,000 small ops between
the weight reads; measured at full size on a 2-core AVX2 machine it is *slower* than the eager
``torch`` path (146 against 107 ms/token, docs/inference-backends.md), so no loader selects it.
It needs a C++ compiler; ``cpu_compiler_present`` says whether inductor will find one.
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
import os
from pathlib import Path
import shutil
import warnings

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

from smolrgpt_core.generation import EagerSteps, decode
from smolrgpt_core.inference.backends import DTYPES, BackendError
from smolrgpt_core.inference.types import EncodedFrame, Prompt
from smolrgpt_core.modeling.decoder import Decoder, linear
from smolrgpt_core.modeling.kv_cache import EagerCache, StaticCache
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.sampling import SamplingParams

logger = logging.getLogger(__name__)


# --- CPU int8 -----------------------------------------------------------------------------
# Activations are quantised per row on a fixed grid: each row is divided by its own absolute
# maximum, then mapped onto 7-bit levels with a fixed scale and zero point. fbgemm then
# multiplies uint8 rows by the int8 weights with exact int32 sums, so a row's output depends
# on that row alone: the same question gives bit-identical linear outputs alone or in any
# batch. (``quantize_dynamic``'s own forward picks one scale per call from the whole batch's
# range, which made answers depend on their batch-mates.) 7 bits, as fbgemm's dynamic path
# uses on x86, keep AVX2's pairwise u8*s8 sums clear of int16 saturation.
ACT_LEVELS = 63  # x / max|x| in [-1, 1] -> 64 + round(63 x) in [1, 127]
ACT_ZERO_POINT = 64


class RowwiseInt8Linear(DynamicInt8Linear):
    """int8 per-channel weights (fbgemm), activations quantised per row (see above).
    Bias-free layers only (the output is rescaled by each row's peak)."""

    @classmethod
    def from_float(cls, mod: nn.Module, use_precomputed_fake_quant: bool = False) -> nn.Module:
        if getattr(mod, 'bias', None) is not None:
            raise ValueError('RowwiseInt8Linear takes bias-free linear layers only')
        return super().from_float(mod, use_precomputed_fake_quant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])  # [..., Din] -> [R, Din]
        peak = torch.linalg.vector_norm(flat, float('inf'), dim=-1, keepdim=True)  # [R, 1]
        peak = peak.clamp_min(torch.finfo(torch.float32).tiny)  # an all-zero row stays 0
        out = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
            flat / peak, 1.0 / ACT_LEVELS, ACT_ZERO_POINT, self._packed_params._packed_params
        )  # [R, Dout]
        return (out * peak).view(*x.shape[:-1], -1)

    def _get_name(self) -> str:
        return 'RowwiseInt8Linear'


def quantize_decoder_int8(model: SmolRGPT) -> SmolRGPT:
    """Replace the decoder's ``nn.Linear`` layers by ``RowwiseInt8Linear`` ones (in place).

    q/k/v and gate/up become one int8 layer each (``FusableMixin.packed``): per-channel weight
    scales and one per-row activation scale for an input they share make the fused layer's
    outputs the separate layers' outputs exactly, in fewer, larger calls."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from smolrgpt_core.modeling.decoder import FusableMixin

    if next(model.parameters()).device.type != 'cpu':
        raise BackendError('int8 weights are a CPU path; use float16/bfloat16 on a GPU')
    model.float()
    model.decoder.unfuse_projections()
    for module in list(model.decoder.modules()):
        if isinstance(module, FusableMixin) and module.FUSED:
            layers = module._fusable()
            weight = torch.cat([la.weight.detach() for la in layers])  # [sum Dout, Din]
            # built on 'meta' (no throwaway weights), then given the concatenated ones
            joined = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device='meta')
            joined.weight = nn.Parameter(weight)
            module.packed = joined  # quantised below with the rest
            for name in module.FUSED:
                setattr(module, name, None)
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao on every call
        warnings.simplefilter('ignore')
        quantize_dynamic(
            model.decoder,
            {nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            mapping={nn.Linear: RowwiseInt8Linear},
            inplace=True,
        )
    return model


def load_torch_int8(checkpoint: Path, *, device: str) -> SmolRGPT:
    if device != 'cpu':
        raise BackendError(f'dtype int8 runs on the CPU only, not {device!r}')
    model = SmolRGPT.from_pretrained(checkpoint, dtype=torch.float32, device='cpu').eval()
    return quantize_decoder_int8(model)


# --- GPU fast path ------------------------------------------------------------------------
class StaticDecodeState:
    """Fixed buffers for ``rows`` rows and ``max_len`` slots, plus the (optional) CUDA graph."""

    def __init__(
        self, decoder: Decoder, rows: int, max_len: int, graph: bool, compiled: bool = False
    ) -> None:
        weight = decoder.token_embedding.weight
        dtype, device = weight.dtype, weight.device
        self.decoder = decoder
        self.rows, self.max_len = rows, max_len
        self.cache = StaticCache.zeros(decoder.cache_shape(rows, max_len), dtype, device)
        self.x = torch.zeros(rows, 1, weight.shape[1], dtype=dtype, device=device)  # [B, 1, D]
        self.positions = torch.zeros(rows, 1, dtype=torch.long, device=device)  # [B, 1]
        self.bias = torch.full(
            (rows, 1, 1, max_len), float('-inf'), dtype=dtype, device=device
        )  # [B, 1, 1, S_max]
        self.logits = torch.zeros(rows, weight.shape[0], dtype=torch.float32, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        # fixed shapes, so one compiled graph serves every step at this batch size
        self._compiled = (
            torch.compile(self._step, fullgraph=True, dynamic=False) if compiled else None
        )
        if graph:
            self._capture()

    def _step(self) -> None:
        hidden = self.decoder(self.x, self.positions, self.bias, self.cache, last_only=True)
        self.logits.copy_(linear(self.decoder.head, hidden).float())  # [B, D] -> [B, V]

    def _capture(self) -> None:
        # warm up on a side stream (allocator and kernels settle), then capture one step;
        # the warm-up writes slot 0, which every answer overwrites before reading
        self.bias[..., 0] = 0
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step()
        self.bias.fill_(float('-inf'))

    def run(self) -> torch.Tensor:
        if self.graph is not None:
            self.graph.replay()
        elif self._compiled is not None:
            self._compiled()
        else:
            self._step()
        return self.logits


class FastTorchBackend:
    """``Backend`` around a ``SmolRGPT``: the model's vision side, a static-cache decoder."""

    def __init__(
        self,
        model: SmolRGPT,
        *,
        max_len: int = 1024,
        graph: bool | None = None,
        compiled: bool = False,
    ) -> None:
        self.model = model.eval()
        self.cfg = model.cfg
        self.max_len = max_len
        device = model.decoder.token_embedding.weight.device
        self.graph = device.type == 'cuda' if graph is None else graph
        if self.graph and device.type != 'cuda':
            raise BackendError('CUDA graphs need the model on a CUDA device')
        if compiled and device.type != 'cpu':
            raise BackendError('the compiled decode step is the CPU path (a GPU uses CUDA graphs)')
        if compiled and not cpu_compiler_present():
            raise BackendError(
                'the compiled decode step needs a C++ compiler for inductor ($CXX, g++ or '
                'clang++); none was found'
            )
        self.compiled = compiled
        self._states: dict[int, StaticDecodeState] = {}

    def encode_frame(
        self, image: torch.Tensor, depth: torch.Tensor, masks: torch.Tensor | None = None
    ) -> EncodedFrame:
        return self.model.encode_frame(image, depth, masks)

    def _state(self, rows: int) -> StaticDecodeState:
        if rows not in self._states:
            self._states[rows] = StaticDecodeState(
                self.model.decoder, rows, self.max_len, self.graph, self.compiled
            )
        return self._states[rows]

    @torch.no_grad()
    def answer(
        self,
        frame: EncodedFrame,
        prompts: Sequence[Prompt],
        *,
        eos_token_id: int,
        max_new_tokens: int = 120,
        sampling: SamplingParams | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        return self.generate(
            self.model.prompt_embeddings(frame, prompts),
            eos_token_id=eos_token_id,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            generator=generator,
        )

    @torch.no_grad()
    def generate(
        self,
        embeds: Sequence[torch.Tensor],
        *,
        eos_token_id: int,
        max_new_tokens: int = 120,
        sampling: SamplingParams | None = None,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """``generation.decode`` semantics; the decode steps use the static state."""
        return decode(
            StaticSteps(self),
            embeds,
            eos_token_id=eos_token_id,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            generator=generator,
        )


class StaticSteps(EagerSteps):
    """``DecodeSteps`` whose prefill is the eager decoder on the static cache, and whose
    per-token step is the fixed-shape (graph-captured) ``StaticDecodeState``."""

    def __init__(self, backend: FastTorchBackend) -> None:
        super().__init__(backend.model.decoder)
        self.backend = backend
        self.state: StaticDecodeState | None = None

    def begin(self, rows: int, total: int) -> None:
        max_len = self.backend.max_len
        if total > max_len:
            raise ValueError(
                f'prompt + answer need {total} cache slots; this backend was '
                f'built with max_len={max_len}'
            )
        self.state = self.backend._state(rows)
        # the prefill (EagerSteps.prefix / suffix) writes the same buffers eagerly
        self.cache = EagerCache(self.state.cache.k, self.state.cache.v)

    def suffix(
        self, x: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor, start: int
    ) -> torch.Tensor:
        logits = super().suffix(x, positions, keys, start).float()
        # static bias: filled keys 0, padded keys the dtype's min (as attention_bias), the
        # rest -inf until their slot is written
        bias = self.state.bias
        bias.fill_(float('-inf'))
        bias[:, 0, 0, : keys.shape[1]].copy_(torch.where(keys, 0.0, torch.finfo(self.dtype).min))
        return logits

    def token(
        self, token: torch.Tensor, positions: torch.Tensor, keys: torch.Tensor, slot: int
    ) -> torch.Tensor:
        state = self.state
        state.x.copy_(self.decoder.token_embedding(token)[:, None])
        state.positions.copy_(positions)
        state.cache.slot.fill_(slot)
        state.bias[..., slot] = 0
        return state.run().clone()


def load_torch_fast(
    checkpoint: Path, *, device: str, dtype: str, engine_dir: Path | None
) -> FastTorchBackend:
    """Loader for ``load_backend('torch-fast', ...)``: CUDA graphs on a GPU, the static step
    run eagerly on a CPU (useful to test the path; the compiled step measured slower)."""
    if dtype not in DTYPES:
        raise BackendError(f'torch-fast dtype must be one of {", ".join(DTYPES)}, got {dtype!r}')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise BackendError('backend torch-fast: no CUDA GPU is visible to torch')
    model = SmolRGPT.from_pretrained(checkpoint, dtype=DTYPES[dtype], device=device).eval()
    model.decoder.fuse_projections()
    return FastTorchBackend(model)


def cpu_compiler_present() -> bool:
    """Whether inductor finds the C++ compiler it builds CPU kernels with ($CXX or g++/clang++)."""
    names = [os.environ['CXX']] if os.environ.get('CXX') else ['g++', 'clang++']
    return any(shutil.which(name) for name in names)


# --- accuracy of a faster path --------------------------------------------------------------
@torch.no_grad()
def greedy_agreement(
    reference: SmolRGPT,
    candidate: SmolRGPT,
    image: torch.Tensor,
    depth: torch.Tensor,
    masks: torch.Tensor,
    prompts: Sequence[Prompt],
    *,
    eos_token_id: int,
    max_new_tokens: int,
) -> dict[str, float]:
    """How often ``candidate`` (e.g. the int8 model) decodes like ``reference`` (fp32).

    * ``exact_answers``: share of questions whose greedy answers are identical;
    * ``free_running``: share of reference tokens matched position by position when each
      model decodes on its own (one early flip counts every later token as a miss);
    * ``teacher_forced``: share of positions where the candidate's argmax equals the
      reference token when both read the reference answer so far (per-token agreement).
    """
    frames = [m.encode_frame(image, depth, masks) for m in (reference, candidate)]
    want = reference.answer(
        frames[0], prompts, eos_token_id=eos_token_id, max_new_tokens=max_new_tokens
    )
    got = candidate.answer(
        frames[1], prompts, eos_token_id=eos_token_id, max_new_tokens=max_new_tokens
    )
    matched = forced = total = 0
    for prompt, ref_tokens, cand_tokens in zip(prompts, want, got):
        matched += sum(a == b for a, b in zip(ref_tokens, cand_tokens))
        total += len(ref_tokens)
        if not ref_tokens:
            continue
        ids = torch.tensor([list(prompt.ids) + ref_tokens])  # [1, T + A]
        picks = []
        for model, frame in zip((reference, candidate), frames):
            index = torch.tensor(prompt.regions, dtype=torch.long)
            emb = model.embed(
                ids,
                frame.image_embeds[None],
                [frame.rgb_regions[index]],
                [frame.depth_regions[index]],
            )  # [1, T + A, D]
            positions = torch.arange(ids.shape[1])[None]  # [1, T + A]
            hidden = model.decoder(emb, positions, None)[0, len(prompt.ids) - 1 : -1]  # [A, D]
            picks.append(model.decoder.head(hidden).argmax(-1))  # [A]
        forced += int((picks[0] == picks[1]).sum())
    exact = sum(a == b for a, b in zip(want, got)) / max(len(prompts), 1)
    return {
        'exact_answers': exact,
        'free_running': matched / max(total, 1),
        'teacher_forced': forced / max(total, 1),
        'tokens': float(total),
    }
