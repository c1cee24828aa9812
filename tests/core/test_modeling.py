"""Per-module behaviour against hand computations and eager oracles."""

from __future__ import annotations

import math

from core_fixtures import make_tiny_config
import pytest
import torch
import torch.nn.functional as F

from smolrgpt_core.modeling.decoder import (
    Attention,
    RMSNorm,
    RotaryEmbedding,
    apply_rotary,
    attention_bias,
    rotate_half,
)
from smolrgpt_core.modeling.projector import pixel_shuffle
from smolrgpt_core.modeling.region import FeatureRefiner, LayerNorm2d, MaskPooling
from smolrgpt_core.modeling.vision import ViTAttention


def test_pixel_shuffle_layout_matches_the_reference() -> None:
    x = torch.arange(256.0).view(1, 256, 1)  # token value = its patch index on a 16x16 grid
    y = pixel_shuffle(x, 2)  # [1, 64, 4]
    assert y.shape == (1, 64, 4)
    assert y[0, 0].tolist() == [0, 1, 16, 17]
    assert y[0, 1].tolist() == [2, 3, 18, 19]
    assert y[0, 8].tolist() == [32, 33, 48, 49]


def test_pixel_shuffle_rejects_bad_grids() -> None:
    with pytest.raises(ValueError, match='square'):
        pixel_shuffle(torch.zeros(1, 15, 2), 2)


def test_layernorm2d_normalises_channels() -> None:
    ln = LayerNorm2d(3)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        ln.bias.fill_(0.5)
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    # mean 2, biased var 2/3 -> normalised [-1, 0, 1] * sqrt(1/(2/3 + eps))
    scale = 1 / math.sqrt(2 / 3 + 1e-6)
    expected = torch.tensor([-scale + 0.5, 0.5, 3 * scale + 0.5])
    torch.testing.assert_close(ln(x).flatten(), expected)


def test_refiner_structure_and_upsampling() -> None:
    cfg = make_tiny_config()
    refiner = FeatureRefiner(cfg)
    kinds = [type(m).__name__ for m in refiner.refiner]
    assert kinds == ['ConvTranspose2d', 'LayerNorm2d', 'GELU'] * 2 + ['ConvTranspose2d', 'GELU']
    assert all(m.approximate == 'none' for m in refiner.refiner if hasattr(m, 'approximate'))
    out = refiner(torch.randn(2, cfg.mp_image_token_length, cfg.lm_hidden_dim))
    assert out.shape == (2, cfg.mask_grid**2, cfg.lm_hidden_dim)


def test_refiner_token_to_grid_placement() -> None:
    # with kernel = stride = 2, input cell (i, j) only feeds the output block (2i.., 2j..)
    cfg = make_tiny_config(region_refiner_depth=1)
    refiner = FeatureRefiner(cfg)
    tokens = torch.zeros(1, 4, cfg.lm_hidden_dim)
    tokens[0, 1] = 1.0  # token 1 = row 0, col 1 of the 2x2 token grid
    with torch.no_grad():
        refiner.refiner[0].bias.zero_()
    out = refiner(tokens).view(4, 4, -1)  # [G, G, D]
    nonzero = (out.abs().sum(-1) > 0).nonzero().tolist()
    assert nonzero == [[0, 2], [0, 3], [1, 2], [1, 3]]


def test_mask_pooling_is_a_weighted_mean() -> None:
    cfg = make_tiny_config(region_refiner_depth=1)  # grid 4x4
    pool = MaskPooling(cfg)
    feats = torch.arange(16.0).view(1, 16, 1).repeat(1, 1, 2)  # feature = cell index
    masks = torch.zeros(3, 4, 4)
    masks[0, 0, :2] = 1  # cells 0, 1
    masks[1, 1:3, 1:3] = 1  # cells 5, 6, 9, 10
    out = pool(feats, [masks])[0]
    torch.testing.assert_close(out[0], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(out[1], torch.tensor([7.5, 7.5]))
    torch.testing.assert_close(out[2], torch.zeros(2))  # empty mask -> zero vector


def test_mask_pooling_resizes_bilinearly_without_antialias() -> None:
    cfg = make_tiny_config(region_refiner_depth=1)  # grid 4x4
    pool = MaskPooling(cfg)
    feats = torch.arange(16.0).view(1, 16, 1)
    # an 8x8 mask covering only the top-left pixel of each 2x2 block: a 2x downsample with
    # half-pixel centres averages each block -> weight 0.25 everywhere -> plain mean 7.5
    mask = torch.zeros(1, 8, 8)
    mask[0, ::2, ::2] = 1
    torch.testing.assert_close(pool(feats, [mask])[0], torch.tensor([[7.5]]))
    # 4x downsample: antialiasing would see the single pixel, bilinear sampling does not
    tiny = torch.zeros(1, 16, 16)
    tiny[0, 0, 0] = 1
    torch.testing.assert_close(pool(feats, [tiny])[0], torch.tensor([[0.0]]))


def test_mask_pooling_with_an_image_index_equals_pooling_per_sample_copies() -> None:
    """Samples that share an image pool it in one product; values and the gradient reaching
    the maps are those of giving every sample its own copy of the map."""
    cfg = make_tiny_config(region_refiner_depth=1)  # grid 4x4
    pool = MaskPooling(cfg)
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 16, 3, generator=g, requires_grad=True)
    masks = [(torch.rand(m, 8, 8, generator=g) > 0.5).float() for m in (2, 1, 3, 2)]
    index = torch.tensor([1, 0, 1, 1])
    shared = pool(maps, masks, index)
    copies = maps.detach()[index].requires_grad_(True)
    expected = pool(copies, masks)
    assert [s.shape for s in shared] == [torch.Size([m.shape[0], 3]) for m in masks]
    for got, want in zip(shared, expected):
        torch.testing.assert_close(got, want)
    probe = [torch.randn(s.shape, generator=g) for s in shared]
    sum((s * p).sum() for s, p in zip(shared, probe)).backward()
    sum((e * p).sum() for e, p in zip(expected, probe)).backward()
    folded = torch.zeros_like(maps).index_add_(0, index, copies.grad)  # per-copy -> per-image
    torch.testing.assert_close(maps.grad, folded)
    # a sample alone on its image is pooled exactly as without an index (the inference path)
    assert torch.equal(shared[1], pool(maps.detach()[:1], masks[1:2])[0])


def test_mask_pooling_rejects_a_mask_list_of_the_wrong_length() -> None:
    cfg = make_tiny_config(region_refiner_depth=1)
    pool = MaskPooling(cfg)
    with pytest.raises(ValueError, match='3 mask tensors for a batch of 2'):
        pool(torch.zeros(2, 16, 3), [torch.zeros(1, 4, 4)] * 3)


def test_rotary_embedding_rotate_half_convention() -> None:
    cfg = make_tiny_config()
    rope = RotaryEmbedding(cfg)
    dim = cfg.lm_head_dim
    torch.testing.assert_close(
        rope.inv_freq, 1.0 / cfg.lm_re_base ** (torch.arange(0, dim, 2) / dim)
    )
    assert rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist() == [-3, -4, 1, 2]
    cos, sin = rope(torch.tensor([[0, 3]]))
    x = torch.randn(1, 2, 2, dim)
    rotated = apply_rotary(x, cos, sin)
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])  # position 0: identity
    angle = 3 * rope.inv_freq[0]
    a, b = x[0, 0, 1, 0], x[0, 0, 1, dim // 2]
    torch.testing.assert_close(rotated[0, 0, 1, 0], a * angle.cos() - b * angle.sin())


def test_rope_scores_depend_on_relative_position_only() -> None:
    cfg = make_tiny_config()
    rope = RotaryEmbedding(cfg)
    q, k = torch.randn(1, 1, 1, cfg.lm_head_dim), torch.randn(1, 1, 1, cfg.lm_head_dim)

    def score(m: int, n: int) -> torch.Tensor:
        cq, sq = rope(torch.tensor([[m]]))
        ck, sk = rope(torch.tensor([[n]]))
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    torch.testing.assert_close(score(5, 2), score(13, 10), atol=1e-5, rtol=1e-5)


def test_rmsnorm_matches_formula() -> None:
    norm = RMSNorm(4, 1e-5)
    x = torch.tensor([[1.0, -2.0, 3.0, -4.0]])
    expected = x / torch.sqrt((x**2).mean() + 1e-5)
    torch.testing.assert_close(norm(x), expected)


def eager_gqa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
    return scores.softmax(-1) @ v


def test_decoder_attention_matches_eager_oracle_with_padding() -> None:
    cfg = make_tiny_config()
    attn = Attention(cfg).eval()
    rope = RotaryEmbedding(cfg)
    B, T = 2, 5
    x = torch.randn(B, T, cfg.lm_hidden_dim)
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[1, :2] = False  # row 1 is left-padded by two
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    cos, sin = rope(positions)
    bias = attention_bias(valid, 0, T, torch.float32)
    out = attn(x, cos, sin, bias)
    H, Hkv, Dh = cfg.lm_n_heads, cfg.lm_n_kv_heads, cfg.lm_head_dim
    q = apply_rotary(attn.q_proj(x).view(B, T, H, Dh).transpose(1, 2), cos, sin)
    k = apply_rotary(attn.k_proj(x).view(B, T, Hkv, Dh).transpose(1, 2), cos, sin)
    v = attn.v_proj(x).view(B, T, Hkv, Dh).transpose(1, 2)
    ref = attn.out_proj(eager_gqa(q, k, v, bias).transpose(1, 2).reshape(B, T, -1))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(out).all()  # fully padded query rows stay finite


def test_attention_bias_semantics() -> None:
    valid = torch.tensor([[False, True, True]])
    bias = attention_bias(valid, 1, 2, torch.float32)[0, 0]  # queries at slots 1, 2
    finfo_min = torch.finfo(torch.float32).min
    assert bias.tolist() == [[finfo_min, 0.0, float('-inf')], [finfo_min, 0.0, 0.0]]


def test_vit_attention_matches_eager_oracle() -> None:
    cfg = make_tiny_config()
    attn = ViTAttention(cfg).eval()
    x = torch.randn(2, 16, cfg.vit_hidden_dim)
    q, k, v = attn.qkv_proj(x).split(cfg.vit_hidden_dim, dim=-1)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(2, 16, cfg.vit_n_heads, -1).transpose(1, 2)

    scores = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(cfg.vit_head_dim)
    ref = (scores.softmax(-1) @ heads(v)).transpose(1, 2).reshape(2, 16, -1)
    torch.testing.assert_close(attn(x), attn.out_proj(ref), atol=1e-5, rtol=1e-5)


def test_vit_mlp_uses_gelu_tanh() -> None:
    from smolrgpt_core.modeling.vision import ViTMLP

    cfg = make_tiny_config()
    mlp = ViTMLP(cfg)
    x = torch.randn(3, cfg.vit_hidden_dim)
    ref = mlp.fc2(F.gelu(mlp.fc1(x), approximate='tanh'))
    torch.testing.assert_close(mlp(x), ref)


@pytest.mark.parametrize('shape', [(1, 1), (1, 3), (2, 4), (3, 5)])
def test_skinny_linear_equals_the_layer(shape: tuple[int, int]) -> None:
    from smolrgpt_core.modeling.decoder import linear

    layer = torch.nn.Linear(32, 48, bias=False)
    x = torch.randn(*shape, 32)
    out = linear(layer, x)
    assert out.shape == (*shape, 48)
    torch.testing.assert_close(out, layer(x), atol=1e-5, rtol=1e-5)


def test_vanished_mask_pools_to_zero_in_half_precision() -> None:
    """A mask that falls between the grid's sample points has zero weight; the pooled vector
    must be 0, not NaN, in fp16 and bf16 too (1e-8 underflows in fp16)."""
    from smolrgpt_core.modeling.region import pool_regions

    features = torch.randn(16, 8)
    weights = torch.zeros(2, 16)
    weights[1, 3] = 1.0
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        pooled = pool_regions(features.to(dtype), weights)
        assert pooled.dtype == dtype and not torch.isnan(pooled).any()
        assert (pooled[0] == 0).all()
        assert torch.allclose(pooled[1].float(), features[3].to(dtype).float(), atol=1e-2)
