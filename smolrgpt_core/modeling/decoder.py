"""Llama-style decoder (SmolLM2-360M): RMSNorm, rotate-half RoPE, GQA attention, SwiGLU MLP.

The decoder takes embeddings (the VLM splices image and region vectors into them first) and
returns final-normed hidden states; ``head`` (tied to ``token_embedding``) is applied by the
caller, only where logits are needed. One block serves every way of running the model: its
attention hands the new keys/values to a cache object (``kv_cache.py``: eager, static for CUDA
graphs, or the exported graph's past/present form) and attends over what the cache returns,
through ``F.scaled_dot_product_attention`` or, for exporters, the written-out
``explicit_attention``.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
import math

import torch
from torch import nn
import torch.nn.functional as F

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.modeling.kv_cache import KVCache

# A decode step multiplies a handful of rows by large weights: it is bound by reading the
# weights from memory, and reading them on every core is what reaches the memory bandwidth.
# MKL's plain products for so few rows do not: its one-row gemv runs on one core, and a
# skinny sgemm ``x @ W.T`` packs the whole weight first (twice the traffic).
# * one row: W [Dout, Din] viewed as GEMV_CHUNKS row blocks [c, Dout/c, Din] and multiplied
#   in one ``bmm``: MKL's batched gemm gives each core its own blocks, each streamed once;
# * 2-8 rows: the transposed product ``(W @ x.T).T``, which streams W once on all threads
#   (in the decode loop it beats the blocked bmm at 2-8 rows, and the blocked bmm beats it at
#   one row; measured with benchmarks/bench_memory.py on 2 threads).
# Same math in fp32; only the summation order of the kernel differs. Tracers (export,
# torch.compile) get the plain layer: a branch on a dynamic row count would pin the traced
# shapes.
SKINNY_ROWS = 8
GEMV_CHUNKS = 16


@functools.lru_cache(maxsize=64)
def _row_blocks(rows: int) -> int:
    """The largest block count <= GEMV_CHUNKS that divides ``rows`` (1: no split)."""
    return max(c for c in range(1, GEMV_CHUNKS + 1) if rows % c == 0)


def project(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` (a bias-free linear), with the skinny-product paths on CPU:
    x [..., Din], weight [Dout, Din] -> [..., Dout]."""
    if x.device.type != 'cpu' or torch.compiler.is_compiling():
        return F.linear(x, weight)
    rows = x.numel() // x.shape[-1]
    if rows > SKINNY_ROWS:
        return F.linear(x, weight)
    n_out, n_in = weight.shape
    flat = x.reshape(rows, n_in)  # [..., Din] -> [R, Din]
    blocks = _row_blocks(n_out)
    if rows == 1 and blocks > 1 and weight.dtype == torch.float32 and weight.is_contiguous():
        out = torch.bmm(
            weight.view(blocks, n_out // blocks, n_in),  # [c, Dout/c, Din], a view
            flat.T.expand(blocks, n_in, 1),  # [c, Din, 1], a view
        )  # [c, Dout/c, 1]
        return out.view(*x.shape[:-1], n_out)
    if rows == 1:
        flat = flat.repeat(2, 1)  # two rows select the threaded gemm kernel
    out = (weight @ flat.T)[:, :rows]  # [Dout, Din] @ [Din, R] -> [Dout, R]
    # row-major again, or every later op (RoPE, SDPA) would run on strided memory
    return out.T.contiguous().view(*x.shape[:-1], -1)  # [Dout, R] -> [..., Dout]


def linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``; a bias-free ``nn.Linear`` takes ``project`` (other layers, such as the
    int8 ones, run their own forward)."""
    if type(layer) is not nn.Linear or layer.bias is not None:
        return layer(x)
    return project(x, layer.weight)


class FusedWeight:
    """Several bias-free linears that read the same input, as row blocks of one weight.

    ``fuse`` concatenates the layers' weights into one tensor [sum Dout, Din] and turns each
    layer's parameter into a view of its block, so there is one copy of the weights, one
    matmul per input instead of several, and the state dict keeps the original names and
    shapes (saving writes the blocks). In-place updates (``load_state_dict``, optimiser
    steps) land in the fused tensor. Anything that replaces a parameter instead (``.to()``,
    ``load_state_dict(assign=True)``, swapping a layer for a quantised one) breaks the views;
    ``weight_for`` notices and the owner falls back to the separate layers.
    """

    def __init__(self, layers: tuple[nn.Linear, ...]) -> None:
        with torch.no_grad():
            self.weight = torch.cat([layer.weight for layer in layers])  # [sum Dout, Din]
        self.sizes = tuple(layer.weight.shape[0] for layer in layers)
        row_bytes = self.weight.stride(0) * self.weight.element_size()
        self._pointers, start = [], 0
        for layer, size in zip(layers, self.sizes):
            layer.weight = nn.Parameter(
                self.weight[start : start + size], requires_grad=layer.weight.requires_grad
            )
            self._pointers.append(self.weight.data_ptr() + start * row_bytes)
            start += size

    def live(self, layers: tuple[nn.Module, ...]) -> bool:
        """Whether ``layers`` still hold views of this tensor (and are plain linears)."""
        for layer, pointer in zip(layers, self._pointers):
            if type(layer) is not nn.Linear or layer.weight.data_ptr() != pointer:
                return False
        return True


class FusableMixin:
    """``fuse()`` / ``unfuse()`` for a module whose projections ``FUSED`` read one input."""

    FUSED: tuple[str, ...] = ()
    _fused: FusedWeight | None = None

    def fused_projection(self, x: torch.Tensor) -> torch.Tensor | None:
        """x [..., Din] -> the FUSED projections side by side [..., sum Dout], in one product,
        or None when the projections are separate layers.

        A submodule ``packed`` (the int8 backend's), when present, computes them all in one
        call and stands in for the separate layers, which are then gone."""
        packed = self._modules.get('packed')  # type: ignore[attr-defined]
        if packed is not None:
            return packed(x)
        fused = self.fused_weight()
        return None if fused is None else project(x, fused)

    def _fusable(self) -> tuple[nn.Module, ...]:
        return tuple(getattr(self, name) for name in self.FUSED)

    def fuse(self) -> None:
        """One weight tensor for the ``FUSED`` projections (see ``FusedWeight``)."""
        layers = self._fusable()
        if not all(type(layer) is nn.Linear and layer.bias is None for layer in layers):
            raise TypeError(f'only bias-free nn.Linear layers fuse, got {layers}')
        self._fused = FusedWeight(layers)

    def unfuse(self) -> None:
        """Separate, contiguous parameters again (same values)."""
        if self._fused is not None and self._fused.live(self._fusable()):
            for layer in self._fusable():
                layer.weight = nn.Parameter(
                    layer.weight.detach().clone(), requires_grad=layer.weight.requires_grad
                )
        self._fused = None

    def fused_weight(self) -> torch.Tensor | None:
        """The fused weight while every projection is still a view of it, else None (and
        the stale tensor is dropped, so its memory goes)."""
        fused = self._fused
        if fused is None or torch.compiler.is_compiling():
            # tracers see the separate parameters (the fused tensor is no module state)
            return None
        if fused.live(self._fusable()):
            return fused.weight
        self._fused = None
        return None

    def _apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True
    ) -> nn.Module:
        # .to(), .half(), .cuda() give every parameter new storage: fuse again afterwards
        # (nn.RNNBase re-flattens its weights the same way)
        was_fused = self.fused_weight() is not None
        self._fused = None
        out = super()._apply(fn, recurse)
        if was_fused:
            self.fuse()
        return out


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and not torch.compiler.is_compiling():
            # the same formula in one call (a decode step runs 65 norms); tracers keep the
            # written-out form below, which every exporter parses
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        # statistics in float32 (identical for fp32 models, safer in bf16)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return x32.to(x.dtype) * self.weight


class RotaryEmbedding(nn.Module):
    """cos/sin tables for rotate-half RoPE, computed on the fly from integer positions."""

    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.max_positions = cfg.lm_max_position_embeddings
        self.attn_scaling = cfg.lm_attn_scaling
        dim = cfg.lm_head_dim
        inv_freq = 1.0 / (cfg.lm_re_base ** (torch.arange(0, dim, 2).float() / dim))
        # persistent: the official state dict carries it (value is deterministic)
        self.register_buffer('inv_freq', inv_freq)

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T] integer positions -> cos, sin [B, T, Dh] (float32)."""
        # The reference stretches the frequencies once a call sees positions beyond the
        # trained context (dynamic NTK-free scaling). Never reached within 8192 tokens.
        scale = ((position_ids.max() + 1).float() / self.max_positions).clamp(min=1.0)
        inv_freq = self.inv_freq.float() / scale  # [Dh/2]
        angles = position_ids.float()[..., None] * inv_freq  # [B, T, Dh/2]
        angles = torch.cat((angles, angles), dim=-1)  # [B, T, Dh], non-interleaved halves
        return angles.cos() * self.attn_scaling, angles.sin() * self.attn_scaling


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[a, b] -> [-b, a] along the last dim."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, Dh], cos/sin [B, T, Dh] -> x rotated, in x's dtype."""
    cos, sin = cos[:, None], sin[:, None]  # [B, 1, T, Dh], broadcast over heads
    x32 = x.float()
    return (x32 * cos + rotate_half(x32) * sin).to(x.dtype)


def rope_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [B, T, Dh] -> cos and the sign-folded sin [B, 1, T, Dh] that ``rotate``
    takes, made once per forward instead of once per layer: rotate_half(x) * sin
    = [-b, a] * [s1, s2] = [b, a] * [-s1, s2], the same products."""
    half = sin.shape[-1] // 2
    signed = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
    return cos[:, None], signed[:, None]


def rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """``apply_rotary`` on ``rope_tables``: x [B, H, T, Dh] -> x rotated, in x's dtype (the
    same numbers; four ops in eager fp32, where a decode step rotates 32 times)."""
    half = x.shape[-1] // 2
    if x.dtype == torch.float32 and not torch.compiler.is_compiling():
        return x * cos + x.roll(half, dims=-1) * signed_sin  # roll: [a, b] -> [b, a]
    x32 = x.float()
    swapped = torch.cat((x32[..., half:], x32[..., :half]), dim=-1)  # [a, b] -> [b, a]
    return (x32 * cos + swapped * signed_sin).to(x.dtype)


def attention_bias(
    key_valid: torch.Tensor, start: int, length: int, dtype: torch.dtype
) -> torch.Tensor:
    """Additive bias [B, 1, T, S] for T queries at cache slots start..start+T-1.

    Future keys get -inf (causal); padded keys (``key_valid`` [B, S] false) get the dtype's
    most negative finite value, as the reference does, so a query whose only visible keys are
    pads (a left-pad row) averages them instead of producing NaN.
    """
    S = key_valid.shape[1]
    q_slot = torch.arange(start, start + length, device=key_valid.device)  # [T]
    k_slot = torch.arange(S, device=key_valid.device)  # [S]
    causal = k_slot[None, :] <= q_slot[:, None]  # [T, S]
    pad = torch.zeros(key_valid.shape, dtype=dtype, device=key_valid.device)
    pad = pad.masked_fill(~key_valid, torch.finfo(dtype).min)  # [B, S]
    bias = pad[:, None, None, :].expand(-1, 1, length, S)  # [B, 1, T, S]
    return bias.masked_fill(~causal, float('-inf'))


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """SDPA with GQA, written out for exporters: q [B, H, T, Dh], k/v [B, Hkv, S, Dh], bias
    [B, 1, T, S] -> [B, H, T, Dh]. Only matmuls, expand and a float32 softmax (also in an
    fp16 graph), which ONNX Runtime and TensorRT both parse."""
    B, H, _, Dh = q.shape  # [B, H, T, Dh]
    Hkv, S = k.shape[1], k.shape[2]
    # query head i reads kv head i // (H / Hkv), as repeat_interleave gives
    group = H // Hkv
    k = k[:, :, None].expand(B, Hkv, group, S, Dh).reshape(B, H, S, Dh)  # -> [B, H, S, Dh]
    v = v[:, :, None].expand(B, Hkv, group, S, Dh).reshape(B, H, S, Dh)  # -> [B, H, S, Dh]
    scores = (q @ k.transpose(-1, -2)).float() * (1.0 / math.sqrt(Dh))  # [B, H, T, S]
    probs = (scores + bias.float()).softmax(-1).to(q.dtype)  # [B, H, T, S]
    return probs @ v  # [B, H, T, Dh]


class Attention(FusableMixin, nn.Module):
    FUSED = ('q_proj', 'k_proj', 'v_proj')

    def __init__(self, cfg: SmolRGPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.layer_idx = layer_idx  # which of the cache's layers is this one's
        self.n_heads = cfg.lm_n_heads
        self.n_kv_heads = cfg.lm_n_kv_heads
        self.head_dim = cfg.lm_head_dim
        self.dropout = cfg.lm_dropout
        D = cfg.lm_hidden_dim
        self.q_proj = nn.Linear(D, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(D, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(D, self.n_kv_heads * self.head_dim, bias=False)
        self.out_proj = nn.Linear(self.n_heads * self.head_dim, D, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        bias: torch.Tensor | None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x [B, T, D]; cos/sin: ``rope_tables`` [B, 1, T, Dh] (or the rotary embedding's
        [B, T, Dh]); bias [B, 1, T, S] over the keys the cache returns (None: causal)."""
        B, T, D = x.shape
        if cos.dim() == 3:
            cos, sin = rope_tables(cos, sin)
        H, Hkv, Dh = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.fused_projection(x)  # [B, T, (H + 2 Hkv) Dh] or None
        if qkv is not None:
            # [B, T, (H + 2 Hkv) Dh] -> heads [B, H + 2 Hkv, T, Dh]: q heads, k heads, v heads
            qkv = qkv.view(B, T, H + 2 * Hkv, Dh).transpose(1, 2)
            # one rotation for the q and k heads together (elementwise: the same numbers)
            q, k = rotate(qkv[:, : H + Hkv], cos, sin).split((H, Hkv), dim=1)
            v = qkv[:, H + Hkv :]  # [B, Hkv, T, Dh]
        else:
            q, k, v = linear(self.q_proj, x), linear(self.k_proj, x), linear(self.v_proj, x)
            q = q.view(B, T, H, Dh).transpose(1, 2)  # [B, T, H*Dh] -> [B, H, T, Dh]
            k = k.view(B, T, Hkv, Dh).transpose(1, 2)  # [B, T, Hkv*Dh] -> [B, Hkv, T, Dh]
            v = v.view(B, T, Hkv, Dh).transpose(1, 2)  # [B, T, Hkv*Dh] -> [B, Hkv, T, Dh]
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # [B, Hkv, S, Dh] each
        if cache is not None and cache.explicit_attention:
            if bias is None:
                raise ValueError('the written-out attention needs an explicit bias')
            y = explicit_attention(q, k, v, bias)  # [B, H, T, Dh]
        else:
            # GQA: query head i reads kv head i // (H / Hkv), as repeat_interleave would give
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=bias,
                is_causal=bias is None and T > 1 and cache is None,
                dropout_p=self.dropout if self.training else 0.0,
                enable_gqa=True,
            )  # [B, H, T, Dh]
        y = y.transpose(1, 2).reshape(B, T, D)  # [B, H, T, Dh] -> [B, T, D]
        return linear(self.out_proj, y)


class MLP(FusableMixin, nn.Module):
    FUSED = ('gate_proj', 'up_proj')

    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.lm_hidden_dim, cfg.lm_inter_dim, bias=False)
        self.up_proj = nn.Linear(cfg.lm_hidden_dim, cfg.lm_inter_dim, bias=False)
        self.down_proj = nn.Linear(cfg.lm_inter_dim, cfg.lm_hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_up = self.fused_projection(x)  # [..., 2I] or None
        if gate_up is not None:
            gate, up = gate_up.chunk(2, dim=-1)  # [..., 2I] -> 2 x [..., I]
        else:
            gate, up = linear(self.gate_proj, x), linear(self.up_proj, x)
        gated = F.silu(gate) * up
        return linear(self.down_proj, gated)


class DecoderBlock(nn.Module):
    def __init__(self, cfg: SmolRGPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        # creation order mirrors the official state dict (mlp, attn, norm1, norm2)
        self.mlp = MLP(cfg)
        self.attn = Attention(cfg, layer_idx)
        self.norm1 = RMSNorm(cfg.lm_hidden_dim, cfg.lm_rms_eps)
        self.norm2 = RMSNorm(cfg.lm_hidden_dim, cfg.lm_rms_eps)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        bias: torch.Tensor | None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin, bias, cache)
        return x + self.mlp(self.norm2(x))


class Decoder(nn.Module):
    """Embeddings [B, T, D] -> final-normed hidden states [B, T, D]."""

    def __init__(self, cfg: SmolRGPTConfig) -> None:
        super().__init__()
        if not cfg.lm_tie_weights:
            raise ValueError(
                'SmolRGPT checkpoints tie the head to the token embedding; '
                'lm_tie_weights=False is not supported'
            )
        self.token_embedding = nn.Embedding(cfg.lm_vocab_size, cfg.lm_hidden_dim)
        self.rotary_embd = RotaryEmbedding(cfg)
        self.blocks = nn.ModuleList(DecoderBlock(cfg, i) for i in range(cfg.lm_n_blocks))
        self.norm = RMSNorm(cfg.lm_hidden_dim, cfg.lm_rms_eps)
        self.head = nn.Linear(cfg.lm_hidden_dim, cfg.lm_vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        self.head.weight = self.token_embedding.weight

    def fuse_projections(self) -> None:
        """q/k/v and gate/up of every block as one weight each (``FusedWeight``): fewer,
        larger matmuls per token; the state dict is unchanged."""
        for block in self.blocks:
            block.attn.fuse()
            block.mlp.fuse()

    def unfuse_projections(self) -> None:
        for block in self.blocks:
            block.attn.unfuse()
            block.mlp.unfuse()

    def cache_shape(self, rows: int, slots: int) -> tuple[int, int, int, int, int]:
        """[L, B, Hkv, S_max, Dh] of a key (or value) cache for ``rows`` rows."""
        attn = self.blocks[0].attn
        return (len(self.blocks), rows, attn.n_kv_heads, slots, attn.head_dim)

    def forward(
        self,
        x: torch.Tensor,
        position_ids: torch.Tensor,
        bias: torch.Tensor | None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """x [B, T, D]; position_ids [B, T]; bias [B, 1, T, S] or None (plain causal).
        ``last_only``: the last position's hidden state alone, [B, D] (a decode step needs no
        more, and the final norm then runs on one row)."""
        if cache is not None and bias is None and x.shape[1] > 1:
            # is_causal aligns the diagonal at the top-left, which is wrong once earlier
            # chunks sit in the cache; the caller must state the mask (a single query with
            # no padded key needs none)
            raise ValueError('a cached multi-token chunk needs an explicit bias')
        cos, sin = rope_tables(*self.rotary_embd(position_ids))  # [B, 1, T, Dh] each
        for block in self.blocks:
            x = block(x, cos, sin, bias, cache)
        return self.norm(x[:, -1] if last_only else x)
