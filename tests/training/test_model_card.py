"""The embedded model card describes the recipe it was given."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from training.embedded import EMBEDDED
from training.model_card import write_model_card
from training.recipe import load_recipe


def _card(tiny_dir: Path, tmp_path: Path, recipe: Path) -> str:
    out = tmp_path / 'model'
    shutil.copytree(tiny_dir, out)
    args = {
        'size': '256x144', 'work': 'build/embedded', 'seed': 0, 'train_scenes': 20,
        'questions_per_category': 3, 'heldout_scenes': 10, 'margin': 15.0, 'final_min': 60.0,
        'threads': 2, 'recipe': str(recipe),
    }  # fmt: skip
    write_model_card(
        out / 'MODEL_CARD.md',
        args=args,
        recipe=load_recipe(recipe),
        minutes={'stage3_sft': 1.0},
        tables={71: (10, '| table |')},
        shortfalls=['seed 71: count 2.0 points above its strongest baseline'],
        vocab=300,
        machine='x86_64, 2 thread(s)',
    )
    return (out / 'MODEL_CARD.md').read_text('utf-8')


def test_a_recipe_that_switches_labels_on_says_from_which_run(
    tiny_dir: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / 'recipe'
    shutil.copytree(EMBEDDED, recipe)
    third = recipe / 'stage3c_sft_low_rate.json'
    config = json.loads(third.read_text('utf-8'))
    config.update(prompt_region_labels=True, datasets=['warehouse', 'regions', 'pointers'])
    third.write_text(json.dumps(config), 'utf-8')
    card = _card(tiny_dir, tmp_path, recipe)
    assert 'From `stage3c_sft_low_rate` on, the prompt labels each region' in card
    assert '`stage3c_sft_low_rate` (1400 steps' in card
    assert 'with the pointers questions)' in card
    assert f'--recipe {recipe}' in card
    assert '**It misses the bar' in card and 'count 2.0 points' in card


def test_the_shipped_recipe_card_names_its_labelled_runs_data_and_gate(
    tiny_dir: Path, tmp_path: Path
) -> None:
    card = _card(tiny_dir, tmp_path, EMBEDDED)
    assert 'From `stage3e_sft_labels` on, the prompt labels each region' in card
    assert '--recipe' not in card
    assert 'with the pointers and containment questions)' in card
    # the data set of each run, and the gate before the first labelled run (not measured)
    assert '--out build/embedded/synth-train-s0-q8 --scenes 20 --seed 0' in card
    assert 'stage3f_sft_labels_q8.json (on synth-train-s0-q8)' in card
    assert (
        'stage3e_sft_labels.json (after the gate left_right >= 90 % on 100 val questions)' in card
    )
    assert 'stage3_sft.json\n' in card  # a run on the rebuild's data set says nothing more
