"""Fused q/k/v and gate/up projections (``Decoder.fuse_projections``): one weight tensor per
group with the layers' parameters as views of it. Same numbers as the separate layers, the
same state dict and checkpoint file, and a safe fall-back whenever a parameter is replaced."""

from __future__ import annotations

from pathlib import Path

from core_fixtures import random_frame
from safetensors.torch import load_file
import torch

from smolrgpt_core.generation import EagerSteps, decode
from smolrgpt_core.inference.backends import load_backend
from smolrgpt_core.inference.types import Prompt
from smolrgpt_core.modeling.smolrgpt import SmolRGPT

NEVER = -1  # an EOS id no step picks: every answer runs the whole budget


def _fused(model: SmolRGPT) -> list[bool]:
    return [
        m.fused_weight() is not None
        for block in model.decoder.blocks
        for m in (block.attn, block.mlp)
    ]


def _hidden(model: SmolRGPT, x: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(x.shape[1]).expand(x.shape[0], -1)  # [B, T]
    with torch.no_grad():
        return model.decoder(x, positions, None)


def _prompts(model: SmolRGPT) -> tuple[list[torch.Tensor], list[Prompt]]:
    cfg = model.cfg
    frame = model.encode_frame(*random_frame(cfg, 2, seed=3))
    head = [1, 17, *[cfg.image_token_id] * cfg.mp_image_token_length]
    region = [cfg.mask_rgb_token_id, cfg.mask_depth_token_id]
    prompts = [
        Prompt((*head, 50, *region, 2, 1), (1,)),
        Prompt((*head, 51, 52, *region, 60, 2, 1), (0,)),
        Prompt((*head, 70, *region, 2, 1), (0,)),
    ]
    return model.prompt_embeddings(frame, prompts), prompts


def test_fused_decoder_matches_separate_layers(tiny_model: SmolRGPT) -> None:
    torch.manual_seed(5)
    x = torch.randn(2, 11, tiny_model.cfg.lm_hidden_dim)
    embeds, _ = _prompts(tiny_model)
    want_hidden = _hidden(tiny_model, x)  # rows > SKINNY_ROWS: the plain matmul
    want_step = _hidden(tiny_model, x[:1, :1])  # one row: the skinny path
    want_tokens = decode(EagerSteps(tiny_model.decoder), embeds, eos_token_id=NEVER)

    tiny_model.decoder.fuse_projections()
    assert all(_fused(tiny_model))
    attn = tiny_model.decoder.blocks[0].attn
    fused = attn.fused_weight()
    assert fused.shape[0] == sum(
        p.weight.shape[0] for p in (attn.q_proj, attn.k_proj, attn.v_proj)
    )
    assert attn.k_proj.weight.untyped_storage().data_ptr() == fused.untyped_storage().data_ptr()
    torch.testing.assert_close(_hidden(tiny_model, x), want_hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_hidden(tiny_model, x[:1, :1]), want_step, atol=1e-5, rtol=1e-5)
    tokens = decode(EagerSteps(tiny_model.decoder), embeds, eos_token_id=NEVER)
    assert tokens == want_tokens


def test_state_dict_and_checkpoint_keep_the_separate_names(
    tiny_model: SmolRGPT, tmp_path: Path
) -> None:
    tiny_model.save_pretrained(tmp_path / 'separate')
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.decoder.fuse_projections()
    after = tiny_model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    tiny_model.save_pretrained(tmp_path / 'fused')
    separate = load_file(tmp_path / 'separate' / 'model.safetensors')
    fused = load_file(tmp_path / 'fused' / 'model.safetensors')
    assert 'decoder.blocks.0.attn.q_proj.weight' in fused
    assert 'decoder.blocks.1.mlp.up_proj.weight' in fused
    assert sorted(fused) == sorted(separate)
    assert all(torch.equal(fused[k], separate[k]) for k in separate)
    reloaded = SmolRGPT.from_pretrained(tmp_path / 'fused')
    assert all(torch.equal(reloaded.state_dict()[k], before[k]) for k in before)


def test_in_place_updates_keep_the_fusion_replacements_drop_it(tiny_model: SmolRGPT) -> None:
    torch.manual_seed(6)
    x = torch.randn(1, 3, tiny_model.cfg.lm_hidden_dim)
    original = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.decoder.fuse_projections()
    attn = tiny_model.decoder.blocks[0].attn

    # an in-place write into a layer's parameter is a write into the fused tensor
    with torch.no_grad():
        attn.v_proj.weight.mul_(2.0)
    assert attn.fused_weight() is not None
    fused_out = _hidden(tiny_model, x)
    tiny_model.decoder.unfuse_projections()
    assert not any(_fused(tiny_model))
    torch.testing.assert_close(fused_out, _hidden(tiny_model, x), atol=1e-5, rtol=1e-5)

    tiny_model.load_state_dict(original)
    want = _hidden(tiny_model, x)
    tiny_model.decoder.fuse_projections()
    tiny_model.load_state_dict(original)  # copy_ into the views
    assert all(_fused(tiny_model))
    tiny_model.double()  # new storage for every parameter: fused again on the new dtype
    assert all(_fused(tiny_model)) and attn.fused_weight().dtype == torch.float64
    tiny_model.float()
    tiny_model.load_state_dict(original, assign=True)  # new tensors: the views are gone
    assert not any(_fused(tiny_model))
    assert attn._fused is None  # the stale tensor was dropped, not kept alive
    torch.testing.assert_close(_hidden(tiny_model, x), want, atol=1e-5, rtol=1e-5)


def test_torch_backend_loads_fused(tiny_checkpoint: Path) -> None:
    model = load_backend('torch', tiny_checkpoint)
    assert all(_fused(model))
    separate = SmolRGPT.from_pretrained(tiny_checkpoint)
    assert not any(_fused(separate))
    embeds, _ = _prompts(separate)
    assert decode(EagerSteps(model.decoder), embeds, eos_token_id=NEVER) == decode(
        EagerSteps(separate.decoder), embeds, eos_token_id=NEVER
    )
    int8 = load_backend('torch', tiny_checkpoint, dtype='int8')
    assert all(block.attn._fused is None for block in int8.decoder.blocks)
