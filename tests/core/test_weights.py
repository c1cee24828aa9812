"""Official-format checkpoints: key/shape contract, save/load round trip, backbone mapping."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
import re
import sys

from core_fixtures import make_tiny_config, random_frame
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file, save_model
import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer
from smolrgpt_core.weights import CheckpointError, load_state_dict_checked


def official_key_shapes() -> dict[str, tuple[int, ...]]:
    """Spec section 2.1, written out independently of the model code."""
    shapes: dict[str, tuple[int, ...]] = {
        'vision_encoder.patch_embedding.position_embedding': (1, 256, 768),
        'vision_encoder.patch_embedding.conv.weight': (768, 3, 16, 16),
        'vision_encoder.patch_embedding.conv.bias': (768,),
        'vision_encoder.layer_norm.weight': (768,),
        'vision_encoder.layer_norm.bias': (768,),
        'decoder.token_embedding.weight': (49155, 960),
        'decoder.rotary_embd.inv_freq': (32,),
        'decoder.norm.weight': (960,),
        'decoder.head.weight': (49155, 960),
        'MP.proj.weight': (960, 3072),
        'MP_depth.proj.weight': (960, 3072),
    }
    for i in range(12):
        p = f'vision_encoder.blocks.{i}.'
        shapes.update(
            {
                p + 'ln1.weight': (768,),
                p + 'ln1.bias': (768,),
                p + 'attn.qkv_proj.weight': (2304, 768),
                p + 'attn.qkv_proj.bias': (2304,),
                p + 'attn.out_proj.weight': (768, 768),
                p + 'attn.out_proj.bias': (768,),
                p + 'ln2.weight': (768,),
                p + 'ln2.bias': (768,),
                p + 'mlp.fc1.weight': (3072, 768),
                p + 'mlp.fc1.bias': (3072,),
                p + 'mlp.fc2.weight': (768, 3072),
                p + 'mlp.fc2.bias': (768,),
            }
        )
    for j in range(32):
        p = f'decoder.blocks.{j}.'
        shapes.update(
            {
                p + 'mlp.gate_proj.weight': (2560, 960),
                p + 'mlp.up_proj.weight': (2560, 960),
                p + 'mlp.down_proj.weight': (960, 2560),
                p + 'attn.q_proj.weight': (960, 960),
                p + 'attn.k_proj.weight': (320, 960),
                p + 'attn.v_proj.weight': (320, 960),
                p + 'attn.out_proj.weight': (960, 960),
                p + 'norm1.weight': (960,),
                p + 'norm2.weight': (960,),
            }
        )
    for r in ('rgb_refiner', 'depth_refiner'):
        for idx in (0, 3, 6):
            shapes[f'{r}.refiner.{idx}.weight'] = (960, 960, 2, 2)
            shapes[f'{r}.refiner.{idx}.bias'] = (960,)
        for idx in (1, 4):
            shapes[f'{r}.refiner.{idx}.weight'] = (960,)
            shapes[f'{r}.refiner.{idx}.bias'] = (960,)
    return shapes


def test_full_size_keys_and_shapes_on_meta() -> None:
    with torch.device('meta'):
        model = SmolRGPT(SmolRGPTConfig())
    state = model.state_dict()
    expected = official_key_shapes()
    assert len(expected) == 463
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert model.num_parameters() == 475_697_280
    assert model.decoder.head.weight is model.decoder.token_embedding.weight
    assert all(p.is_meta for p in model.parameters())


def save_tiny(model: SmolRGPT, path: Path) -> Path:
    model.save_pretrained(path)
    return path


def test_saved_file_is_in_the_official_format(tiny_model: SmolRGPT, tmp_path: Path) -> None:
    save_tiny(tiny_model, tmp_path / 'ours')
    weights = tmp_path / 'ours' / 'model.safetensors'
    with safe_open(weights, framework='pt') as f:
        keys, metadata = set(f.keys()), f.metadata()
        dtypes = {f.get_tensor(k).dtype for k in keys}
    assert 'decoder.token_embedding.weight' not in keys
    assert 'decoder.head.weight' in keys and 'decoder.rotary_embd.inv_freq' in keys
    assert len(keys) == len(tiny_model.state_dict()) - 1
    assert metadata == {'decoder.token_embedding.weight': 'decoder.head.weight'}
    assert dtypes == {torch.float32}
    # the reference writes with safetensors' save_model: same names and same metadata
    save_model(tiny_model, str(tmp_path / 'reference.safetensors'))
    with safe_open(tmp_path / 'reference.safetensors', framework='pt') as f:
        assert set(f.keys()) == keys and f.metadata() == metadata


def test_round_trip_is_exact(tiny_model: SmolRGPT, tmp_path: Path) -> None:
    save_tiny(tiny_model, tmp_path / 'ckpt')
    loaded = SmolRGPT.from_pretrained(tmp_path / 'ckpt')
    assert loaded.cfg == tiny_model.cfg
    assert loaded.decoder.head.weight is loaded.decoder.token_embedding.weight
    for (k, a), (k2, b) in zip(tiny_model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    image, depth, masks = random_frame(tiny_model.cfg, 2)
    ids = torch.tensor([[1, 5] + [tiny_model.cfg.image_token_id] * 4 + [7, 8]])
    a, _ = tiny_model(ids, image[None], depth[None], [masks[:0]])
    b, _ = loaded(ids, image[None], depth[None], [masks[:0]])
    assert torch.equal(a, b)


def test_bf16_load_casts_after_reading(tiny_model: SmolRGPT, tmp_path: Path) -> None:
    save_tiny(tiny_model, tmp_path / 'ckpt')
    loaded = SmolRGPT.from_pretrained(tmp_path / 'ckpt', dtype=torch.bfloat16)
    assert loaded.decoder.head.weight.dtype == torch.bfloat16
    assert loaded.decoder.rotary_embd.inv_freq.dtype == torch.float32
    assert loaded.decoder.head.weight is loaded.decoder.token_embedding.weight


def test_file_with_embedding_instead_of_head_and_no_inv_freq_loads(
    tiny_model: SmolRGPT, tmp_path: Path
) -> None:
    save_tiny(tiny_model, tmp_path / 'ckpt')
    tensors = load_file(tmp_path / 'ckpt' / 'model.safetensors')
    tensors['decoder.token_embedding.weight'] = tensors.pop('decoder.head.weight')
    del tensors['decoder.rotary_embd.inv_freq']
    save_file(tensors, tmp_path / 'ckpt' / 'model.safetensors')
    loaded = SmolRGPT.from_pretrained(tmp_path / 'ckpt')
    assert torch.equal(loaded.decoder.head.weight, tiny_model.decoder.head.weight)
    assert torch.equal(
        loaded.decoder.rotary_embd.inv_freq, tiny_model.decoder.rotary_embd.inv_freq
    )


@pytest.mark.parametrize(
    'damage, message',
    [
        ('drop', 'checkpoint: missing tensors MP.proj.weight'),
        ('extra', 'checkpoint: unexpected tensors decoder.extra'),
        ('shape', 'tensor MP_depth.proj.weight has shape [3, 3], config.json needs [32, 128]'),
        ('dtype', 'tensor MP.proj.weight has dtype torch.int64, not floating point'),
    ],
)
def test_bad_checkpoints_raise_with_a_listing(
    tiny_model: SmolRGPT, damage: str, message: str
) -> None:
    tensors = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    if damage == 'drop':
        del tensors['MP.proj.weight']
    elif damage == 'extra':
        tensors['decoder.extra'] = torch.zeros(1)
    elif damage == 'shape':
        tensors['MP_depth.proj.weight'] = torch.zeros(3, 3)
    else:
        tensors['MP.proj.weight'] = tensors['MP.proj.weight'].long()
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_state_dict_checked(SmolRGPT(tiny_model.cfg), tensors)


def test_missing_directory_never_tries_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    def no_network(*args: object, **kwargs: object) -> str:
        raise AssertionError('a local path must not reach the Hub')

    monkeypatch.setattr(huggingface_hub, 'snapshot_download', no_network)
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', no_network)
    for spec in ('nobody/no-such-smolrgpt-checkpoint', tmp_path / 'typo'):
        with pytest.raises(
            CheckpointError, match=r'no such checkpoint directory: .*hf://org/name'
        ):
            SmolRGPT.from_pretrained(spec)
        with pytest.raises(CheckpointError, match='no such checkpoint directory'):
            SmolRGPTTokenizer.from_dir(spec, make_tiny_config())


@pytest.fixture
def fake_hub(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """huggingface_hub.snapshot_download answering with the tiny checkpoint; the calls."""
    import huggingface_hub

    calls: list[dict[str, object]] = []

    def snapshot_download(**kwargs: object) -> str:
        calls.append(kwargs)
        return str(tiny_checkpoint)

    monkeypatch.setattr(huggingface_hub, 'snapshot_download', snapshot_download)
    return calls


def test_hf_spec_downloads_from_the_hub(
    fake_hub: list[dict[str, object]], tiny_checkpoint: Path
) -> None:
    model = SmolRGPT.from_pretrained('hf://org/smolrgpt@v1.0')
    tok = SmolRGPTTokenizer.from_dir('hf://org/smolrgpt@v1.0', model.cfg)
    # what load_backend hands on: the spec wrapped in a Path, which collapses the '//'
    SmolRGPT.from_pretrained(Path('hf://org/smolrgpt'))
    assert [(c['repo_id'], c['revision']) for c in fake_hub] == [
        ('org/smolrgpt', 'v1.0'),
        ('org/smolrgpt', 'v1.0'),
        ('org/smolrgpt', None),
    ]
    assert set(fake_hub[0]['allow_patterns']) == {  # type: ignore[arg-type]
        'config.json',
        'model.safetensors',
        'tokenizer.json',
        'tokenizer_config.json',
    }
    reference = SmolRGPT.from_pretrained(tiny_checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))
    assert tok.eos_token_id == 2


@pytest.mark.parametrize('spec', ['hf://', 'hf://org/name/extra', 'hf://org name', 'hf://org/x@'])
def test_malformed_hf_spec_is_refused_without_a_download(
    spec: str, fake_hub: list[dict[str, object]]
) -> None:
    with pytest.raises(CheckpointError, match=re.escape(f'{spec}: not a Hub model; write hf://')):
        SmolRGPT.from_pretrained(spec)
    assert fake_hub == []


def test_hub_failure_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def offline(**kwargs: object) -> str:
        raise OSError('Cannot reach https://huggingface.co: network is unreachable')

    monkeypatch.setattr(huggingface_hub, 'snapshot_download', offline)
    with pytest.raises(CheckpointError) as exc:
        SmolRGPT.from_pretrained('hf://org/name')
    assert str(exc.value) == (
        'hf://org/name: could not be fetched from the Hugging Face Hub (Cannot reach '
        'https://huggingface.co: network is unreachable); offline? a model fetched before '
        'loads from the cache with HF_HUB_OFFLINE=1'
    )


def test_hub_without_huggingface_hub_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'huggingface_hub', None)  # import fails
    with pytest.raises(CheckpointError, match=r'needs huggingface_hub \(pip install'):
        SmolRGPT.from_pretrained('hf://org/name')


def hf_backbone_dirs(source: SmolRGPT, root: Path) -> tuple[Path, Path]:
    """Write ``source``'s ViT and decoder as HF SigLIP / Llama directories (bf16 LM)."""
    cfg = source.cfg
    sd = source.state_dict()
    vision = {
        'vision_model.embeddings.patch_embedding.weight': sd[
            'vision_encoder.patch_embedding.conv.weight'
        ],
        'vision_model.embeddings.patch_embedding.bias': sd[
            'vision_encoder.patch_embedding.conv.bias'
        ],
        'vision_model.embeddings.position_embedding.weight': sd[
            'vision_encoder.patch_embedding.position_embedding'
        ][0],
        'vision_model.post_layernorm.weight': sd['vision_encoder.layer_norm.weight'],
        'vision_model.post_layernorm.bias': sd['vision_encoder.layer_norm.bias'],
        'vision_model.head.probe': torch.zeros(1, 1, cfg.vit_hidden_dim),  # ignored
        'text_model.embeddings.token_embedding.weight': torch.zeros(4, 8),  # ignored
    }
    for i in range(cfg.vit_n_blocks):
        ours, theirs = f'vision_encoder.blocks.{i}.', f'vision_model.encoder.layers.{i}.'
        for a, b in (
            ('ln1', 'layer_norm1'),
            ('ln2', 'layer_norm2'),
            ('mlp.fc1', 'mlp.fc1'),
            ('mlp.fc2', 'mlp.fc2'),
            ('attn.out_proj', 'self_attn.out_proj'),
        ):
            for kind in ('weight', 'bias'):
                vision[f'{theirs}{b}.{kind}'] = sd[f'{ours}{a}.{kind}']
        for kind in ('weight', 'bias'):
            q, k, v = sd[f'{ours}attn.qkv_proj.{kind}'].chunk(3)
            for name, t in zip('qkv', (q, k, v)):
                vision[f'{theirs}self_attn.{name}_proj.{kind}'] = t.clone()
    base = cfg.lm_base_vocab_size
    lm = {
        'model.embed_tokens.weight': sd['decoder.token_embedding.weight'][:base],
        'model.norm.weight': sd['decoder.norm.weight'],
    }
    for j in range(cfg.lm_n_blocks):
        ours, theirs = f'decoder.blocks.{j}.', f'model.layers.{j}.'
        for a, b in (
            ('attn.q_proj', 'self_attn.q_proj'),
            ('attn.k_proj', 'self_attn.k_proj'),
            ('attn.v_proj', 'self_attn.v_proj'),
            ('attn.out_proj', 'self_attn.o_proj'),
            ('mlp.gate_proj', 'mlp.gate_proj'),
            ('mlp.up_proj', 'mlp.up_proj'),
            ('mlp.down_proj', 'mlp.down_proj'),
            ('norm1', 'input_layernorm'),
            ('norm2', 'post_attention_layernorm'),
        ):
            lm[f'{theirs}{b}.weight'] = sd[f'{ours}{a}.weight']
    vdir, ldir = root / 'siglip2', root / 'smollm2'
    vdir.mkdir()
    ldir.mkdir()
    save_file({k: v.contiguous().clone() for k, v in vision.items()}, vdir / 'model.safetensors')
    save_file(
        {k: v.to(torch.bfloat16).contiguous().clone() for k, v in lm.items()},
        ldir / 'model.safetensors',
    )
    (vdir / 'config.json').write_text(
        json.dumps(
            {
                'model_type': 'siglip',
                'vision_config': {
                    'hidden_size': cfg.vit_hidden_dim,
                    'intermediate_size': cfg.vit_inter_dim,
                    'num_hidden_layers': cfg.vit_n_blocks,
                    'num_attention_heads': cfg.vit_n_heads,
                    'image_size': cfg.vit_img_size,
                    'patch_size': cfg.vit_patch_size,
                },
            }
        )
    )
    (ldir / 'config.json').write_text(
        json.dumps(
            {
                'hidden_size': cfg.lm_hidden_dim,
                'intermediate_size': cfg.lm_inter_dim,
                'num_hidden_layers': cfg.lm_n_blocks,
                'num_attention_heads': cfg.lm_n_heads,
                'num_key_value_heads': cfg.lm_n_kv_heads,
                'rms_norm_eps': cfg.lm_rms_eps,
                'rope_theta': cfg.lm_re_base,
                'max_position_embeddings': 512,
                'vocab_size': base,
                'tie_word_embeddings': True,
                'hidden_act': 'silu',
            }
        )
    )
    return vdir, ldir


def test_from_backbones_maps_every_tensor(tiny_model: SmolRGPT, tmp_path: Path) -> None:
    vdir, ldir = hf_backbone_dirs(tiny_model, tmp_path)
    model = SmolRGPT.from_backbones(vdir, ldir)
    cfg = tiny_model.cfg
    assert dataclasses.replace(
        model.cfg, vit_model_type='', lm_model_type='', lm_tokenizer=''
    ) == dataclasses.replace(cfg, vit_model_type='', lm_model_type='', lm_tokenizer='')
    ours, theirs = model.state_dict(), tiny_model.state_dict()
    for k, v in theirs.items():
        if k.startswith('vision_encoder.'):
            assert torch.equal(ours[k], v), k
        elif k == 'decoder.rotary_embd.inv_freq':
            assert torch.equal(ours[k], v)  # computed from rope_theta, not read
        elif k.startswith('decoder.') and k not in (
            'decoder.head.weight',
            'decoder.token_embedding.weight',
        ):
            assert torch.equal(ours[k], v.to(torch.bfloat16).float()), k
    base = cfg.lm_base_vocab_size
    emb = model.decoder.token_embedding.weight
    assert torch.equal(
        emb[:base], theirs['decoder.token_embedding.weight'][:base].to(torch.bfloat16).float()
    )
    assert 0.005 < emb[base:].std() < 0.05  # new special-token rows: N(0, 0.02)
    assert model.decoder.head.weight is emb


def test_from_backbones_reports_missing_tensors(tiny_model: SmolRGPT, tmp_path: Path) -> None:
    vdir, ldir = hf_backbone_dirs(tiny_model, tmp_path)
    tensors = load_file(vdir / 'model.safetensors')
    del tensors['vision_model.encoder.layers.1.self_attn.k_proj.bias']
    save_file(tensors, vdir / 'model.safetensors')
    with pytest.raises(CheckpointError, match=r'layers\.1\.self_attn\.k_proj\.bias'):
        SmolRGPT.from_backbones(vdir, ldir)


def test_tiny_config_keeps_the_real_structure() -> None:
    cfg = make_tiny_config()
    with torch.device('meta'):
        model = SmolRGPT(cfg)
    names = {k.split('.')[0] for k in model.state_dict()}
    assert names == {'vision_encoder', 'decoder', 'MP', 'MP_depth', 'rgb_refiner', 'depth_refiner'}
    assert model.rgb_refiner.refiner[0].in_channels == cfg.lm_hidden_dim
