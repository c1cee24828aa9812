"""Per-category repeats of the training mixture and the small-grid sin-cos position table."""

from __future__ import annotations

from collections import Counter
import json
from pathlib import Path

import pytest
from training_helpers import tiny_config

from training.config import TrainConfig, add_override_arguments, overrides_from_args
from training.model_setup import sincos_table
from training.stage_data import stage_examples
from training.stages import STAGES, Stage


def test_repeats_multiply_one_category_and_keep_the_others(
    tiny_dir: Path, synth_root: Path
) -> None:
    plain = tiny_config('sft', tiny_dir, Path('unused'), data_root=str(synth_root))
    base = Counter(ex.category for ex in stage_examples(plain, STAGES[Stage.SFT], 'train'))
    cfg = tiny_config(
        'sft',
        tiny_dir,
        Path('unused'),
        data_root=str(synth_root),
        category_repeats={'left_right': 3},
    )
    got = Counter(ex.category for ex in stage_examples(cfg, STAGES[Stage.SFT], 'train'))
    assert base['left_right'] > 0
    assert got['left_right'] == 3 * base['left_right']
    assert {c: n for c, n in got.items() if c != 'left_right'} == {
        c: n for c, n in base.items() if c != 'left_right'
    }
    # validation data is never repeated
    val = Counter(ex.category for ex in stage_examples(cfg, STAGES[Stage.SFT], 'val'))
    assert val == Counter(ex.category for ex in stage_examples(plain, STAGES[Stage.SFT], 'val'))


def test_repeating_an_absent_category_is_an_error(tiny_dir: Path, synth_root: Path) -> None:
    cfg = tiny_config(
        'sft',
        tiny_dir,
        Path('unused'),
        data_root=str(synth_root),
        category_repeats={'left_rigth': 2},
    )
    with pytest.raises(ValueError, match=r"\['left_rigth'\], which no training example has"):
        stage_examples(cfg, STAGES[Stage.SFT], 'train')


@pytest.mark.parametrize('bad', [0, 1.5, True, -2])
def test_repeat_counts_are_whole_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match='category_repeats must map'):
        TrainConfig(category_repeats={'count': bad})


def test_cli_and_json_spellings(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_override_arguments(parser)
    args = parser.parse_args(
        ['--category_repeats', 'left_right=3', 'count=2', '--vit-sincos-base', '8']
    )
    overrides = overrides_from_args(args)
    assert overrides['category_repeats'] == {'left_right': 3, 'count': 2}
    assert overrides['vit_sincos_base'] == 8.0
    with pytest.raises(ValueError, match='CATEGORY=N'):
        overrides_from_args(parser.parse_args(['--category-repeats', 'left_right=x']))
    path = tmp_path / 'c.json'
    TrainConfig(category_repeats={'mcq': 2}).to_json(path)
    assert json.loads(path.read_text())['category_repeats'] == {'mcq': 2}
    assert TrainConfig.from_json(path).category_repeats == {'mcq': 2}


def test_small_base_makes_every_x_channel_vary_over_a_small_grid() -> None:
    grid, dim = 12, 64
    xs = sincos_table(grid, dim, base=8.0).view(grid, grid, dim)[0, :, : dim // 2]  # row 0
    mae = sincos_table(grid, dim).view(grid, grid, dim)[0, :, : dim // 2]
    # spread of each x channel across the 12 columns of one row
    assert (xs.amax(0) - xs.amin(0)).min() > 0.5
    assert (mae.amax(0) - mae.amin(0)).min() < 0.01  # MAE's base: some channels ~constant
    # the lowest frequency stays monotonic across the grid (no wrap-around): an x ramp
    lowest = xs[:, dim // 4 - 1]  # sin of the lowest frequency
    assert bool((lowest[1:] > lowest[:-1]).all())
    with pytest.raises(ValueError, match='vit_sincos_base'):
        TrainConfig(vit_sincos_base=1.0)
