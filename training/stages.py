"""The three training stages: what trains, at which learning rate, on which data.

One table instead of if/elif chains (smolrgpt-reference §1.12 and §4.3). A parameter belongs to
the first prefix group that matches its name; the vision encoder is frozen in every stage
because the reference starts it from a pretrained SigLIP2 and never updates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Stage(str, Enum):
    CONNECTOR_ALIGNMENT = 'connector_alignment'
    REFINER_ALIGNMENT = 'refiner_alignment'
    SFT = 'sft'


# parameter groups of the reference optimizer, in its order (§4.3)
GROUPS: dict[str, tuple[str, ...]] = {
    'MP': ('MP.',),
    'MP_depth': ('MP_depth.',),
    'rgb_refiner': ('rgb_refiner.',),
    'depth_refiner': ('depth_refiner.',),
    'backbones': ('decoder.', 'vision_encoder.'),
}


@dataclass(frozen=True)
class StageSpec:
    stage: Stage
    trainable: tuple[str, ...]  # GROUPS keys that receive gradients
    uses_regions: bool  # depth + masks in the batch (stages II/III); RGB captions otherwise
    generate_kind: str  # `smolrgpt generate --stage` name of its inspection run
    default_data: tuple[str, ...]  # dataset kinds (training/datasets.py) when none are given


STAGES: dict[Stage, StageSpec] = {
    Stage.CONNECTOR_ALIGNMENT: StageSpec(
        Stage.CONNECTOR_ALIGNMENT, ('MP',), False, 'rgb', ('captions',)
    ),
    Stage.REFINER_ALIGNMENT: StageSpec(
        Stage.REFINER_ALIGNMENT,
        ('MP', 'MP_depth', 'rgb_refiner', 'depth_refiner'),
        True,
        'refiners',
        ('regions',),
    ),
    # the reference trains everything except the ViT (its lr group is shared with the decoder)
    Stage.SFT: StageSpec(
        Stage.SFT,
        ('MP', 'MP_depth', 'rgb_refiner', 'depth_refiner', 'backbones'),
        True,
        'sft',
        ('warehouse',),
    ),
}

ALWAYS_FROZEN = ('vision_encoder.',)


def group_of(name: str) -> str:
    for group, prefixes in GROUPS.items():
        if name.startswith(prefixes):
            return group
    raise KeyError(f'parameter {name!r} belongs to no optimizer group')


def is_trainable(
    name: str, spec: StageSpec, unfreeze: tuple[str, ...] = (), freeze: tuple[str, ...] = ()
) -> bool:
    """``unfreeze``: extra name prefixes to train (e.g. a from-scratch ViT); ``freeze``: name
    prefixes the stage would train but this run keeps fixed; both empty = reference."""
    if freeze and name.startswith(tuple(freeze)):
        return False
    if unfreeze and name.startswith(tuple(unfreeze)):
        return True
    if name.startswith(ALWAYS_FROZEN):
        return False
    return group_of(name) in spec.trainable
