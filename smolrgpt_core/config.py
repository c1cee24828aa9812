"""SmolRGPTConfig: the architecture of the model, read from and written to ``config.json``.

The field names, order and meaning follow the official checkpoints' ``config.json`` (the
reference writes ``asdict(config)``), so a file written here loads in the reference code and an
official file loads here unchanged. The defaults are the *full-size* values those checkpoints
actually hold (SigLIP2-B/16 at 256 px + SmolLM2-360M-Instruct), not the 135M defaults of the
reference dataclass.

Values that follow from others are properties, never stored twice: ``lm_vocab_size`` (base +
extra tokens; still written to ``config.json`` because the reference needs the key), the head
dims, the patch grid and the refined mask grid. The ``depth_*`` fields and
``prompt_region_labels`` are ours: old files lack them and get the defaults, which reproduce the
reference pipeline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
import logging
import math
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# The reference's custom template: no default system prompt, ChatML turns, optional
# generation prompt. Stored in config.json for the reference; we render it in tokens.py.
CHAT_TEMPLATE = (
    '{% for message in messages %}'
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    '{% endfor %}'
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

EXTRA_TOKENS = {
    'image_token': '<|image|>',
    'mask_rgb_token': '<mask_rgb>',
    'mask_depth_token': '<mask_depth>',
}

STAGES = ('connector_alignment', 'refiner_alignment', 'sft', 'mixed')
DEPTH_INPUTS = ('image', 'metric')
DEPTH_PIPELINES = ('train', 'rgb')

# Keys the reference writes that are derived here: read (and checked), not stored.
_DERIVED_KEYS = ('lm_vocab_size',)
# Our own fields, unknown to the reference. They are written only when they differ from the
# default, so a default config.json has exactly the official keys and loads in the reference
# code (which builds its dataclass with ``VLMConfig(**json)`` and fails on unknown keys).
PRODUCT_FIELDS = (
    'region_refiner_depth',
    'depth_input',
    'depth_pipeline',
    'depth_min_m',
    'depth_max_m',
    'depth_near_is_dark',
    'depth_invalid_value',
    'prompt_region_labels',
)

# Bounds on what a config may ask for: generous (10x and more the official sizes) but finite,
# so a corrupt or hostile config.json is refused here instead of allocating a model.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    'vit_hidden_dim': (1, 1 << 16),
    'vit_inter_dim': (1, 1 << 18),
    'vit_patch_size': (1, 1024),
    'vit_img_size': (1, 4096),
    'vit_n_heads': (1, 1024),
    'vit_n_blocks': (1, 1024),
    'lm_hidden_dim': (1, 1 << 16),
    'lm_inter_dim': (1, 1 << 18),
    'lm_max_position_embeddings': (1, 1 << 24),
    'lm_base_vocab_size': (1, 1 << 22),
    'extra_token_amount': (0, 1 << 10),
    'lm_n_heads': (1, 1024),
    'lm_n_kv_heads': (1, 1024),
    'lm_n_blocks': (1, 1024),
    'lm_max_length': (1, 1 << 24),
    'lm_eos_token_id': (0, 1 << 22),
    'mp_pixel_shuffle_factor': (1, 64),
    'mp_image_token_length': (1, 1 << 16),
    'region_refiner_depth': (1, 8),
    'depth_invalid_value': (0, 255),
}
POSITIVE_FLOATS = ('vit_ln_eps', 'lm_rms_eps', 'lm_re_base', 'lm_attn_scaling')
DROPOUTS = ('vit_dropout', 'lm_dropout')
MAX_VIT_GRID = 256  # patches per side
MAX_MASK_GRID = 1024  # refined feature map side
MAX_PARAMETERS = 20_000_000_000


@dataclass
class SmolRGPTConfig:
    # vision encoder (SigLIP2-B/16, 256 px)
    vit_hidden_dim: int = 768
    vit_inter_dim: int = 3072
    vit_patch_size: int = 16
    vit_img_size: int = 256
    vit_n_heads: int = 12
    vit_dropout: float = 0.0
    vit_n_blocks: int = 12
    vit_ln_eps: float = 1e-6
    vit_cls_flag: bool = False
    vit_model_type: str = 'google/siglip2-base-patch16-256'
    # language model (SmolLM2-360M-Instruct)
    lm_hidden_dim: int = 960
    lm_inter_dim: int = 2560
    lm_rms_eps: float = 1e-5
    lm_re_base: float = 100000
    lm_max_position_embeddings: int = 8192
    lm_base_vocab_size: int = 49152
    extra_token_amount: int = 3
    lm_n_heads: int = 15
    lm_n_kv_heads: int = 5
    lm_dropout: float = 0.0
    lm_n_blocks: int = 32
    lm_attn_scaling: float = 1.0
    lm_max_length: int = 512
    lm_use_tokens: bool = False
    lm_tie_weights: bool = True
    lm_model_type: str = 'HuggingFaceTB/SmolLM2-360M-Instruct'
    lm_tokenizer: str = 'HuggingFaceTB/SmolLM2-360M-Instruct'
    lm_chat_template: str = CHAT_TEMPLATE
    # Unused by the reference's generation (the tokenizer's EOS, id 2, is the real one); kept
    # only so the file round-trips.
    lm_eos_token_id: int = 0
    # modality projector
    mp_pixel_shuffle_factor: int = 2
    mp_image_token_length: int = 64
    # VLM bookkeeping written by the reference
    vlm_extra_tokens: dict[str, str] = field(default_factory=lambda: dict(EXTRA_TOKENS))
    vlm_load_backbone_weights: bool = True
    vlm_restore_previous_state: bool = True
    vlm_checkpoint_path: str = 'checkpoints/vlm_checkpoints'
    hf_repo_name: str | None = None
    stage: str = 'connector_alignment'
    # ours: region refiner depth (number of stride-2 transposed convs; 3 -> 8x upsampling)
    region_refiner_depth: int = 3
    # ours: how depth frames become the ViT's 3-channel input (see preprocess.py).
    # 'image': an 8-bit depth image as in the training data; 'metric': uint16 millimetres or
    # float metres, mapped to 8 bits with the range and polarity below.
    depth_input: str = 'image'
    # 'train': nearest resize to [0, 1] (reference training); 'rgb': the reference's
    # test-time quirk of sending depth through the RGB pipeline (bilinear, [-1, 1]).
    depth_pipeline: str = 'train'
    depth_min_m: float = 0.0
    depth_max_m: float = 20.0
    depth_near_is_dark: bool = True
    depth_invalid_value: int = 0
    # ours: write each region reference of a prompt as '[Region k] <mask_rgb><mask_depth>'
    # (k = its place in the question, the name the answers use) instead of the bare pair. Off
    # for the official checkpoints; a decoder trained from scratch has no pretrained way to
    # tell the k-th of several identical placeholders apart, and mcq/count answers name them.
    prompt_region_labels: bool = False

    def __post_init__(self) -> None:
        # the form read from a file, written back unchanged (see to_dict)
        self._stage_as_read: list[str] | None = None
        # types and ranges first: every check below does arithmetic on the sizes
        for f in dataclasses.fields(self):
            _check_type(f.name, f.type, getattr(self, f.name))
        _check_ranges(self)
        if isinstance(self.stage, (list, tuple)):
            # The reference dataclass default is accidentally a 1-tuple; JSON turns it into a
            # one-element list. Note that the reference compares it unequal to every stage
            # name and therefore froze such a model as 'sft'.
            logger.warning(
                'config stage is a sequence %r; using its first element (the '
                'reference code treated it as "sft")',
                self.stage,
            )
            if len(self.stage) != 1:
                raise ValueError(f'stage must be a string or a 1-element list, got {self.stage!r}')
            self._stage_as_read = [str(self.stage[0])]
            self.stage = str(self.stage[0])
        if self.stage not in STAGES:
            raise ValueError(f'stage must be one of {STAGES}, got {self.stage!r}')
        if self.vit_cls_flag:
            raise ValueError(
                'vit_cls_flag=True is not used by any SmolRGPT checkpoint and is not supported'
            )
        if self.vit_hidden_dim % self.vit_n_heads:
            raise ValueError(
                f'vit_hidden_dim {self.vit_hidden_dim} is not divisible by '
                f'vit_n_heads {self.vit_n_heads}'
            )
        if self.lm_hidden_dim % self.lm_n_heads:
            raise ValueError(
                f'lm_hidden_dim {self.lm_hidden_dim} is not divisible by '
                f'lm_n_heads {self.lm_n_heads}'
            )
        if self.lm_n_heads % self.lm_n_kv_heads:
            raise ValueError(
                f'lm_n_heads {self.lm_n_heads} is not a multiple of '
                f'lm_n_kv_heads {self.lm_n_kv_heads}'
            )
        if self.lm_head_dim % 2:
            raise ValueError(f'RoPE needs an even head dim, got {self.lm_head_dim}')
        if self.vit_img_size % self.vit_patch_size:
            raise ValueError(
                f'vit_img_size {self.vit_img_size} is not a multiple of '
                f'vit_patch_size {self.vit_patch_size}'
            )
        if self.vit_grid > MAX_VIT_GRID:
            raise ValueError(
                f'vit_img_size / vit_patch_size gives a {self.vit_grid}x{self.vit_grid} patch '
                f'grid; at most {MAX_VIT_GRID}x{MAX_VIT_GRID} is supported'
            )
        if self.vit_grid % self.mp_pixel_shuffle_factor:
            raise ValueError(
                f'the {self.vit_grid}x{self.vit_grid} patch grid is not divisible '
                f'by mp_pixel_shuffle_factor {self.mp_pixel_shuffle_factor}'
            )
        if self.mp_image_token_length != self.image_grid**2:
            raise ValueError(
                f'mp_image_token_length {self.mp_image_token_length} does not '
                f'match the {self.image_grid}x{self.image_grid} token grid'
            )
        if self.extra_token_amount != len(self.vlm_extra_tokens):
            raise ValueError(
                f'extra_token_amount {self.extra_token_amount} does not match '
                f'vlm_extra_tokens {self.vlm_extra_tokens}'
            )
        if set(self.vlm_extra_tokens) != set(EXTRA_TOKENS):
            raise ValueError(
                f'vlm_extra_tokens must have the keys {sorted(EXTRA_TOKENS)}, '
                f'got {sorted(self.vlm_extra_tokens)}'
            )
        tokens = list(self.vlm_extra_tokens.values())
        if '' in tokens or len(set(tokens)) != len(tokens):
            raise ValueError(f'vlm_extra_tokens must be distinct non-empty strings, got {tokens}')
        if self.depth_input not in DEPTH_INPUTS:
            raise ValueError(
                f'depth_input must be one of {DEPTH_INPUTS}, got {self.depth_input!r}'
            )
        if self.depth_pipeline not in DEPTH_PIPELINES:
            raise ValueError(
                f'depth_pipeline must be one of {DEPTH_PIPELINES}, got {self.depth_pipeline!r}'
            )
        if not (
            math.isfinite(self.depth_min_m)
            and math.isfinite(self.depth_max_m)
            and 0.0 <= self.depth_min_m < self.depth_max_m
        ):
            raise ValueError(
                f'need 0 <= depth_min_m < depth_max_m, got {self.depth_min_m}, {self.depth_max_m}'
            )
        if self.mask_grid > MAX_MASK_GRID:
            raise ValueError(
                f'the refined mask grid is {self.mask_grid}x{self.mask_grid} (image grid '
                f'{self.image_grid} x 2**region_refiner_depth); at most '
                f'{MAX_MASK_GRID}x{MAX_MASK_GRID} is supported'
            )
        if self.parameter_count() > MAX_PARAMETERS:
            raise ValueError(
                f'the sizes imply {self.parameter_count() / 1e9:.1f} billion parameters, '
                f'more than the {MAX_PARAMETERS / 1e9:.0f} billion a checkpoint may hold'
            )

    # derived sizes ----------------------------------------------------------------------
    def parameter_count(self) -> int:
        """Parameters of a model of these sizes (the tied embedding/head counted once),
        computed without building it; equal to ``SmolRGPT(cfg).num_parameters()``."""
        dv, iv, p = self.vit_hidden_dim, self.vit_inter_dim, self.vit_patch_size
        # per block: 2 LayerNorms, fused qkv + out projection, the MLP (all with biases)
        vit_block = 4 * dv + 4 * dv * dv + 4 * dv + 2 * dv * iv + iv + dv
        vision = self.vit_n_patches * dv + 3 * p * p * dv + dv + 2 * dv
        d, i = self.lm_hidden_dim, self.lm_inter_dim
        kv = self.lm_n_kv_heads * self.lm_head_dim
        # per block: q, out (D x D), k, v (D x kv), the SwiGLU MLP, 2 RMSNorms
        lm_block = 2 * d * d + 2 * d * kv + 3 * d * i + 2 * d
        decoder = self.lm_vocab_size * d + d + self.lm_n_blocks * lm_block
        projector = dv * self.mp_pixel_shuffle_factor**2 * d
        # ConvTranspose2d(D, D, 2, 2) per stage, a LayerNorm2d between stages
        refiner = (
            self.region_refiner_depth * (4 * d * d + d) + (self.region_refiner_depth - 1) * 2 * d
        )
        return vision + self.vit_n_blocks * vit_block + decoder + 2 * projector + 2 * refiner

    @property
    def lm_vocab_size(self) -> int:
        return self.lm_base_vocab_size + self.extra_token_amount

    @property
    def lm_head_dim(self) -> int:
        return self.lm_hidden_dim // self.lm_n_heads

    @property
    def vit_head_dim(self) -> int:
        return self.vit_hidden_dim // self.vit_n_heads

    @property
    def vit_grid(self) -> int:
        """Patches per side (16 for 256 px / 16 px patches)."""
        return self.vit_img_size // self.vit_patch_size

    @property
    def vit_n_patches(self) -> int:
        return self.vit_grid**2

    @property
    def image_grid(self) -> int:
        """Image tokens per side after the pixel shuffle (8)."""
        return self.vit_grid // self.mp_pixel_shuffle_factor

    @property
    def region_width(self) -> int:
        """Refiner channels: the refiners work in LM space, after the projector."""
        return self.lm_hidden_dim

    @property
    def mask_grid(self) -> int:
        """Side of the refined feature map on which masks are pooled (64)."""
        return self.image_grid * 2**self.region_refiner_depth

    @property
    def image_token(self) -> str:
        return self.vlm_extra_tokens['image_token']

    @property
    def mask_rgb_token(self) -> str:
        return self.vlm_extra_tokens['mask_rgb_token']

    @property
    def mask_depth_token(self) -> str:
        return self.vlm_extra_tokens['mask_depth_token']

    @property
    def image_token_id(self) -> int:
        return self.lm_base_vocab_size + list(self.vlm_extra_tokens).index('image_token')

    @property
    def mask_rgb_token_id(self) -> int:
        return self.lm_base_vocab_size + list(self.vlm_extra_tokens).index('mask_rgb_token')

    @property
    def mask_depth_token_id(self) -> int:
        return self.lm_base_vocab_size + list(self.vlm_extra_tokens).index('mask_depth_token')

    # (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Official key order, with the derived ``lm_vocab_size`` in its official place.

        Product-only fields appear only when they differ from their defaults.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in PRODUCT_FIELDS and value == f.default:
                continue
            if f.name == 'stage' and self._stage_as_read == [value]:
                # keep the list so the reference reloads the file with the same behaviour
                value = list(self._stage_as_read)
            out[f.name] = value
            if f.name == 'extra_token_amount':
                out['lm_vocab_size'] = self.lm_vocab_size
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmolRGPTConfig:
        """Raises ValueError naming the field for anything of the wrong type or size."""
        if not isinstance(data, dict):
            raise ValueError(f'a config must be a JSON object, got {json_kind(data)}')
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - set(_DERIVED_KEYS))
        if unknown:
            logger.warning('ignoring unknown config keys: %s', ', '.join(unknown))
        missing = sorted(known - set(data))
        if missing:
            logger.info('config keys missing, using defaults: %s', ', '.join(missing))
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        if 'lm_vocab_size' in data:
            _check_type('lm_vocab_size', 'int', data['lm_vocab_size'])
        if 'lm_vocab_size' in data and data['lm_vocab_size'] != cfg.lm_vocab_size:
            raise ValueError(
                f'config lm_vocab_size {data["lm_vocab_size"]} != '
                f'lm_base_vocab_size + extra_token_amount = {cfg.lm_vocab_size}'
            )
        return cfg

    @classmethod
    def from_json(cls, path: str | Path) -> SmolRGPTConfig:
        """Read and check a config.json; a ``CheckpointError`` (a ValueError) names the file
        and the problem."""
        from smolrgpt_core.checkpoint import read_config  # it imports this module

        return read_config(path)

    def to_json(self, path: str | Path) -> None:
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.to_dict(), f, indent=4)


# --- validation helpers -----------------------------------------------------------------


def json_kind(value: object) -> str:
    """'an integer', 'a list', ...: the JSON kind of a parsed value, for messages."""
    kinds = {bool: 'a boolean', int: 'an integer', float: 'a number', str: 'a string'}
    kinds.update({list: 'a list', tuple: 'a list', dict: 'an object', type(None): 'null'})
    return kinds.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    """A value as the user wrote it in config.json (JSON spelling), shortened."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str_dict(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _is_stage(value: object) -> bool:
    # a stage name, or the reference's accidental 1-tuple as JSON turns it into a list
    return isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    )


# field annotation (a string under ``from __future__ import annotations``) -> check, wording
_TYPE_CHECKS = {
    'int': (_is_int, 'an integer'),
    'float': (_is_number, 'a number'),
    'bool': (lambda v: isinstance(v, bool), 'true or false'),
    'str': (lambda v: isinstance(v, str), 'a string'),
    'str | None': (lambda v: v is None or isinstance(v, str), 'a string or null'),
    'dict[str, str]': (_is_str_dict, 'an object of strings'),
    'stage': (_is_stage, 'a string'),
}


def _check_type(name: str, annotation: object, value: object) -> None:
    check, wanted = _TYPE_CHECKS['stage' if name == 'stage' else str(annotation)]
    if not check(value):
        raise ValueError(f'{name} must be {wanted}, got {_show(value)}')


def _check_ranges(cfg: SmolRGPTConfig) -> None:
    for name, (low, high) in INT_BOUNDS.items():
        value = getattr(cfg, name)
        if value < low:
            raise ValueError(f'{name} must be >= {low}, got {value}')
        if value > high:
            raise ValueError(f'{name} must be <= {high}, got {value}')
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.type == 'float' and not math.isfinite(value):
            raise ValueError(f'{f.name} must be a finite number, got {_show(value)}')
    for name in POSITIVE_FLOATS:
        if getattr(cfg, name) <= 0:
            raise ValueError(f'{name} must be > 0, got {getattr(cfg, name)}')
    for name in DROPOUTS:
        if not 0 <= getattr(cfg, name) < 1:
            raise ValueError(f'{name} must be in [0, 1), got {getattr(cfg, name)}')


_unchecked = {f.type for f in dataclasses.fields(SmolRGPTConfig)} - set(_TYPE_CHECKS)
if _unchecked:  # a new field of a new type needs its check above
    raise TypeError(f'SmolRGPTConfig has fields of unchecked types {sorted(_unchecked)}')
