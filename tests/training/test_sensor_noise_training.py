"""Training on perturbed sensors (`TrainConfig.sensor_noise`): the depth and masks a sample
trains on are drawn from `training.perturb` per image and epoch, validation stays clean."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
import shutil

import numpy as np
import pytest
import torch
from training_helpers import tiny_config

from smolrgpt_core.masks import rles_decode
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer
from training.collate import ExampleDataset
from training.config import TrainConfig
from training.datasets import load_examples
from training.perturb import Perturbation
from training.trainer import Trainer

KW = {'uses_regions': True, 'max_length': 2048}


@pytest.fixture(scope='module')
def metric_tok(tiny_dir: Path) -> SmolRGPTTokenizer:
    cfg = SmolRGPT.from_pretrained(tiny_dir).cfg
    metric = dataclasses.replace(cfg, depth_input='metric', depth_min_m=0.0, depth_max_m=20.0)
    return SmolRGPTTokenizer.from_dir(tiny_dir, metric)


@pytest.fixture(scope='module')
def examples(synth_root: Path) -> list:
    return load_examples('warehouse', synth_root, 'train')


def _noisy(tok: SmolRGPTTokenizer, examples: list, p: float = 1.0, seed: int = 0):
    return ExampleDataset(
        examples, tok, **KW, sensor_noise=Perturbation(), sensor_noise_p=p, seed=seed
    )


def test_a_noisy_draw_is_shared_by_an_image_and_changes_with_the_epoch(
    metric_tok: SmolRGPTTokenizer, examples: list
) -> None:
    clean = ExampleDataset(examples, metric_tok, **KW)
    noisy = _noisy(metric_tok, examples)
    keys = [noisy.image_key(i) for i in range(len(noisy))]
    i, j = next((i, j) for i in range(len(keys)) for j in range(i) if keys[i] == keys[j])
    a, b = noisy[i], noisy[j]
    # the vision side runs once per image of a batch: its examples must see one depth frame
    assert torch.equal(a['depth'], b['depth'])
    assert not torch.equal(a['depth'], clean[i]['depth'])
    assert torch.equal(noisy[i]['depth'], a['depth'])  # a draw is a function of its key
    assert not torch.equal(_noisy(metric_tok, examples, seed=1)[i]['depth'], a['depth'])
    noisy.set_epoch(1)
    assert not torch.equal(noisy[i]['depth'], a['depth'])
    # masks keep their shape and count; each is eroded, dilated or missed (an erosion that
    # would delete a small region keeps it as it was)
    truth = rles_decode(list(examples[i].rle)).astype(bool)
    got = a['masks'].numpy().astype(bool)
    assert got.shape == truth.shape
    assert all(not (m & ~t).any() or not (t & ~m).any() for m, t in zip(got, truth))
    assert any(not np.array_equal(m, t) for m, t in zip(got, truth))


def test_the_probability_mixes_clean_and_noisy_draws(
    metric_tok: SmolRGPTTokenizer, examples: list
) -> None:
    clean = ExampleDataset(examples, metric_tok, **KW)[0]['depth']
    never = _noisy(metric_tok, examples, p=0.0)
    assert torch.equal(never[0]['depth'], clean)
    half = _noisy(metric_tok, examples, p=0.5)
    noisy_epochs = 0
    for epoch in range(40):
        half.set_epoch(epoch)
        noisy_epochs += not torch.equal(half[0]['depth'], clean)
    assert 8 <= noisy_epochs <= 32  # 40 draws at p = 0.5


def test_noise_needs_a_metric_depth_model(tiny_dir: Path, examples: list) -> None:
    tok = SmolRGPTTokenizer.from_dir(tiny_dir, SmolRGPT.from_pretrained(tiny_dir).cfg)
    with pytest.raises(ValueError, match='depth_input "metric"'):
        _noisy(tok, examples)


@pytest.mark.parametrize(
    ('field', 'bad'),
    [
        ('sensor_noise', 'gaussian'),
        ('sensor_noise', None),
        ('sensor_noise_p', 1.5),
        ('sensor_noise_p', -0.1),
        ('sensor_noise_p', float('nan')),
        ('sensor_noise_p', True),
    ],
)
def test_the_settings_are_checked(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(stage='sft', **{field: bad})


def test_the_settings_round_trip_through_the_config_file(tmp_path: Path) -> None:
    cfg = TrainConfig(stage='sft', sensor_noise='realistic', sensor_noise_p=1)
    cfg.to_json(tmp_path / 'c.json')
    back = TrainConfig.from_json(tmp_path / 'c.json')
    assert dataclasses.asdict(back) == dataclasses.asdict(cfg)
    assert (back.sensor_noise, back.sensor_noise_p) == ('realistic', 1.0)


def test_a_noisy_run_trains_on_other_inputs_and_validates_clean(
    tiny_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    metric_dir = tmp_path / 'metric'
    shutil.copytree(tiny_dir, metric_dir)
    config = json.loads((metric_dir / 'config.json').read_text())
    config['depth_input'] = 'metric'
    (metric_dir / 'config.json').write_text(json.dumps(config))
    data = {
        'train': load_examples('warehouse', synth_root, 'train')[:4],
        'val': load_examples('warehouse', synth_root, 'val')[:2],
    }
    runs = {}
    for noise in ('none', 'realistic'):
        cfg = tiny_config(
            'sft', metric_dir, tmp_path / noise, max_steps=2, sensor_noise=noise, sensor_noise_p=1
        )
        torch.manual_seed(0)
        trainer = Trainer(cfg, examples=data)
        assert trainer.val_set is not None and trainer.val_set.sensor_noise is None
        runs[noise] = trainer.train()
    assert all(np.isfinite(runs['realistic'].losses))
    assert runs['realistic'].losses[0] != pytest.approx(runs['none'].losses[0])
