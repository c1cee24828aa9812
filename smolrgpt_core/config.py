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
        if self.region_refiner_depth < 1:
            raise ValueError('region_refiner_depth must be >= 1')
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
        if not 0 <= self.depth_invalid_value <= 255:
            raise ValueError(
                f'depth_invalid_value must be in 0..255, got {self.depth_invalid_value}'
            )

    # derived sizes ----------------------------------------------------------------------
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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - set(_DERIVED_KEYS))
        if unknown:
            logger.warning('ignoring unknown config keys: %s', ', '.join(unknown))
        missing = sorted(known - set(data))
        if missing:
            logger.info('config keys missing, using defaults: %s', ', '.join(missing))
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        if 'lm_vocab_size' in data and int(data['lm_vocab_size']) != cfg.lm_vocab_size:
            raise ValueError(
                f'config lm_vocab_size {data["lm_vocab_size"]} != '
                f'lm_base_vocab_size + extra_token_amount = {cfg.lm_vocab_size}'
            )
        return cfg

    @classmethod
    def from_json(cls, path: str | Path) -> SmolRGPTConfig:
        with open(path, encoding='utf-8') as f:
            return cls.from_dict(json.load(f))

    def to_json(self, path: str | Path) -> None:
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.to_dict(), f, indent=4)
