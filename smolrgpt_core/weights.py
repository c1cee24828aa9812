"""Checkpoints: official-format save/load and stage-1 initialisation from HF backbones.

Official format (what the reference's ``safetensors.torch.save_model`` writes): a directory
with ``config.json`` and ``model.safetensors``; float32 tensors named exactly as our
``state_dict()``, except that of the tied pair only ``decoder.head.weight`` is stored and the
header metadata maps ``decoder.token_embedding.weight`` to it. ``decoder.rotary_embd.inv_freq``
is stored (deterministic, accepted either way).

Loading is a strict match of names, shapes and (floating-point) dtypes, checked on the
safetensors header before any tensor is read; every problem is a ``CheckpointError``
(checkpoint.py) naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
import torch

from smolrgpt_core.checkpoint import (
    CONFIG_NAME,
    MAX_CONFIG_BYTES,
    WEIGHTS_NAME,
    CheckpointError,
    read_config,
    read_json_object,
    read_safetensors_header,
    resolve_checkpoint,
    resolve_dir,
)
from smolrgpt_core.config import SmolRGPTConfig

if TYPE_CHECKING:
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT

__all__ = ['CONFIG_NAME', 'WEIGHTS_NAME', 'CheckpointError', 'resolve_dir']

logger = logging.getLogger(__name__)

EMBEDDING_KEY = 'decoder.token_embedding.weight'
HEAD_KEY = 'decoder.head.weight'
INV_FREQ_KEY = 'decoder.rotary_embd.inv_freq'
# the only metadata the reference's save_model writes: the dropped alias -> the kept name
TIED_METADATA = {EMBEDDING_KEY: HEAD_KEY}
# dtypes a checkpoint may store (cast to the requested dtype after loading)
FLOAT_DTYPES = {
    torch.float32: 'F32',
    torch.float16: 'F16',
    torch.bfloat16: 'BF16',
    torch.float64: 'F64',
}


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ', '.join(names[:limit])
    return shown + (f', ... ({len(names) - limit} more)' if len(names) > limit else '')


def fit_problems(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[str, tuple[int, ...]]]
) -> list[str]:
    """What keeps tensors ``found`` (name -> safetensors dtype, shape) from loading into a
    model with ``expected`` (name -> shape), with the official file's two tolerances: either
    name of the tied embedding/head pair, and an absent ``inv_freq``."""
    found = dict(found)
    if HEAD_KEY in found and EMBEDDING_KEY not in found:
        found[EMBEDDING_KEY] = found[HEAD_KEY]
    elif EMBEDDING_KEY in found and HEAD_KEY not in found:
        found[HEAD_KEY] = found[EMBEDDING_KEY]
    if INV_FREQ_KEY not in found and INV_FREQ_KEY in expected:
        found[INV_FREQ_KEY] = ('F32', expected[INV_FREQ_KEY])
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = sorted(
        f'tensor {k} has shape {list(found[k][1])}, config.json needs {list(shape)}'
        for k, shape in expected.items()
        if k in found and tuple(found[k][1]) != tuple(shape)
    )
    allowed = set(FLOAT_DTYPES.values())
    wrong_dtype = sorted(
        f'tensor {k} has dtype {dtype}' for k, (dtype, _) in found.items() if dtype not in allowed
    )
    problems = []
    if missing:
        problems.append(f'missing tensors {_listing(missing)}')
    if unexpected:
        problems.append(f'unexpected tensors {_listing(unexpected)}')
    problems += mismatched[:5]
    if len(mismatched) > 5:
        problems.append(f'{len(mismatched) - 5} more shape mismatches')
    if wrong_dtype:
        problems.append(
            f'{_listing(wrong_dtype, 5)}, not floating point ({", ".join(sorted(allowed))})'
        )
    return problems


def load_state_dict_checked(
    model: SmolRGPT,
    tensors: dict[str, torch.Tensor],
    *,
    assign: bool = False,
    source: str = 'checkpoint',
) -> None:
    """Strict name/shape/dtype match (see ``fit_problems``); ``source`` names the tensors'
    origin in the error."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {
        k: (FLOAT_DTYPES.get(v.dtype, str(v.dtype)), tuple(v.shape)) for k, v in tensors.items()
    }
    problems = fit_problems(expected, found)
    if problems:
        raise CheckpointError(f'{source}: ' + '; '.join(problems))
    tensors = dict(tensors)
    if EMBEDDING_KEY in tensors and HEAD_KEY in tensors:
        if not torch.equal(tensors[EMBEDDING_KEY], tensors[HEAD_KEY]):
            raise CheckpointError(
                f'{source}: {EMBEDDING_KEY} and {HEAD_KEY} differ, but the model ties them'
            )
    elif HEAD_KEY in tensors:
        tensors[EMBEDDING_KEY] = tensors[HEAD_KEY]
    elif EMBEDDING_KEY in tensors:
        tensors[HEAD_KEY] = tensors[EMBEDDING_KEY]
    if INV_FREQ_KEY not in tensors:
        device = next(iter(tensors.values())).device if tensors else 'cpu'
        with torch.device(device):
            tensors[INV_FREQ_KEY] = type(model.decoder.rotary_embd)(model.cfg).inv_freq
    model.load_state_dict(tensors, strict=True, assign=assign)
    model.decoder.tie_weights()


def load_pretrained(
    cls: type[SmolRGPT],
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = 'cpu',
) -> SmolRGPT:
    """Check config.json and the safetensors header, build on the meta device, then assign
    the file's tensors. ``path``: a directory, or ``hf://org/name[@revision]``."""
    directory = resolve_checkpoint(path)
    cfg = read_config(directory / CONFIG_NAME)
    weights = directory / WEIGHTS_NAME
    header, _ = read_safetensors_header(weights)
    with torch.device('meta'):
        model = cls(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = fit_problems(expected, {k: (t.dtype, t.shape) for k, t in header.items()})
    if problems:
        raise CheckpointError(f'{weights}: ' + '; '.join(problems))
    tensors = _load_tensors(weights, device)
    load_state_dict_checked(model, tensors, assign=True, source=str(weights))
    rope = model.decoder.rotary_embd
    inv_freq = rope.inv_freq  # float32 whatever the model dtype: angles need the precision
    model.to(dtype)
    rope.inv_freq = inv_freq
    model.decoder.tie_weights()
    logger.info('loaded %s (%d tensors)', directory, len(tensors))
    return model.eval()


def _load_tensors(path: Path, device: str | torch.device = 'cpu') -> dict[str, torch.Tensor]:
    """A safetensors file whose header ``read_safetensors_header`` has accepted."""
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError) as exc:  # the file changed since its header was read
        raise CheckpointError(f'{path}: {exc}') from exc


def save_pretrained(model: SmolRGPT, path: str | Path) -> None:
    """Write ``config.json`` + ``model.safetensors`` exactly as the reference would (fp32)."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    model.cfg.to_json(directory / CONFIG_NAME)
    tensors = {
        k: v.detach().to(device='cpu', dtype=torch.float32).contiguous()
        for k, v in model.state_dict().items()
        if k != EMBEDDING_KEY
    }
    save_file(tensors, directory / WEIGHTS_NAME, metadata=dict(TIED_METADATA))
    logger.info('saved %s (%d tensors)', directory, len(tensors))


def read_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(path, framework='pt') as f:
        return dict(f.metadata() or {})


# --- stage-1 initialisation from Hugging Face SigLIP2 + SmolLM2 -------------------------

# HF SiglipVisionConfig / LlamaConfig defaults, for keys a config.json leaves out
_SIGLIP_DEFAULTS = {
    'hidden_size': 768,
    'intermediate_size': 3072,
    'num_hidden_layers': 12,
    'num_attention_heads': 12,
    'image_size': 224,
    'patch_size': 16,
    'layer_norm_eps': 1e-6,
    'attention_dropout': 0.0,
    'hidden_act': 'gelu_pytorch_tanh',
}
_LLAMA_DEFAULTS = {
    'rms_norm_eps': 1e-6,
    'rope_theta': 10000.0,
    'max_position_embeddings': 2048,
    'tie_word_embeddings': False,
    'attention_dropout': 0.0,
    'hidden_act': 'silu',
}

_VIT_LAYER_MAP = {
    'layer_norm1.weight': 'ln1.weight',
    'layer_norm1.bias': 'ln1.bias',
    'layer_norm2.weight': 'ln2.weight',
    'layer_norm2.bias': 'ln2.bias',
    'mlp.fc1.weight': 'mlp.fc1.weight',
    'mlp.fc1.bias': 'mlp.fc1.bias',
    'mlp.fc2.weight': 'mlp.fc2.weight',
    'mlp.fc2.bias': 'mlp.fc2.bias',
    'self_attn.out_proj.weight': 'attn.out_proj.weight',
    'self_attn.out_proj.bias': 'attn.out_proj.bias',
}
_LM_LAYER_MAP = {
    'self_attn.q_proj.weight': 'attn.q_proj.weight',
    'self_attn.k_proj.weight': 'attn.k_proj.weight',
    'self_attn.v_proj.weight': 'attn.v_proj.weight',
    'self_attn.o_proj.weight': 'attn.out_proj.weight',
    'mlp.gate_proj.weight': 'mlp.gate_proj.weight',
    'mlp.up_proj.weight': 'mlp.up_proj.weight',
    'mlp.down_proj.weight': 'mlp.down_proj.weight',
    'input_layernorm.weight': 'norm1.weight',
    'post_attention_layernorm.weight': 'norm2.weight',
}


def backbone_config(
    vision_hf: dict[str, Any], lm_hf: dict[str, Any], base: SmolRGPTConfig | None = None
) -> SmolRGPTConfig:
    """Our config with the ViT/LM fields taken from HF SigLIP and Llama config dicts."""
    vision = {**_SIGLIP_DEFAULTS, **vision_hf.get('vision_config', vision_hf)}
    lm = {**_LLAMA_DEFAULTS, **lm_hf}
    if vision['hidden_act'] != 'gelu_pytorch_tanh':
        raise CheckpointError(f'vision hidden_act {vision["hidden_act"]!r} is not GELU-tanh')
    if lm['hidden_act'] != 'silu' or not lm['tie_word_embeddings']:
        raise CheckpointError('the LM must be a tied-embedding SiLU Llama (like SmolLM2)')
    base = base or SmolRGPTConfig()
    grid = vision['image_size'] // vision['patch_size'] // base.mp_pixel_shuffle_factor
    return dataclasses.replace(
        base,
        mp_image_token_length=grid * grid,
        vit_hidden_dim=vision['hidden_size'],
        vit_inter_dim=vision['intermediate_size'],
        vit_patch_size=vision['patch_size'],
        vit_img_size=vision['image_size'],
        vit_n_heads=vision['num_attention_heads'],
        vit_n_blocks=vision['num_hidden_layers'],
        vit_ln_eps=vision['layer_norm_eps'],
        vit_dropout=vision['attention_dropout'],
        lm_hidden_dim=lm['hidden_size'],
        lm_inter_dim=lm['intermediate_size'],
        lm_rms_eps=lm['rms_norm_eps'],
        lm_re_base=lm['rope_theta'],
        lm_max_position_embeddings=lm['max_position_embeddings'],
        lm_base_vocab_size=lm['vocab_size'],
        lm_n_heads=lm['num_attention_heads'],
        lm_n_kv_heads=lm.get('num_key_value_heads', lm['num_attention_heads']),
        lm_n_blocks=lm['num_hidden_layers'],
        lm_dropout=lm['attention_dropout'],
    )


def map_vision_weights(hf: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
    """HF SigLIP ``vision_model.*`` tensors -> ours (under ``vision_encoder.``)."""

    def take(key: str) -> torch.Tensor:
        if key not in hf:
            raise CheckpointError(f'vision backbone lacks {key}')
        return hf[key]

    out = {
        'patch_embedding.conv.weight': take('vision_model.embeddings.patch_embedding.weight'),
        'patch_embedding.conv.bias': take('vision_model.embeddings.patch_embedding.bias'),
        # [N, D] table -> [1, N, D] parameter
        'patch_embedding.position_embedding': take(
            'vision_model.embeddings.position_embedding.weight'
        )[None],
        'layer_norm.weight': take('vision_model.post_layernorm.weight'),
        'layer_norm.bias': take('vision_model.post_layernorm.bias'),
    }
    for i in range(n_blocks):
        src = f'vision_model.encoder.layers.{i}.'
        for theirs, ours in _VIT_LAYER_MAP.items():
            out[f'blocks.{i}.{ours}'] = take(src + theirs)
        for kind in ('weight', 'bias'):
            # fused projection: q rows, then k, then v
            out[f'blocks.{i}.attn.qkv_proj.{kind}'] = torch.cat(
                [take(f'{src}self_attn.{p}_proj.{kind}') for p in 'qkv']
            )
    return {f'vision_encoder.{k}': v for k, v in out.items()}


def map_lm_weights(
    hf: dict[str, torch.Tensor], n_blocks: int, embedding: torch.Tensor
) -> dict[str, torch.Tensor]:
    """HF Llama tensors -> ours (under ``decoder.``). ``embedding`` is our [V, D] table,
    whose rows past the HF vocabulary (the new special tokens) are kept as initialised."""

    def take(key: str) -> torch.Tensor:
        if key not in hf:
            raise CheckpointError(f'LM backbone lacks {key}')
        return hf[key]

    hf_embedding = take('model.embed_tokens.weight')
    if hf_embedding.shape[1] != embedding.shape[1] or hf_embedding.shape[0] > embedding.shape[0]:
        raise CheckpointError(
            f'LM embedding {list(hf_embedding.shape)} does not fit ours {list(embedding.shape)}'
        )
    table = embedding.detach().clone()
    table[: hf_embedding.shape[0]] = hf_embedding.to(table.dtype)
    out = {'token_embedding.weight': table, 'norm.weight': take('model.norm.weight')}
    for j in range(n_blocks):
        for theirs, ours in _LM_LAYER_MAP.items():
            out[f'blocks.{j}.{ours}'] = take(f'model.layers.{j}.{theirs}')
    return {f'decoder.{k}': v for k, v in out.items()}


def load_backbones(
    cls: type[SmolRGPT],
    vision_dir: str | Path,
    lm_dir: str | Path,
    cfg: SmolRGPTConfig | None = None,
) -> SmolRGPT:
    """Stage-1 model: SigLIP2 ViT + SmolLM2 decoder, projectors/refiners freshly initialised."""
    vdir = resolve_dir(vision_dir, [CONFIG_NAME, WEIGHTS_NAME])
    ldir = resolve_dir(lm_dir, [CONFIG_NAME, WEIGHTS_NAME])
    vision_json = read_json_object(vdir / CONFIG_NAME, MAX_CONFIG_BYTES)
    lm_json = read_json_object(ldir / CONFIG_NAME, MAX_CONFIG_BYTES)
    try:
        cfg = backbone_config(vision_json, lm_json, cfg)
    except KeyError as exc:
        raise CheckpointError(
            f'{vdir / CONFIG_NAME} or {ldir / CONFIG_NAME}: no {exc.args[0]!r} key'
        ) from exc
    except ValueError as exc:
        raise CheckpointError(f'{vdir / CONFIG_NAME} or {ldir / CONFIG_NAME}: {exc}') from exc
    cfg = dataclasses.replace(
        cfg, vit_model_type=str(vision_dir), lm_model_type=str(lm_dir), lm_tokenizer=str(lm_dir)
    )
    for directory in (vdir, ldir):
        read_safetensors_header(directory / WEIGHTS_NAME)
    model = cls(cfg)
    vision = map_vision_weights(_load_tensors(vdir / WEIGHTS_NAME), cfg.vit_n_blocks)
    lm = map_lm_weights(
        _load_tensors(ldir / WEIGHTS_NAME), cfg.lm_n_blocks, model.decoder.token_embedding.weight
    )
    state = model.state_dict()
    targets = sorted(
        k
        for k in state
        if k.startswith(('vision_encoder.', 'decoder.')) and k not in (HEAD_KEY, INV_FREQ_KEY)
    )
    mapped = {**vision, **lm}
    missing = sorted(set(targets) - set(mapped))
    mismatched = [
        f'{k}: {list(v.shape)} vs {list(state[k].shape)}'
        for k, v in mapped.items()
        if v.shape != state[k].shape
    ]
    if missing or mismatched:
        raise CheckpointError(
            f'backbones do not fit: missing {_listing(missing)}; '
            f'shape mismatch {_listing(mismatched)}'
        )
    with torch.no_grad():
        for k, v in mapped.items():
            state[k].copy_(v.to(state[k].dtype))  # bf16 files -> fp32 parameters
    model.decoder.tie_weights()
    logger.info('initialised from backbones %s and %s', vdir, ldir)
    return model
