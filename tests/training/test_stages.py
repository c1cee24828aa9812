"""The freeze table (smolrgpt-reference §1.12), optimizer groups, schedule, stage precedence."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from training_helpers import batch_for, tiny_config

from training.config import TrainConfig
from training.datasets import load_examples
from training.model_setup import apply_freeze, build_model
from training.optim import build_optimizer, lr_factor
from training.stages import STAGES, Stage
from training.trainer import Trainer, loss_sum

TRAINS = {
    'connector_alignment': {'MP'},
    'refiner_alignment': {'MP', 'MP_depth', 'rgb_refiner', 'depth_refiner'},
    'sft': {'MP', 'MP_depth', 'rgb_refiner', 'depth_refiner', 'decoder'},
}


@pytest.mark.parametrize('stage', list(TRAINS))
def test_gradients_reach_exactly_the_stage_modules(
    stage: str, tiny_dir: Path, synth_root: Path
) -> None:
    # a region batch exercises every module, so "no gradient" can only come from freezing
    model, batch = batch_for('sft', tiny_dir, synth_root)
    apply_freeze(model, STAGES[Stage(stage)])
    loss, _ = loss_sum(model, batch, autocast=False)
    loss.backward()
    got = {
        name.split('.')[0]
        for name, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert got == TRAINS[stage]
    frozen = {name.split('.')[0] for name, p in model.named_parameters() if not p.requires_grad}
    assert 'vision_encoder' in frozen


def test_unfreeze_adds_prefixes(tiny_dir: Path) -> None:
    cfg = tiny_config(
        'connector_alignment', tiny_dir, Path('unused'), unfreeze=['vision_encoder.']
    )
    model, _ = build_model(cfg)
    names = apply_freeze(model, STAGES[Stage.CONNECTOR_ALIGNMENT], cfg.unfreeze)
    assert {n.split('.')[0] for n in names} == {'MP', 'vision_encoder'}


def test_freeze_keeps_prefixes_out_of_the_step(
    tiny_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    vision = ['MP.', 'MP_depth.', 'rgb_refiner.', 'depth_refiner.']
    cfg = tiny_config('sft', tiny_dir, tmp_path / 'run', freeze=vision, max_steps=2)
    examples = load_examples('warehouse', synth_root, 'train')[:4]
    trainer = Trainer(cfg, examples={'train': examples, 'val': []})
    assert {n.split('.')[0] for n in trainer.trainable} == {'decoder'}
    assert [g['name'] for g in trainer.optimizer.param_groups] == ['backbones']
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    for name, p in trainer.model.named_parameters():
        moved = not torch.equal(before[name], p.detach())
        assert moved == name.startswith('decoder.'), name


def test_optimizer_groups_carry_the_stage_learning_rates(tiny_dir: Path) -> None:
    cfg = tiny_config(
        'refiner_alignment',
        tiny_dir,
        Path('unused'),
        lr={
            'MP': 5e-5,
            'MP_depth': 5e-5,
            'rgb_refiner': 1e-4,
            'depth_refiner': 1e-4,
            'backbones': 5e-5,
        },
    )
    model, _ = build_model(cfg)
    apply_freeze(model, STAGES[Stage.REFINER_ALIGNMENT])
    groups = {g['name']: g['lr'] for g in build_optimizer(model, cfg).param_groups}
    assert groups == {'MP': 5e-5, 'MP_depth': 5e-5, 'rgb_refiner': 1e-4, 'depth_refiner': 1e-4}
    opt = build_optimizer(model, cfg)
    assert all(g['weight_decay'] == 0.01 for g in opt.param_groups)


def test_cli_stage_wins_over_checkpoint_stage(tiny_dir: Path) -> None:
    # the tiny checkpoint stores 'connector_alignment' (the config default)
    model, _ = build_model(tiny_config('sft', tiny_dir, Path('unused')))
    assert model.cfg.stage == 'sft'


def test_a_run_can_switch_region_labels_on_and_saves_them(
    tiny_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    # the tiny checkpoint reads prompts without '[Region k]' labels
    assert (
        build_model(tiny_config('sft', tiny_dir, Path('unused')))[0].cfg.prompt_region_labels
        is False
    )
    cfg = tiny_config('sft', tiny_dir, tmp_path / 'run', max_steps=1, prompt_region_labels=True)
    examples = load_examples('warehouse', synth_root, 'train')[:2]
    trainer = Trainer(cfg, examples={'train': examples, 'val': []})
    assert trainer.model.cfg.prompt_region_labels and trainer.tok.cfg.prompt_region_labels
    labelled = trainer.train().final_dir
    saved = json.loads((labelled / 'config.json').read_text('utf-8'))
    assert saved['prompt_region_labels'] is True
    # and off again from a labelled checkpoint; None keeps what the checkpoint says
    off = tiny_config('sft', labelled, Path('unused'), prompt_region_labels=False)
    assert build_model(off)[0].cfg.prompt_region_labels is False
    assert build_model(tiny_config('sft', labelled, Path('unused')))[0].cfg.prompt_region_labels


@pytest.mark.parametrize('value', [1, 'yes', 0.0])
def test_region_labels_must_be_a_bool_or_null(value: object) -> None:
    with pytest.raises(ValueError, match='prompt_region_labels'):
        TrainConfig(prompt_region_labels=value)


def test_lr_schedule_warmup_cosine_floor() -> None:
    total = 100
    assert lr_factor(0, total, 0.03, 0.1) == pytest.approx(1 / 3)
    assert lr_factor(2, total, 0.03, 0.1) == pytest.approx(1.0)
    assert lr_factor(3, total, 0.03, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, total, 0.03, 0.1) == pytest.approx(0.1)
    assert lr_factor(500, total, 0.03, 0.1) == pytest.approx(0.1)
    values = [lr_factor(s, total, 0.03, 0.1) for s in range(3, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_fresh_model_with_sincos_vit_positions(tiny_dir: Path, tmp_path: Path) -> None:
    from smolrgpt_core.config import SmolRGPTConfig

    model_json = tmp_path / 'model.json'
    SmolRGPTConfig.from_json(tiny_dir / 'config.json').to_json(model_json)
    cfg = tiny_config(
        'connector_alignment',
        tiny_dir,
        tmp_path,
        last_stage_checkpoint=None,
        model_config=str(model_json),
        tokenizer=str(tiny_dir),
        vit_sincos_positions=True,
    )
    model, tokenizer_dir = build_model(cfg)
    assert tokenizer_dir == tiny_dir
    table = model.vision_encoder.patch_embedding.position_embedding[0]  # [N, D]
    assert len({tuple(row.tolist()) for row in table}) == table.shape[0]  # all distinct


def test_fresh_model_with_nearest_refiner_init(tiny_dir: Path, tmp_path: Path) -> None:
    """ICNR init: each refined map starts piecewise constant over every token's block, so a
    region vector is a mix of the tokens it covers and not of where it sits inside them."""
    from smolrgpt_core.config import SmolRGPTConfig

    model_json = tmp_path / 'model.json'
    SmolRGPTConfig.from_json(tiny_dir / 'config.json').to_json(model_json)
    kwargs = dict(
        last_stage_checkpoint=None, model_config=str(model_json), tokenizer=str(tiny_dir)
    )
    plain, _ = build_model(tiny_config('connector_alignment', tiny_dir, tmp_path, **kwargs))
    model, _ = build_model(
        tiny_config('connector_alignment', tiny_dir, tmp_path, refiner_nearest_init=True, **kwargs)
    )
    cfg = model.cfg
    tokens = torch.randn(1, cfg.mp_image_token_length, cfg.lm_hidden_dim)
    side = math.isqrt(cfg.mp_image_token_length)
    block = cfg.mask_grid // side
    for m in (plain, model):
        refined = m.rgb_refiner(tokens)[0].T.reshape(-1, side, block, side, block)  # [D, ...]
        spread = (refined - refined[:, :, :1, :, :1]).abs().amax().item()
        if m is plain:
            assert spread > 1e-2  # a random refiner paints a pattern inside each block
        else:
            assert spread < 1e-5
    # the same random draw elsewhere: only the refiners' transposed convs differ
    changed = {
        n for n, p in model.state_dict().items() if not torch.equal(p, plain.state_dict()[n])
    }
    assert changed and all('refiner' in n and n.endswith('weight') for n in changed)
