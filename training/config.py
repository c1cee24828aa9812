"""TrainConfig: one JSON per stage in training/configs/, every field overridable on the CLI.

The defaults are the reference's (smolrgpt-reference §4.2-4.4); the per-stage files change
only what the stage changes (learning rates, epochs, data). The resolved config is written to
the run directory next to the checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
import json
from pathlib import Path
import typing
from typing import Any

from training.perturb import PRESETS
from training.stages import GROUPS, Stage

CONFIG_DIR = Path(__file__).parent / 'configs'

STAGE_FILES = {
    Stage.CONNECTOR_ALIGNMENT: 'stage1_connector.json',
    Stage.REFINER_ALIGNMENT: 'stage2_refiner.json',
    Stage.SFT: 'stage3_sft.json',
}


def number_in(name: str, value: object, low: float, high: float) -> float:
    """``value`` as a float when it is a number in [low, high] (NaN and bools are not),
    else ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f'{name} must be a number in [{low}, {high}], got {value!r}')
    return float(value)


@dataclass
class TrainConfig:
    stage: str = 'sft'
    # model initialisation: a previous stage's checkpoint, or a fresh model from a config
    last_stage_checkpoint: str | None = None
    model_config: str | None = None  # SmolRGPTConfig JSON for a fresh model
    tokenizer: str | None = None  # dir with tokenizer.json (default: the checkpoint's)
    vision_backbone: str | None = None  # HF SigLIP2 dir (fresh model, reference stage I)
    lm_backbone: str | None = None  # HF SmolLM2 dir
    unfreeze: list[str] = field(default_factory=list)  # extra trainable name prefixes
    freeze: list[str] = field(default_factory=list)  # name prefixes kept fixed this run
    # fresh models only: start the ViT's (zero-initialised) position embeddings from a 2D
    # sin-cos table, as MAE does, so a ViT trained from scratch knows where each patch is
    vit_sincos_positions: bool = False
    # wavelength base of that table: MAE's 10000 suits 14x14 grids and larger; a small grid
    # needs a small base, or most x/y channels are nearly constant over the image
    vit_sincos_base: float = 10000.0
    # fresh models only: start every refiner transposed conv with its 2x2 kernel taps equal
    # (nearest-neighbour upsampling then a 1x1 conv, "ICNR"), so the refined map starts as a
    # smooth copy of the token map instead of a checkerboard that drowns where a region is
    refiner_nearest_init: bool = False
    # switch the model's '[Region k]' prompt labels on (or off) from this run on, saved in the
    # checkpoint's config.json; None keeps the starting model's setting. A recipe can then
    # learn where regions are without labels and which one to name with them
    prompt_region_labels: bool | None = None
    # data
    data_root: str | None = None
    datasets: list[str] = field(default_factory=list)  # empty = the stage's default kinds
    max_train_samples: int = 0  # 0 = all
    max_val_samples: int = 512
    max_length: int = 512  # longer samples are dropped (and counted), never silently cut
    # training examples of a category seen this many times per epoch (e.g. {"left_right": 3}),
    # for a category whose answer hinges on one token and trails the others
    category_repeats: dict[str, int] = field(default_factory=dict)
    # batches draw runs of up to this many examples of one image, so the vision side runs
    # once per image for all of them (1 = every example drawn on its own, as the reference)
    examples_per_image: int = 1
    # loss weight of the answer tokens the official metric reads (the side, the count, the
    # metres, the chosen region: ``training.deciding``) against 1 for the other answer tokens;
    # 1 = the reference's plain mean over answer tokens
    deciding_token_weight: float = 1.0
    # train on what a robot's sensors deliver: a ``training.perturb`` preset ('realistic':
    # range noise and holes in the millimetre depth, masks eroded or dilated, a missed
    # region) applied to an image's depth and masks with probability ``sensor_noise_p``, a
    # fresh draw every epoch; needs a metric-depth model (the noise is in millimetres)
    sensor_noise: str = 'none'
    sensor_noise_p: float = 0.5
    # optimisation (reference defaults)
    batch_size: int = 14  # per process
    grad_accum: int = 4
    epochs: int = 20
    max_steps: int = 0  # > 0 caps the optimizer steps (and sets the schedule's length)
    lr: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 5e-5))
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1
    seed: int = 0
    num_workers: int = 0
    # bookkeeping
    output_dir: str = 'runs/sft'
    eval_interval: int = 500  # optimizer steps; 0 = only at the end
    save_interval: int = 1000  # optimizer steps; the final model is always saved
    keep_checkpoints: int = 2
    log_interval: int = 10
    tensorboard: bool = True
    progress: bool = True
    device: str = 'auto'  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0 = torch's default

    def __post_init__(self) -> None:
        Stage(self.stage)  # raises ValueError on an unknown stage
        unknown = sorted(set(self.lr) - set(GROUPS))
        if unknown:
            raise ValueError(f'lr has unknown groups {unknown}; expected {list(GROUPS)}')
        self.lr = {g: float(self.lr.get(g, 5e-5)) for g in GROUPS}
        if self.batch_size < 1 or self.grad_accum < 1 or self.examples_per_image < 1:
            raise ValueError('batch_size, grad_accum and examples_per_image must be >= 1')
        bad = {
            c: n
            for c, n in self.category_repeats.items()
            if not isinstance(n, int) or isinstance(n, bool) or n < 1
        }
        if bad:
            raise ValueError(
                f'category_repeats must map categories to whole numbers >= 1, got {bad}'
            )
        self.deciding_token_weight = number_in(
            'deciding_token_weight', self.deciding_token_weight, 1, 100
        )
        if self.sensor_noise not in PRESETS:
            raise ValueError(
                f'sensor_noise must be one of {", ".join(PRESETS)}, got {self.sensor_noise!r}'
            )
        self.sensor_noise_p = number_in('sensor_noise_p', self.sensor_noise_p, 0, 1)
        if not (self.prompt_region_labels is None or isinstance(self.prompt_region_labels, bool)):
            raise ValueError(
                'prompt_region_labels must be true, false or null, '
                f'got {self.prompt_region_labels!r}'
            )
        if self.vit_sincos_base <= 1:
            raise ValueError(f'vit_sincos_base must be > 1, got {self.vit_sincos_base}')

    @classmethod
    def from_json(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        data = json.loads(Path(path).read_text(encoding='utf-8'))
        data.pop('_comment', None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'{path}: unknown TrainConfig keys {unknown}')
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    @classmethod
    def for_stage(
        cls, stage: str, path: str | Path | None = None, **overrides: Any
    ) -> TrainConfig:
        """The stage's JSON (or ``path``), with ``overrides``; the given stage always wins."""
        path = path or CONFIG_DIR / STAGE_FILES[Stage(stage)]
        return cls.from_json(path, **{**overrides, 'stage': stage})

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(dataclasses.asdict(self), indent=2) + '\n', encoding='utf-8'
        )


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--field`` flag per TrainConfig field (both dash and underscore spellings)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ('stage', 'lr', 'category_repeats'):
            continue
        flags = [f'--{f.name.replace("_", "-")}']
        if '_' in f.name:
            flags.append(f'--{f.name}')  # the upstream spelling (--last_stage_checkpoint)
        hint = hints[f.name]
        kwargs: dict[str, Any] = {'dest': f.name, 'default': None}
        if hint is bool or hint == bool | None:
            kwargs['action'] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is list:
            kwargs['nargs'] = '+'
        else:
            base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
            kwargs['type'] = base
        parser.add_argument(*flags, **kwargs)
    parser.add_argument(
        '--lr',
        dest='lr_overrides',
        nargs='+',
        metavar='GROUP=LR',
        default=None,
        help=f'per-group peak learning rates, groups: {", ".join(GROUPS)}',
    )
    parser.add_argument(
        '--category-repeats',
        '--category_repeats',
        dest='category_repeats',
        nargs='+',
        metavar='CATEGORY=N',
        default=None,
        help='see each training example of CATEGORY N times per epoch',
    )


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    out = {
        f.name: getattr(args, f.name, None)
        for f in dataclasses.fields(TrainConfig)
        if f.name not in ('stage', 'lr', 'category_repeats')
    }
    if getattr(args, 'category_repeats', None):
        out['category_repeats'] = parse_category_repeats(args.category_repeats)
    return {k: v for k, v in out.items() if v is not None}


def parse_category_repeats(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        category, _, value = item.partition('=')
        if not category or not value.isdigit():
            raise ValueError(f'--category-repeats expects CATEGORY=N, got {item!r}')
        out[category] = int(value)
    return out


def apply_lr_overrides(cfg: TrainConfig, items: list[str] | None) -> None:
    for item in items or []:
        group, _, value = item.partition('=')
        if group not in GROUPS or not value:
            raise ValueError(f'--lr expects GROUP=LR with GROUP in {list(GROUPS)}, got {item!r}')
        cfg.lr[group] = float(value)
